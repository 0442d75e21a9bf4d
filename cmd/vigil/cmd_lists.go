package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// listsUsage is "vigil lists"'s help: its subcommands.
const listsUsage = `Usage: vigil lists [command] [flags]

Commands:
  (none)        show every source: entries, status, last update
  update        fetch every source now (conditional GETs) and recompile
  parse FILE    print the rules a list file yields, normalised, one per line;
                counts and rejected lines go to stderr
  audit         per enabled deny list: the names the allowlists rescue from it
                and the popular names it blocks (-top FILE)

Run "vigil lists COMMAND -h" for a command's flags.
`

// errNoCopy fails "vigil lists update" when a source is unusable.
var errNoCopy = errors.New("a source failed with no copy to fall back on")

// cmdLists is "vigil lists" and its subcommands.
func cmdLists(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "":
		return cmdListsShow(ctx, args, stdout, stderr)
	case "update":
		return cmdListsUpdate(ctx, args, stdout, stderr)
	case "parse":
		return cmdListsParse(ctx, args, stdout, stderr)
	case "audit":
		return cmdListsAudit(ctx, args, stdout, stderr)
	default:
		fmt.Fprint(stderr, listsUsage)
		return usageError{fmt.Errorf("unknown lists command %q", sub)}
	}
}

// cmdListsShow is "vigil lists": every source's state.
func cmdListsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lists", "", "Show every list source: entries, status and last update.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.ListsStatus, error) { return c.Lists(ctx) },
		// Offline nothing is compiled: only the sources' stored state.
		func(o *offline) (api.ListsStatus, error) { return api.ListsStatus{Sources: o.lists.Status()}, nil })
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printSources)
}

// printSources prints the lists report as a table, then the errors.
func printSources(w io.Writer, rep api.ListsStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tVENDOR\tKIND\tSTATUS\tENTRIES\tREJECTED\tUPDATED\tSOURCE")
	for _, s := range rep.Sources {
		updated := "never"
		if !s.FetchedAt.IsZero() {
			updated = s.FetchedAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.List, s.Vendor, s.Kind, s.Status, s.Entries, s.Rejected, updated, s.Source)
	}
	tw.Flush()
	shown := map[string]bool{}
	for _, s := range rep.Sources {
		if !s.Enabled && !shown[s.List] {
			shown[s.List] = true
			fmt.Fprintf(w, "%s: off (enabled = false)%s\n", s.List, breaksNote(s.Breaks))
		}
	}
	for _, s := range rep.Sources {
		if s.Error != "" {
			retry := ""
			if s.Retrying {
				retry = fmt.Sprintf(" (retrying, next attempt at %s)", s.NextAttempt.Local().Format(time.DateTime))
			}
			fmt.Fprintf(w, "%s: %s: %s%s\n", s.List, s.Source, s.Error, retry)
		}
	}
	if rep.Warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n", rep.Warning)
	}
	if rep.Generation > 0 {
		fmt.Fprintf(w, "%d rules in use (generation %d, compiled %s)\n", rep.Rules, rep.Generation, rep.Built.Local().Format(time.DateTime))
	}
}

// cmdListsUpdate is "vigil lists update": fetch every source now, in the
// running server or, with none, into the store directly.
func cmdListsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lists update", "", "Fetch every list source now and recompile the lists.", stderr)
	asJSON := fs.Bool("json", false, "print the final report as JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	bar := newProgressBar(stderr)
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.ListsStatus, error) { return c.UpdateLists(ctx, bar.update) },
		func(o *offline) (api.ListsStatus, error) {
			if err := o.lists.Load(ctx); err != nil {
				return api.ListsStatus{}, fmt.Errorf("loading lists from the store: %w", err)
			}
			o.lists.Refresh(ctx, bar.update)
			return api.ListsReport(o.lists), nil
		})
	if err != nil {
		return err
	}
	bar.finish()
	if err := show(stdout, *asJSON, rep, printSources); err != nil {
		return err
	}
	for _, s := range rep.Sources {
		if s.Status == blocklists.StatusFailedNoCopy {
			return errNoCopy
		}
	}
	return nil
}

// cmdListsParse is "vigil lists parse FILE": what a list file yields.
func cmdListsParse(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lists parse", "FILE", "Print every rule a list file yields, normalised, one per line.\nCounts and rejected lines go to stderr.", stderr)
	fs.Lookup("config").Usage = "accepted like every command's, unused: parsing needs no configuration"
	format := fs.String("format", "auto", "list `FORMAT`: auto, hosts, domains, adblock, wildcard or dnsmasq")
	file, err := parseWithOperand(fs.FlagSet, args, "FILE")
	if err != nil {
		return err
	}
	f, err := blocklists.ParseFormat(*format)
	if err != nil {
		return usageError{fmt.Errorf("-format: %w", err)}
	}
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	out := bufio.NewWriter(stdout)
	st, err := blocklists.Parse(in, blocklists.ParseOptions{Source: file, Format: f, MaxRejected: -1}, func(r blocklists.Rule) {
		out.WriteString(r.String())
		out.WriteByte('\n')
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	for _, e := range st.Errors {
		fmt.Fprintln(stderr, e)
	}
	if st.Rejected > len(st.Errors) {
		fmt.Fprintf(stderr, "... and %d more rejected lines\n", st.Rejected-len(st.Errors))
	}
	fmt.Fprintf(stderr, "%s: format %s, %d lines: %d entries, %d comments, %d ignored, %d skipped, %d rejected\n",
		file, st.Format, st.Lines, st.Entries, st.Comments, st.Ignored, st.Skipped, st.Rejected)
	return err
}

// breaksNote says what turning a list on breaks, or "" when it is not
// labelled.
func breaksNote(breaks []blocklists.Breakage) string {
	if len(breaks) == 0 {
		return ""
	}
	words := make([]string, len(breaks))
	for i, b := range breaks {
		words[i] = string(b)
	}
	return "; turning it on breaks " + strings.Join(words, ", ")
}
