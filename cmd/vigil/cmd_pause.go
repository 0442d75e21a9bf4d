package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver"
)

// cmdPause is "vigil pause DURATION": blocking off for a while. It needs
// the running server: a pause lives in its memory, not in the store.
func cmdPause(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pause", "DURATION", "Pause blocking for DURATION (such as 5m), for everyone or one client; it resumes by itself.", stderr)
	client := fs.String("client", "", "pause only for this `CLIENT`: its name (any case), an address, or its MAC")
	group := fs.String("group", "", "pause only for this `GROUP` of the configuration's [[groups]]")
	asJSON := fs.Bool("json", false, "print JSON")
	dur, cfg, err := fs.loadWithOperand(args, "DURATION")
	if err != nil {
		return err
	}
	if *client != "" && *group != "" {
		fs.Usage()
		return usageError{fmt.Errorf("pause: want -client or -group, not both")}
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d <= 0 {
		fs.Usage()
		return usageError{fmt.Errorf("pause: want a DURATION such as 5m, got %q", dur)}
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pausing needs the running server: %w", err)
	}
	var out api.PauseReply
	if *group != "" {
		out, err = c.PauseGroup(ctx, *group, d)
	} else {
		out, err = c.Pause(ctx, *client, d)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	who := "everyone"
	switch {
	case *group != "":
		who = "group " + *group
	case *client != "":
		who = *client
	}
	fmt.Fprintf(stdout, "blocking paused for %s until %s\n", who, out.Until.Local().Format(time.DateTime))
	return nil
}

// cmdResume is "vigil resume": end a pause early.
func cmdResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("resume", "", "End a pause of blocking (all pauses, or one client's or group's).", stderr)
	client := fs.String("client", "", "end only this `CLIENT`'s pause (name, address or MAC)")
	group := fs.String("group", "", "end only this `GROUP`'s pause")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("resuming needs the running server: %w", err)
	}
	var st resolver.PauseStatus
	if *group != "" {
		st, err = c.ResumeGroup(ctx, *group)
	} else {
		st, err = c.Resume(ctx, *client)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	fmt.Fprintln(stdout, "blocking resumed")
	printPauses(stdout, st)
	return nil
}

// printPauses says which pauses are still in force, if any.
func printPauses(w io.Writer, st resolver.PauseStatus) {
	if !st.All.IsZero() {
		fmt.Fprintf(w, "still paused for everyone until %s\n", st.All.Local().Format("2006-01-02 15:04:05"))
	}
	clients := slices.Sorted(maps.Keys(st.Clients))
	for _, c := range clients {
		fmt.Fprintf(w, "still paused for %s until %s\n", c, st.Clients[c].Local().Format("2006-01-02 15:04:05"))
	}
	for _, g := range slices.Sorted(maps.Keys(st.Groups)) {
		fmt.Fprintf(w, "still paused for group %s until %s\n", g, st.Groups[g].Local().Format("2006-01-02 15:04:05"))
	}
}
