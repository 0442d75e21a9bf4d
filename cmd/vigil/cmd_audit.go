package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// auditNames is how many popular names an audit judges by default.
const auditNames = 10_000

// cmdListsAudit is "vigil lists audit": per deny list, on or off, the names
// the allowlists rescue from it and the popular names it blocks, so a user
// can judge a list before turning it on (or keeping it).
func cmdListsAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lists audit", "", "Per deny list, on or off: the names the allowlists rescue from it, and the popular names it blocks\n"+
		"(from -top: a top-sites file such as Umbrella's or Tranco's top-1m.csv, or one name per line).", stderr)
	top := fs.String("top", "", "popular names, most popular first: `FILE` (\"rank,name\" lines or one name per line)")
	n := fs.Int("n", auditNames, "judge the first `N` popular names")
	limit := fs.Int("limit", 15, "show at most `N` names per list and kind (all with -json)")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	var popular []string
	if *top != "" {
		f, err := os.Open(*top)
		if err != nil {
			return fmt.Errorf("reading popular names: %w", err)
		}
		popular, err = api.ParsePopular(f, max(*n, 0))
		f.Close()
		if err != nil {
			return err
		}
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.AuditReport, error) { return c.Audit(ctx, popular) },
		func(o *offline) (api.AuditReport, error) {
			lists, err := o.lists.Audit(popular)
			return api.AuditReport{Popular: len(popular), Lists: lists}, err
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, func(w io.Writer, rep api.AuditReport) { printAudit(w, rep, *limit) })
}

// printAudit prints one paragraph per deny list.
func printAudit(w io.Writer, rep api.AuditReport, limit int) {
	for _, l := range rep.Lists {
		state := ""
		if !l.Enabled {
			state = ", off" + breaksNote(l.Breaks)
		}
		fmt.Fprintf(w, "%s (%s, %d rules%s)\n", l.List, l.Vendor, l.Rules, state)
		if len(l.Unread) > 0 {
			fmt.Fprintf(w, "  warning: no stored copy of %s (never fetched; run `vigil lists update`), so its rules are not counted\n",
				strings.Join(l.Unread, ", "))
		}
		fmt.Fprintf(w, "  rescued by the allowlists: %d%s\n", len(l.Rescued), auditNamesText(l.Rescued, limit, false))
		if rep.Popular > 0 {
			allowed := 0
			for _, p := range l.Popular {
				if p.Allowed {
					allowed++
				}
			}
			fmt.Fprintf(w, "  blocks %d of the top %d names (%d of them allowed anyway)%s\n", len(l.Popular), rep.Popular, allowed,
				auditNamesText(l.Popular, limit, true))
		}
	}
	if rep.Popular == 0 {
		fmt.Fprintln(w, "(give -top FILE to see which popular names each list blocks)")
	}
}

// auditNamesText lists up to limit names, indented, with their rule.
func auditNamesText(names []blocklists.AuditedName, limit int, ranked bool) string {
	var b strings.Builder
	for i, n := range names {
		if i == limit {
			fmt.Fprintf(&b, "\n    … and %d more (-limit, -json)", len(names)-limit)
			break
		}
		b.WriteString("\n    ")
		if ranked {
			fmt.Fprintf(&b, "#%d ", n.Rank)
		}
		fmt.Fprintf(&b, "%s (%s)", n.Name, n.Rule)
		if ranked && n.Allowed {
			fmt.Fprintf(&b, " allowed by %s", n.AllowedBy)
		}
	}
	return b.String()
}
