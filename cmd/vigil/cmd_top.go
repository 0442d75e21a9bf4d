package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/store/querylog"
)

// cmdTop is "vigil top": the most blocked vendors, clients and names.
func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("top", "", "Show the most blocked names, clients and vendors.", stderr)
	since := fs.since()
	replica := fs.replica()
	limit := fs.Int("limit", 10, "rows per table")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (querylog.TopReport, error) {
			return c.ForReplica(*replica).Top(ctx, since.text, *limit)
		},
		func(o *offline) (querylog.TopReport, error) {
			if err := fleetNeedsServer(*replica); err != nil {
				return querylog.TopReport{}, err
			}
			return o.qlog.Top(since.time, time.Time{}, *limit)
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printTop)
}

// printTop prints the top report as three tables.
func printTop(w io.Writer, rep querylog.TopReport) {
	fmt.Fprintf(w, "%d blocked lookups since %s\n\n", rep.Total, rep.Since.Local().Format("2006-01-02 15:04"))
	for _, table := range []struct {
		title string
		rows  []querylog.Count
	}{{"VENDOR", rep.Vendors}, {"CLIENT", rep.Clients}, {"NAME", rep.Names}} {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tBLOCKED\n", table.title)
		for _, r := range table.rows {
			key := strings.TrimSuffix(r.Key, ".")
			if r.Vendor != "" {
				key += " (" + r.Vendor + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\n", key, r.Count)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
}
