package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdClients is "vigil clients": every client with blocked lookups.
func cmdClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("clients", "", "Show every client with blocked lookups: totals per vendor, first and last seen.", stderr)
	since := fs.since()
	replica := fs.replica()
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.ClientsReport, error) { return c.ForReplica(*replica).Clients(ctx, since.text) },
		func(o *offline) (api.ClientsReport, error) {
			if err := fleetNeedsServer(*replica); err != nil {
				return api.ClientsReport{}, err
			}
			cs, err := o.qlog.Clients(since.time, time.Time{})
			return api.ClientsReport{Since: since.time, Clients: cs}, err
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printClients)
}

// printClients prints the clients report as a table.
func printClients(w io.Writer, rep api.ClientsReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tADDRESSES\tBLOCKED\tVENDORS\tFIRST\tLAST")
	for _, c := range rep.Clients {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", c.Client, strings.Join(c.Addrs, ","), c.Total, countsText(c.Vendors),
			c.First.Local().Format("2006-01-02 15:04"), c.Last.Local().Format("2006-01-02 15:04"))
	}
	tw.Flush()
	if len(rep.Clients) == 0 {
		fmt.Fprintln(w, "no blocked lookups in this window")
	}
}

// countsText renders {"Xiaomi": 12, "Google": 3} as "Xiaomi 12, Google 3".
func countsText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		label := k
		if label == "" {
			label = "(untagged)"
		}
		parts[i] = fmt.Sprintf("%s %d", label, m[k])
	}
	return strings.Join(parts, ", ")
}
