package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// cmdVersion is "vigil version".
func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", "Print the version.", stderr)
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "vigil", version())
	return nil
}

// version reports the module version and VCS revision the binary was
// built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v + " " + bi.GoVersion
}
