package api

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Device is one device of GET /api/v1/devices and `vigil devices`: what
// the network told Vigil about it, and whom it called.
type Device struct {
	// Name is the device's name: from [[clients]] ("config"), given on
	// the dashboard, the API or the CLI ("user"), its DHCP lease ("lease"),
	// the PTR record of its address ("ptr"), the log ("log": a name it had
	// when its lookups were recorded), or "" when only its address is known.
	Name       string `json:"name"`
	NameSource string `json:"name_source"`
	// Addresses it used (or holds, by lease or neighbour table).
	Addresses      []string                 `json:"addresses"`
	MAC            string                   `json:"mac,omitempty"`
	HardwareVendor neighbors.HardwareVendor `json:"hardware_vendor"`
	FirstSeen      time.Time                `json:"first_seen,omitzero"`
	LastSeen       time.Time                `json:"last_seen,omitzero"`
	// Queries is every lookup of the device in the window, blocked or
	// not; known only when querylog.log_allowed is on (null otherwise).
	Queries *int           `json:"queries"`
	Blocked int            `json:"blocked"`
	Vendors map[string]int `json:"vendors"`
	// Groups are the device's [[groups]] (none: every list applies, or
	// there are no groups).
	Groups []string `json:"groups,omitempty"`
}

// DevicesReport is the answer of GET /api/v1/devices.
type DevicesReport struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"` // zero: up to now
	Devices []Device  `json:"devices"`
}

// BuildDevices joins the log's clients in a window with what the network
// told about devices (leases, the neighbour table) and the [[clients]]
// names: one Device per MAC where it is known (a device renamed by its
// lease is one device, under its current name), else per name, else per
// address. A device the network knows but whose lookups were never
// blocked is listed too, with no counts.
func BuildDevices(clients []querylog.ClientSummary, learned []neighbors.Device, configured []string) []Device {
	isConfigured := map[string]bool{}
	for _, n := range configured {
		isConfigured[n] = true
	}
	var ds []*Device
	for _, c := range clients {
		d := &Device{Name: c.Name, Addresses: slices.Clone(c.Addrs), MAC: c.MAC, Blocked: c.Total, Vendors: maps.Clone(c.Vendors), FirstSeen: c.First, LastSeen: c.Last}
		if d.Name != "" {
			d.NameSource = "log" // a name the log kept: a lease since changed or gone, or an earlier configuration
			if isConfigured[d.Name] {
				d.NameSource = "config"
			}
		}
		ds = append(ds, d)
	}
	for _, l := range learned {
		d := &Device{Addresses: []string{l.Addr.String()}, MAC: l.MAC, Vendors: map[string]int{}}
		if l.Name != "" {
			d.Name, d.NameSource = l.Name, l.NameSource
		}
		ds = append(ds, d)
	}
	// Merge: by MAC, then by name, then by address.
	merged := map[string]*Device{}
	var order []string
	for _, d := range ds {
		var key string
		switch {
		case d.MAC != "":
			key = "mac " + d.MAC
		case d.Name != "":
			key = "name " + d.Name
		default:
			key = "addr " + strings.Join(d.Addresses, ",")
		}
		// A device known by MAC absorbs, below, the log's rows without a
		// MAC for its name or for an address it holds (rows from before
		// its lease or the neighbour table named it; with DHCP, possibly
		// an earlier holder of the address: the price of one row per
		// device).
		if m, ok := merged[key]; ok {
			mergeDevice(m, d)
			continue
		}
		merged[key] = d
		order = append(order, key)
	}
	for _, key := range order {
		d := merged[key]
		if d == nil || d.MAC == "" {
			continue
		}
		others := []string{"name " + d.Name}
		for _, addr := range slices.Clone(d.Addresses) {
			others = append(others, "addr "+addr)
		}
		for _, other := range others {
			if o := merged[other]; o != nil && o != d && o.MAC == "" {
				mergeDevice(d, o)
				merged[other] = nil
			}
		}
	}
	out := make([]Device, 0, len(merged))
	for _, key := range order {
		d := merged[key]
		if d == nil {
			continue
		}
		if d.MAC != "" {
			d.HardwareVendor = neighbors.VendorOf(d.MAC)
		}
		slices.Sort(d.Addresses)
		d.Addresses = slices.Compact(d.Addresses)
		out = append(out, *d)
	}
	sortDevices(out, "blocked")
	return out
}

// CountQueries sets each device's Queries: its blocked lookups and the
// allowed ones the log holds under any identity it has (its name, or an
// address it used).
func CountQueries(ds []Device, allowed map[string]int) {
	for i := range ds {
		d := &ds[i]
		n := d.Blocked
		seen := map[string]bool{}
		for _, id := range append([]string{d.Name}, d.Addresses...) {
			if id != "" && !seen[id] {
				seen[id] = true
				n += allowed[id]
			}
		}
		d.Queries = &n
	}
}

// mergeDevice folds o into d. The name a configuration or a lease gives
// now wins over one the log kept.
func mergeDevice(d, o *Device) {
	if rankSource(o.NameSource) > rankSource(d.NameSource) {
		d.Name, d.NameSource = o.Name, o.NameSource
	}
	d.Addresses = append(d.Addresses, o.Addresses...)
	d.Blocked += o.Blocked
	for v, n := range o.Vendors {
		d.Vendors[v] += n
	}
	if !o.FirstSeen.IsZero() && (d.FirstSeen.IsZero() || o.FirstSeen.Before(d.FirstSeen)) {
		d.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(d.LastSeen) {
		d.LastSeen = o.LastSeen
	}
}

// rankSource orders where a name came from, most current first.
func rankSource(s string) int {
	switch s {
	case "config":
		return 4
	case "lease":
		return 3
	case "ptr":
		return 2
	case "log":
		return 1
	}
	return 0
}

// sortDevices orders devices by a column: "blocked" (most first, the
// default), "name", "last_seen" (latest first) or "hardware_vendor".
func sortDevices(ds []Device, by string) {
	label := func(d Device) string {
		if d.Name != "" {
			return d.Name
		}
		if len(d.Addresses) > 0 {
			return d.Addresses[0]
		}
		return ""
	}
	slices.SortStableFunc(ds, func(a, b Device) int {
		var c int
		switch by {
		case "name":
		case "last_seen":
			c = b.LastSeen.Compare(a.LastSeen)
		case "hardware_vendor":
			c = cmp.Compare(a.HardwareVendor.Name, b.HardwareVendor.Name)
		default:
			c = cmp.Compare(b.Blocked, a.Blocked)
		}
		return cmp.Or(c, cmp.Compare(label(a), label(b)))
	})
}

// deviceSorts are the columns ?sort= takes.
var deviceSorts = []string{"blocked", "name", "last_seen", "hardware_vendor"}

// FilterDevices keeps the devices whose hardware maker contains vendor
// (case-insensitively), and sorts them by a column.
func FilterDevices(ds []Device, vendor, sortBy string) []Device {
	if vendor != "" {
		v := strings.ToLower(vendor)
		ds = slices.DeleteFunc(ds, func(d Device) bool { return !strings.Contains(strings.ToLower(d.HardwareVendor.Name), v) })
	}
	sortDevices(ds, sortBy)
	return ds
}

// devices lists every device seen in the window (?since, ?until), with
// its hardware maker and the vendors it called; ?hardware_vendor filters
// by maker, ?sort orders.
func (a *api) devices(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	sortBy := q.Get("sort")
	if sortBy != "" && !slices.Contains(deviceSorts, sortBy) {
		return badRequest(fmt.Errorf("sort: want one of %s, got %q", strings.Join(deviceSorts, ", "), sortBy))
	}
	return a.answerWindow(w, r, func(since, until time.Time) (any, error) {
		cs, err := a.logOf(r).Clients(since, until)
		if err != nil {
			return nil, err
		}
		var learned []neighbors.Device
		if a.d.Neighbors != nil {
			learned = a.d.Neighbors.Devices()
		}
		var configured []string
		if a.d.Clients != nil {
			for _, c := range a.d.Clients() {
				configured = append(configured, c.Name)
			}
		}
		ds := BuildDevices(cs, learned, configured)
		a.applyNames(ds)
		a.groupDevices(ds)
		if a.d.AllowedLogged {
			allowed, err := a.logOf(r).AllowedCounts(since, until)
			if err != nil {
				return nil, err
			}
			CountQueries(ds, allowed)
		}
		return DevicesReport{Since: since, Until: until, Devices: FilterDevices(ds, q.Get("hardware_vendor"), sortBy)}, nil
	})
}

// groupDevices names each device's groups.
func (a *api) groupDevices(ds []Device) {
	g := a.groups()
	if g.Len() == 0 {
		return
	}
	for i := range ds {
		d := &ds[i]
		var addr netip.Addr
		if len(d.Addresses) > 0 {
			addr, _ = netip.ParseAddr(d.Addresses[0])
		}
		var mac [6]byte
		if hw, err := net.ParseMAC(d.MAC); err == nil && len(hw) == 6 {
			mac = [6]byte(hw)
		}
		if m := g.Of(d.Name, addr.Unmap(), mac); m != nil {
			d.Groups = m.Names
		}
	}
}
