package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/store/querylog"
)

// cmdLog is "vigil log": blocked (or allowed) lookups, newest first.
func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("log", "", "Show blocked lookups, newest first.", stderr)
	client := fs.String("client", "", "only this `CLIENT`: its name (any case), any of its addresses, or its MAC")
	vendor := fs.String("vendor", "", "only this `VENDOR`")
	list := fs.String("list", "", "only this `LIST`")
	name := fs.String("name", "", "only this `NAME` and its subdomains")
	since := fs.since()
	limit := fs.Int("limit", 50, "at most `N` entries")
	allowed := fs.Bool("allowed", false, "show allowed lookups instead (when querylog.log_allowed is on)")
	cursor := fs.String("cursor", "", "continue after the last page: the `CURSOR` it printed")
	replica := fs.replica()
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usageError{fmt.Errorf("-limit: want 1 to 1000, got %d", *limit)}
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"client": *client, "vendor": *vendor, "list": *list, "name": *name, "since": since.text, "replica": *replica} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *allowed {
		q.Set("allowed", "true")
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	filter := querylog.Filter{Client: *client, Vendor: *vendor, List: *list, Name: *name, Since: since.time, Limit: *limit, Allowed: *allowed, Cursor: *cursor}
	page, err := fetch(ctx, cfg,
		func(c *api.Client) (querylog.Page, error) { return c.Blocked(ctx, q) },
		func(o *offline) (querylog.Page, error) {
			if err := fleetNeedsServer(*replica); err != nil {
				return querylog.Page{}, err
			}
			var err error
			if filter.Client, err = o.resolveClient(cfg, *client); err != nil {
				return querylog.Page{}, err
			}
			return o.qlog.Entries(filter)
		})
	if err != nil {
		return err
	}
	if *asJSON {
		return show(stdout, true, page, func(io.Writer, querylog.Page) {})
	}
	what := "blocked"
	if *allowed {
		what = "allowed"
	}
	printLogPage(stdout, page, what)
	if *allowed && len(page.Entries) == 0 && !cfg.QueryLog.LogAllowed {
		fmt.Fprintf(stdout, "allowed lookups are not logged: querylog.log_allowed is off in %s\n", cfg.Source)
	}
	return nil
}

// printLogPage prints a page of the log as a table; what is "blocked" or
// "allowed".
func printLogPage(w io.Writer, page querylog.Page, what string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fleet := slices.ContainsFunc(page.Entries, func(e querylog.Entry) bool { return e.Replica != "" })
	if fleet {
		fmt.Fprint(tw, "REPLICA\t")
	}
	fmt.Fprintln(tw, "TIME\tCLIENT\tNAME\tTYPE\tVENDOR\tLIST\tRULE")
	for _, e := range page.Entries {
		rule := e.Rule
		if e.Reason == querylog.ReasonCNAME {
			rule += " (via CNAME " + e.CNAME + ")"
		}
		if fleet {
			fmt.Fprintf(tw, "%s\t", e.Replica)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Client,
			strings.TrimSuffix(e.QName, "."), e.QType, e.Vendor, e.List, rule)
	}
	tw.Flush()
	if len(page.Entries) == 0 {
		fmt.Fprintf(w, "no %s lookups match\n", what)
	} else if page.Next != "" {
		fmt.Fprintf(w, "(more: the same command with -cursor %s)\n", page.Next)
	}
}
