package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/store"
)

// cmdTop is "vigil top": the most blocked vendors, clients and names.
func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("top", "Show the most blocked names, clients and vendors.", stderr)
	since := fs.String("since", "24h", "from this long ago (24h, 7d) or this RFC 3339 `TIME`")
	limit := fs.Int("limit", 10, "rows per table")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sinceT, err := parseSince(*since)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (store.TopReport, error) { return c.Top(ctx, *since, *limit) },
		func(o *offline) (store.TopReport, error) { return o.store.LogTop(sinceT, time.Time{}, *limit) })
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "%d blocked lookups since %s\n\n", rep.Total, rep.Since.Local().Format("2006-01-02 15:04"))
	for _, table := range []struct {
		title string
		rows  []store.Count
	}{{"VENDOR", rep.Vendors}, {"CLIENT", rep.Clients}, {"NAME", rep.Names}} {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tBLOCKED\n", table.title)
		for _, r := range table.rows {
			key := strings.TrimSuffix(r.Key, ".")
			if r.Vendor != "" {
				key += " (" + r.Vendor + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\n", key, r.Count)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	return nil
}
