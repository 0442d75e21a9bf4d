package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

const listsUsage = `Usage: vigil lists [command] [flags]

Commands:
  (none)        show every source: entries, status, last update
  update        fetch every source now (conditional GETs) and recompile
  parse FILE    print the rules a list file yields, normalised, one per line;
                counts and rejected lines go to stderr

Run "vigil lists COMMAND -h" for a command's flags.
`

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
		return cmdListsParse(args, stdout, stderr)
	default:
		fmt.Fprint(stderr, listsUsage)
		return usageError{fmt.Errorf("unknown lists command %q", sub)}
	}
}

func cmdListsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("lists", "Show every list source: entries, status and last update.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	var rep listsStatus
	if api, aerr := connectAPI(ctx, cfg); aerr == nil {
		if err := api.do(ctx, "GET", "/api/v1/lists", &rep); err != nil {
			return err
		}
	} else {
		off, err := openOffline(cfg, aerr)
		if err != nil {
			return err
		}
		defer off.Close()
		rep = listsStatus{Sources: off.lists.Status()}
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printSources(stdout, rep)
	return nil
}

func printSources(w io.Writer, rep listsStatus) {
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
	for _, s := range rep.Sources {
		if s.Error != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", s.List, s.Source, s.Error)
		}
	}
	if rep.Generation > 0 {
		fmt.Fprintf(w, "%d rules in use (generation %d, compiled %s)\n", rep.Rules, rep.Generation, rep.Built.Local().Format(time.DateTime))
	}
}

func cmdListsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("lists update", "Fetch every list source now and recompile the lists.", stderr)
	asJSON := fs.Bool("json", false, "print the final report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	bar := newProgressBar(stderr)
	var rep listsStatus
	if api, aerr := connectAPI(ctx, cfg); aerr == nil {
		resp, err := api.send(ctx, "POST", "/api/v1/lists/update")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var ev updateEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				return fmt.Errorf("decoding update progress: %w", err)
			}
			if ev.Final != nil {
				rep = *ev.Final
			} else if ev.Source != nil {
				bar.update(ev.Done, ev.Total, *ev.Source)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading update progress: %w", err)
		}
	} else {
		off, err := openOffline(cfg, aerr)
		if err != nil {
			return err
		}
		defer off.Close()
		if err := off.lists.Load(ctx); err != nil {
			return err
		}
		off.lists.Refresh(ctx, func(done, total int, st blocklists.SourceStatus) { bar.update(done, total, st) })
		set := off.lists.Current()
		rep = listsStatus{Rules: set.Matcher.Len(), Generation: set.Generation, Built: set.Built, Sources: off.lists.Status()}
	}
	bar.finish()
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printSources(stdout, rep)
	for _, s := range rep.Sources {
		if s.Status == blocklists.StatusFailedNoCopy {
			return fmt.Errorf("a source failed with no copy to fall back on")
		}
	}
	return nil
}

// progressBar draws "[#####.....] 3/10 list source status" on a terminal,
// redrawn in place; elsewhere it prints one line per source.
type progressBar struct {
	w    io.Writer
	tty  bool
	used bool
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty}
}

func (p *progressBar) update(done, total int, st blocklists.SourceStatus) {
	p.used = true
	if !p.tty {
		fmt.Fprintf(p.w, "%d/%d %s %s: %s\n", done, total, st.List, st.Source, st.Status)
		return
	}
	const width = 30
	filled := width * done / max(total, 1)
	label := st.List + " " + st.Status
	if len(label) > 40 {
		label = label[:40]
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-40s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, label)
}

func (p *progressBar) finish() {
	if p.tty && p.used {
		fmt.Fprintln(p.w)
	}
}

func cmdListsParse(args []string, stdout, stderr io.Writer) error {
	fs := newPlainFlagSet("lists parse", "FILE", "Print every rule a list file yields, normalised, one per line.\nCounts and rejected lines go to stderr.", stderr)
	format := fs.String("format", "auto", "list `FORMAT`: auto, hosts, domains, adblock, wildcard or dnsmasq")
	fs.String("config", "", "accepted like every command's, unused: parsing needs no configuration")
	file, err := parseWithOperand(fs, args, "FILE")
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

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("explain", "Say whether NAME is blocked, by which list, rule and vendor.\nUsage: vigil explain [flags] NAME", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	name, err := parseWithOperand(fs, args, "NAME")
	if err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	var ex explanation
	if api, aerr := connectAPI(ctx, cfg); aerr == nil {
		if err := api.do(ctx, "GET", "/api/v1/explain?name="+urlQueryEscape(name), &ex); err != nil {
			return err
		}
	} else {
		off, err := openOffline(cfg, aerr)
		if err != nil {
			return err
		}
		defer off.Close()
		if err := off.lists.Load(ctx); err != nil {
			return err
		}
		if ex, err = explain(off.lists.Current().Matcher, name); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(stdout, ex)
	}
	switch {
	case !ex.Matched:
		fmt.Fprintf(stdout, "%s is not blocked: no list has a rule for it\n", ex.Name)
	case ex.Blocked:
		fmt.Fprintf(stdout, "%s is BLOCKED by list %q (vendor %q), rule %s\n", ex.Name, ex.List, ex.Vendor, ex.Rule)
	default:
		fmt.Fprintf(stdout, "%s is allowed by list %q (vendor %q), rule %s, which overrides any block\n", ex.Name, ex.List, ex.Vendor, ex.Rule)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
