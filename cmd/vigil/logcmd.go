package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/store/querylog"
)

// fetch gets a report from the running server's API, or, when no server
// runs, computes it from the store directly.
func fetch[T any](ctx context.Context, cfg *Config, path string, offline func(*querylog.Log) (T, error)) (T, error) {
	var out T
	if api, aerr := connectAPI(ctx, cfg); aerr == nil {
		err := api.do(ctx, "GET", path, &out)
		return out, err
	} else {
		off, err := openOffline(cfg, aerr)
		if err != nil {
			return out, err
		}
		defer off.Close()
		return offline(off.qlog)
	}
}

func cmdLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("log", "Show blocked lookups, newest first.", stderr)
	client := fs.String("client", "", "only this `CLIENT` (its name, or its address if unnamed)")
	vendor := fs.String("vendor", "", "only this `VENDOR`")
	list := fs.String("list", "", "only this `LIST`")
	name := fs.String("name", "", "only this `NAME` and its subdomains")
	since := fs.String("since", "24h", "from this long ago (24h, 7d) or this RFC 3339 `TIME`")
	limit := fs.Int("limit", 50, "at most `N` entries")
	allowed := fs.Bool("allowed", false, "show allowed lookups instead (when querylog.log_allowed is on)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usageError{fmt.Errorf("-limit: want 1 to 1000, got %d", *limit)}
	}
	sinceT, err := parseSince(*since)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(resolveConfigPath(*cfgPath))
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"client": *client, "vendor": *vendor, "list": *list, "name": *name, "since": *since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	if *allowed {
		q.Set("allowed", "true")
	}
	page, err := fetch(ctx, cfg, "/api/v1/blocked?"+q.Encode(), func(s *querylog.Log) (querylog.Page, error) {
		return s.Entries(querylog.Filter{Client: *client, Vendor: *vendor, List: *list, Name: *name, Since: sinceT, Limit: *limit, Allowed: *allowed})
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, page)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCLIENT\tNAME\tTYPE\tVENDOR\tLIST\tRULE")
	for _, e := range page.Entries {
		rule := e.Rule
		if e.Reason == querylog.ReasonCNAME {
			rule += " (via CNAME " + e.CNAME + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Client,
			strings.TrimSuffix(e.QName, "."), e.QType, e.Vendor, e.List, rule)
	}
	tw.Flush()
	if len(page.Entries) == 0 {
		fmt.Fprintln(stdout, "no blocked lookups match")
	} else if page.Next != "" {
		fmt.Fprintf(stdout, "(more: raise -limit, or use the API with cursor=%s)\n", page.Next)
	}
	return nil
}

type clientsReport struct {
	Since   time.Time                `json:"since"`
	Until   time.Time                `json:"until"`
	Clients []querylog.ClientSummary `json:"clients"`
}

func cmdClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("clients", "Show every client with blocked lookups: totals per vendor, first and last seen.", stderr)
	since := fs.String("since", "24h", "from this long ago (24h, 7d) or this RFC 3339 `TIME`")
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
	rep, err := fetch(ctx, cfg, "/api/v1/clients?since="+url.QueryEscape(*since), func(s *querylog.Log) (clientsReport, error) {
		cs, err := s.Clients(sinceT, time.Time{})
		return clientsReport{Since: sinceT, Clients: cs}, err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tADDRESSES\tBLOCKED\tVENDORS\tFIRST\tLAST")
	for _, c := range rep.Clients {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", c.Client, strings.Join(c.Addrs, ","), c.Total, countsText(c.Vendors),
			c.First.Local().Format("2006-01-02 15:04"), c.Last.Local().Format("2006-01-02 15:04"))
	}
	tw.Flush()
	if len(rep.Clients) == 0 {
		fmt.Fprintln(stdout, "no blocked lookups in this window")
	}
	return nil
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
	path := fmt.Sprintf("/api/v1/top?since=%s&limit=%d", url.QueryEscape(*since), *limit)
	rep, err := fetch(ctx, cfg, path, func(s *querylog.Log) (querylog.TopReport, error) {
		return s.Top(sinceT, time.Time{}, *limit)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "%d blocked lookups since %s\n\n", rep.Total, rep.Since.Local().Format("2006-01-02 15:04"))
	for _, table := range []struct {
		title string
		rows  []querylog.Count
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
