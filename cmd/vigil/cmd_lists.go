package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
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
  add NAME URL  add a list from an http(s) URL (-format, -kind, -vendor),
                kept across restarts
  remove NAME   remove a list added with "lists add"
  enable NAME / disable NAME
                turn a list on or off over the configuration, kept across restarts

Run "vigil lists COMMAND -h" for a command's flags.
`

// errNoCopy fails "vigil lists update" when a source is unusable.
var errNoCopy = errors.New("a source failed with no copy to fall back on")

// cmdLists is "vigil lists" and its subcommands.
func cmdLists(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args)
	switch sub {
	case "":
		return cmdListsShow(ctx, args, stdout, stderr)
	case "update":
		return cmdListsUpdate(ctx, args, stdout, stderr)
	case "parse":
		return cmdListsParse(ctx, args, stdout, stderr)
	case "audit":
		return cmdListsAudit(ctx, args, stdout, stderr)
	case "add", "remove", "enable", "disable":
		return cmdListsEdit(ctx, sub, args, stdout, stderr)
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
		switch {
		case shown[s.List]:
		case s.OptIn:
			fmt.Fprintf(w, "%s: off for everyone, on for the groups that name it%s\n", s.List, strings.Replace(breaksNote(s.Breaks), "turning it on breaks", "it breaks there", 1))
		case !s.Enabled:
			fmt.Fprintf(w, "%s: off (enabled = false)%s\n", s.List, breaksNote(s.Breaks))
		}
		shown[s.List] = true
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

// cmdListsEdit is "vigil lists add NAME URL", "lists remove NAME" and
// "lists enable|disable NAME": the lists changed by hand, kept across
// restarts, through the running server.
func cmdListsEdit(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	operands := map[string]string{"add": "NAME URL", "remove": "NAME", "enable": "NAME", "disable": "NAME"}[verb]
	summary := map[string]string{
		"add":     "Add a list from an http(s) URL, fetched at once and kept across restarts.",
		"remove":  "Remove a list added with \"vigil lists add\" (a configured list can be disabled).",
		"enable":  "Turn a list on, over what the configuration says, kept across restarts.",
		"disable": "Turn a list off, over what the configuration says, kept across restarts.",
	}[verb]
	fs := newFlags("lists "+verb, operands, summary, stderr)
	format := fs.String("format", "auto", "the list's `FORMAT`: auto, hosts, domains, adblock, wildcard or dnsmasq")
	kind := fs.String("kind", "deny", "`deny` (block its names) or allow (exceptions)")
	vendor := fs.String("vendor", "", "the `VENDOR` its blocked lookups are tagged with")
	ops, err := parseInterleaved(fs.FlagSet, args)
	if err != nil {
		return err
	}
	if len(ops) != len(strings.Fields(operands)) {
		fs.Usage()
		return usageError{fmt.Errorf("lists %s: want %s", verb, operands)}
	}
	cfg, err := loadConfig(resolveConfigPath(*fs.config))
	if err != nil {
		return err
	}
	c, err := connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("changing lists needs the running server: %w", err)
	}
	var rep api.ListsStatus
	switch verb {
	case "add":
		q := url.Values{"name": {ops[0]}, "url": {ops[1]}, "format": {*format}, "kind": {*kind}, "vendor": {*vendor}}
		err = c.Call(ctx, http.MethodPost, "/api/v1/lists?"+q.Encode(), &rep)
	case "remove":
		err = c.Call(ctx, http.MethodDelete, "/api/v1/lists/"+url.PathEscape(ops[0]), &rep)
	default:
		err = c.Call(ctx, http.MethodPost, "/api/v1/lists/"+url.PathEscape(ops[0])+"/"+verb, &rep)
	}
	if err != nil {
		return err
	}
	done := map[string]string{"add": "added; it is being fetched", "remove": "removed", "enable": "on", "disable": "off"}[verb]
	fmt.Fprintf(stdout, "list %s %s; %d rules in use\n", ops[0], done, rep.Rules)
	return nil
}

// subcommand takes a command's subcommand out of args: the first word that
// is neither a flag nor -config's value ("lists -config F add ...").
func subcommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-config" || a == "--config":
			i++ // its value
		case strings.HasPrefix(a, "-"):
		default:
			return a, append(slices.Clone(args[:i]), args[i+1:]...)
		}
	}
	return "", args
}
