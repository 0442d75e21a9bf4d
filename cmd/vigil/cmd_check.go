package main

import (
	"context"
	"fmt"
	"io"
)

// cmdCheck is "vigil check": validate the configuration and exit.
func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := newFlags("check", "", "Validate the configuration and exit non-zero with the problem if it is invalid.", stderr).load(args)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", cfg.Source)
	return nil
}
