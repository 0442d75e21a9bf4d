package main

import (
	"context"
	"fmt"
	"io"
)

// cmdHealth is "vigil health": exit 0 when the server answers its health
// check, for container and service health checks.
func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := newFlags("health", "", "Exit 0 if the running server is healthy (for container health checks).", stderr).load(args)
	if err != nil {
		return err
	}
	if _, err := connect(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
