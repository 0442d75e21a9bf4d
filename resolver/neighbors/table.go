package neighbors

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config says where to learn about devices.
type Config struct {
	// LeaseFiles are DHCP lease files (dnsmasq, ISC dhcpd, Kea CSV,
	// odhcpd; the format is detected), read again when they change.
	LeaseFiles []string
	// NeighborTable is where the kernel's neighbour table is read: the
	// MAC of each device on the same link. NeighborNetlink asks the kernel
	// (IPv4 and IPv6); a path reads a file in /proc/net/arp's format
	// (IPv4 only); "" turns it off.
	NeighborTable string
	// PTRNames names the clients nothing else names by the PTR record of
	// their address (with SetPTR's lookup).
	PTRNames bool
}

// NeighborNetlink as Config.NeighborTable reads the kernel's neighbour
// tables over netlink, IPv6 too.
const NeighborNetlink = "netlink"

// Device is what was learned about one address.
type Device struct {
	Addr netip.Addr
	// Name is the name the device gave its DHCP server, lowercased; ""
	// when none was learned.
	Name string
	// NameSource says where Name came from ("lease", or "ptr": the PTR
	// record of its address).
	NameSource string
	// MAC is its hardware address, from its lease or the neighbour table.
	MAC string
	// Vendor is the maker of MAC.
	Vendor HardwareVendor
}

// Table is a snapshot of what was learned. It never changes once built.
type Table struct {
	byAddr map[netip.Addr]Device
	// names is byAddr's names and MACs by the address's 16 bytes, for
	// Lookup, which runs per query: a key without netip.Addr's zone
	// pointer hashes in one step, and the value is two strings, not a
	// Device.
	names map[[16]byte]nameMAC
}

type nameMAC struct{ name, mac string }

// Lookup returns what is known of addr.
func (t *Table) Lookup(addr netip.Addr) (Device, bool) {
	if t == nil {
		return Device{}, false
	}
	d, ok := t.byAddr[addr]
	return d, ok
}

// Devices returns every device of the snapshot.
func (t *Table) Devices() []Device {
	if t == nil {
		return nil
	}
	out := make([]Device, 0, len(t.byAddr))
	for _, d := range t.byAddr {
		out = append(out, d)
	}
	return out
}

// expiredGrace keeps a lease's name this long past its expiry: a device
// that renews late is still the same device.
const expiredGrace = time.Hour

// build joins leases and the neighbour table: an address is named by its
// lease, or else by the lease of its MAC (a device seen at an address its
// lease file does not list, such as a static one).
func build(leases []Lease, neigh map[netip.Addr]string, now time.Time) *Table {
	t := &Table{byAddr: map[netip.Addr]Device{}}
	nameByMAC := map[string]string{}
	for _, l := range leases {
		if !l.Expires.IsZero() && now.Sub(l.Expires) > expiredGrace {
			continue
		}
		d := Device{Addr: l.Addr, MAC: l.MAC}
		if l.Hostname != "" {
			d.Name, d.NameSource = l.Hostname, "lease"
			if l.MAC != "" {
				nameByMAC[l.MAC] = l.Hostname
			}
		}
		if old, ok := t.byAddr[l.Addr]; ok && d.Name == "" {
			d.Name, d.NameSource = old.Name, old.NameSource
		}
		t.byAddr[l.Addr] = d
	}
	for addr, mac := range neigh {
		d := t.byAddr[addr]
		d.Addr = addr
		if d.MAC == "" {
			d.MAC = mac
		}
		if d.Name == "" {
			if name, ok := nameByMAC[d.MAC]; ok {
				d.Name, d.NameSource = name, "lease"
			}
		}
		t.byAddr[addr] = d
	}
	t.names = make(map[[16]byte]nameMAC, len(t.byAddr))
	for addr, d := range t.byAddr {
		if d.MAC != "" {
			d.Vendor = VendorOf(d.MAC)
			t.byAddr[addr] = d
		}
		t.names[addr.As16()] = nameMAC{d.Name, d.MAC}
	}
	return t
}

// Watcher keeps a Table current from its sources.
type Watcher struct {
	cfg Config
	log *zap.Logger
	now func() time.Time
	cur atomic.Pointer[Table]

	// PTR names (ptr.go): off while ptrLookup is nil.
	ptrLookup PTRFunc
	ptrOn     atomic.Bool // Config.PTRNames
	ptrWant   chan netip.Addr
	ptrNames  atomic.Pointer[map[netip.Addr]ptrName]

	mu      sync.Mutex           // one refresh at a time
	leases  map[string][]Lease   // by file, as last read
	stamps  map[string]fileStamp // by file, when last read
	missing map[string]bool      // files reported missing, to say it once
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewWatcher returns a Watcher; Refresh or Run fill it.
func NewWatcher(cfg Config, log *zap.Logger) *Watcher {
	w := &Watcher{cfg: cfg, log: log, now: time.Now, leases: map[string][]Lease{}, stamps: map[string]fileStamp{}, missing: map[string]bool{}}
	w.ptrOn.Store(cfg.PTRNames)
	return w
}

// Reconfigure replaces the sources (a reload) and reads them.
func (w *Watcher) Reconfigure(cfg Config) {
	w.mu.Lock()
	w.cfg = cfg
	w.ptrOn.Store(cfg.PTRNames)
	w.leases, w.stamps, w.missing = map[string][]Lease{}, map[string]fileStamp{}, map[string]bool{}
	w.mu.Unlock()
	w.Refresh()
}

// Current returns the latest snapshot (nil before the first Refresh).
func (w *Watcher) Current() *Table { return w.cur.Load() }

// Lookup returns the learned name and MAC of addr ("" when unknown): the
// resolver's Clients ask it for clients no [[clients]] entry names.
func (w *Watcher) Lookup(addr netip.Addr) (name, mac string) {
	var nm nameMAC
	if t := w.cur.Load(); t != nil {
		nm = t.names[addr.As16()]
	}
	if nm.name == "" {
		nm.name = w.ptrNameOf(addr)
	}
	return nm.name, nm.mac
}

// Devices returns every device known: from the latest snapshot, and the
// addresses named only by their PTR record.
func (w *Watcher) Devices() []Device {
	ds := w.cur.Load().Devices()
	if w.ptrLookup == nil || !w.ptrOn.Load() {
		return ds
	}
	seen := map[netip.Addr]int{}
	for i, d := range ds {
		seen[d.Addr] = i
	}
	for addr, n := range *w.ptrNames.Load() {
		if n.name == "" {
			continue
		}
		if i, ok := seen[addr]; ok {
			if ds[i].Name == "" {
				ds[i].Name, ds[i].NameSource = n.name, "ptr"
			}
			continue
		}
		ds = append(ds, Device{Addr: addr, Name: n.name, NameSource: "ptr"})
	}
	return ds
}

// Refresh reads the lease files that changed and the neighbour table, and
// swaps in a new snapshot. A file that cannot be read keeps its last
// leases.
func (w *Watcher) Refresh() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, path := range w.cfg.LeaseFiles {
		fi, err := os.Stat(path)
		if err != nil {
			w.reportMissing(path, err)
			continue
		}
		st := fileStamp{fi.ModTime(), fi.Size()}
		if old, ok := w.stamps[path]; ok && old == st {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			w.reportMissing(path, err)
			continue
		}
		delete(w.missing, path)
		w.stamps[path] = st
		w.leases[path] = ParseLeases(data)
	}
	var all []Lease
	for _, path := range w.cfg.LeaseFiles {
		all = append(all, w.leases[path]...)
	}
	var neigh map[netip.Addr]string
	switch w.cfg.NeighborTable {
	case "":
	case NeighborNetlink:
		var err error
		if neigh, err = readNetlinkNeighbors(); err != nil {
			w.reportMissing(NeighborNetlink, err)
		}
	default:
		if data, err := os.ReadFile(w.cfg.NeighborTable); err == nil {
			neigh = ParseNeighbors(data)
		} else {
			w.reportMissing(w.cfg.NeighborTable, err)
		}
	}
	w.cur.Store(build(all, neigh, w.now()))
}

func (w *Watcher) reportMissing(path string, err error) {
	if w.missing[path] {
		return
	}
	w.missing[path] = true
	level := zap.WarnLevel
	if errors.Is(err, fs.ErrNotExist) {
		level = zap.InfoLevel // a DHCP server that has not started yet, or a system without the file
	}
	w.log.Check(level, "cannot read a device-identity source; names from it wait until it can be read").
		Write(zap.String("file", path), zap.Error(err))
}

// Run refreshes every interval, and looks PTR names up when they are on,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) {
	done := make(chan struct{})
	go func() { defer close(done); w.runPTR(ctx) }()
	defer func() { <-done }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Refresh()
			w.expirePTR()
		}
	}
}
