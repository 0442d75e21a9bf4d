package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/vigil-dns/vigil/resolver"
)

func cmdPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("pause", "Pause blocking for DURATION (such as 5m), for everyone or one client; it resumes by itself.\nUsage: vigil pause [flags] DURATION", stderr)
	client := fs.String("client", "", "pause only for this `CLIENT` (its name, or its address)")
	dur, err := parseWithOperand(fs, args, "DURATION")
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d <= 0 {
		fs.Usage()
		return usageError{fmt.Errorf("pause: want a DURATION such as 5m, got %q", dur)}
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	api, err := connectAPI(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pausing needs the running server: %w", err)
	}
	q := url.Values{"duration": {d.String()}}
	if *client != "" {
		q.Set("client", *client)
	}
	var out struct {
		Until time.Time `json:"until"`
	}
	if err := api.do(ctx, "POST", "/api/v1/pause?"+q.Encode(), &out); err != nil {
		return err
	}
	who := "everyone"
	if *client != "" {
		who = *client
	}
	fmt.Fprintf(stdout, "blocking paused for %s until %s\n", who, out.Until.Local().Format(time.DateTime))
	return nil
}

func cmdResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("resume", "End a pause of blocking (all pauses, or one client's).", stderr)
	client := fs.String("client", "", "end only this `CLIENT`'s pause")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	api, err := connectAPI(ctx, cfg)
	if err != nil {
		return fmt.Errorf("resuming needs the running server: %w", err)
	}
	var st resolver.PauseStatus
	if err := api.do(ctx, "POST", "/api/v1/resume?client="+url.QueryEscape(*client), &st); err != nil {
		return err
	}
	b, _ := json.Marshal(st)
	fmt.Fprintf(stdout, "blocking resumed; pauses still in force: %s\n", b)
	return nil
}

// cmdHealth exits 0 when the server answers its health check: for
// container and service health checks.
func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("health", "Exit 0 if the running server is healthy (for container health checks).", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	if _, err := connectAPI(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
