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

// releaseVersion is what a release build says it is:
//
//	go build -ldflags "-X main.releaseVersion=v1.2.0" ./cmd/vigil
//
// Set by the linker only; never written at run time.
var releaseVersion = ""

// version reports the release (or module) version and the commit the
// binary was built from: "v1.2.0 (commit 0123456789ab, 2026-12-01T18:00:00Z)
// go1.26.8", with "+ local changes" when the tree was modified.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionText(releaseVersion, bi)
}

func versionText(release string, bi *debug.BuildInfo) string {
	v := release
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "development build"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev != "":
		v += " (commit " + rev[:min(12, len(rev))]
		if at != "" {
			v += ", " + at
		}
		if modified {
			v += ", + local changes"
		}
		v += ")"
	case release == "":
		v += " (no commit recorded: built outside a git checkout or with -buildvcs=false)"
	}
	return v + " " + bi.GoVersion
}
