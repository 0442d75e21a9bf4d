package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver/neighbors"
)

// cmdDevices is "vigil devices": every device on the network, with its
// hardware maker and the vendors it called.
func cmdDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("devices", "", "Show every device seen: its name and where it came from, addresses, MAC and hardware maker, and the vendors it called.", stderr)
	since := fs.since()
	replica := fs.replica()
	maker := fs.String("maker", "", "only devices whose hardware maker contains `TEXT` (e.g. Xiaomi)")
	sortBy := fs.String("sort", "blocked", "order by `COLUMN`: blocked, name, last_seen or hardware_vendor")
	asJSON := fs.Bool("json", false, "print JSON")
	cfg, err := fs.load(args)
	if err != nil {
		return err
	}
	rep, err := fetch(ctx, cfg,
		func(c *api.Client) (api.DevicesReport, error) {
			return c.ForReplica(*replica).Devices(ctx, since.text, *maker, *sortBy)
		},
		func(o *offline) (api.DevicesReport, error) {
			if err := fleetNeedsServer(*replica); err != nil {
				return api.DevicesReport{}, err
			}
			cs, err := o.qlog.Clients(since.time, time.Time{})
			if err != nil {
				return api.DevicesReport{}, err
			}
			w := neighbors.NewWatcher(neighborsConfig(cfg.Identify), zap.NewNop())
			w.Refresh()
			names := make([]string, len(cfg.Clients))
			for i, c := range cfg.Clients {
				names[i] = c.Name
			}
			ds := api.BuildDevices(cs, w.Devices(), names)
			if cfg.QueryLog.LogAllowed {
				allowed, err := o.qlog.AllowedCounts(since.time, time.Time{})
				if err != nil {
					return api.DevicesReport{}, err
				}
				api.CountQueries(ds, allowed)
			}
			ds = api.FilterDevices(ds, *maker, *sortBy)
			return api.DevicesReport{Since: since.time, Devices: ds}, nil
		})
	if err != nil {
		return err
	}
	return show(stdout, *asJSON, rep, printDevices)
}

// printDevices prints the devices report as a table.
func printDevices(w io.Writer, rep api.DevicesReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAMED BY\tADDRESSES\tMAC\tMAKER\tBLOCKED\tVENDORS CALLED\tLAST SEEN")
	for _, d := range rep.Devices {
		name, source := d.Name, d.NameSource
		if name == "" {
			name, source = "(unnamed)", "-"
		}
		maker := d.HardwareVendor.Name
		switch {
		case d.HardwareVendor.Randomized:
			maker = "(randomised MAC)"
		case d.MAC == "":
			maker = "-"
		case maker == "":
			maker = "(unregistered)"
		}
		mac, last := d.MAC, "-"
		if mac == "" {
			mac = "-"
		}
		if !d.LastSeen.IsZero() {
			last = d.LastSeen.Local().Format("2006-01-02 15:04")
		}
		vendors := countsText(d.Vendors)
		if vendors == "" {
			vendors = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, source, strings.Join(d.Addresses, ","), mac, maker, d.Blocked, vendors, last)
	}
	tw.Flush()
	if len(rep.Devices) == 0 {
		fmt.Fprintln(w, "no devices seen in this window")
	}
}
