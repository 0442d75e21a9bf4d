package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
)

// cmdAlerts is "vigil alerts": the alerts raised, newest first; "vigil
// alerts test" sends a sample to the destinations.
func cmdAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args)
	if sub == "test" {
		return cmdAlertsTest(ctx, args, stdout, stderr)
	}
	fs := newFlags("alerts", "", "List the alerts raised (new devices, new vendors, failing lists), newest first.\n"+
		"\"vigil alerts test [-destination NAME]\" sends a sample alert to check the setup.", stderr)
	since := fs.since()
	_ = since.Set("7d")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	if sub != "" {
		fs.Usage()
		return usageError{fmt.Errorf("alerts: unknown command %q", sub)}
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.AlertsReport, error) {
			var out api.AlertsReport
			err := c.Call(ctx, "GET", "/api/v1/alerts?"+url.Values{"since": {since.text}}.Encode(), &out)
			return out, err
		},
		func(o *offline) (api.AlertsReport, error) {
			h, err := alerts.New(cfg.Alerts, alerts.Deps{Store: o.store}).History(since.time, 1000)
			return api.AlertsReport{Enabled: cfg.Alerts.On(), Alerts: h}, err
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printAlerts)
}

func printAlerts(w io.Writer, rep api.AlertsReport) {
	if !rep.Enabled {
		fmt.Fprintln(w, "alerts are off: add an [[alerts.destinations]] to the configuration")
	}
	if len(rep.Alerts) == 0 {
		fmt.Fprintln(w, "no alerts")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRULE\tMESSAGE")
	for _, a := range rep.Alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Time.Local().Format(time.DateTime), a.Rule, strings.ReplaceAll(a.Message, "\n", " "))
	}
	tw.Flush()
}

// cmdAlertsTest is "vigil alerts test": a sample alert to each
// destination of the configuration (or the one named), sent from here.
func cmdAlertsTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("alerts test", "", "Send a sample alert to every [[alerts.destinations]] (or -destination NAME).", stderr)
	dest := fs.String("destination", "", "only the destination called `NAME`")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	if len(cfg.Alerts.Destinations) == 0 {
		return fmt.Errorf("no [[alerts.destinations]] in %s", cfg.Source)
	}
	if err := alerts.New(cfg.Alerts, alerts.Deps{Backoff: []time.Duration{}}).Test(ctx, *dest); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "sample alert sent")
	return nil
}
