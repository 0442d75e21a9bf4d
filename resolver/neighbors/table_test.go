package neighbors

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	dnsmasq := filepath.Join(dir, "dnsmasq.leases")
	kea := filepath.Join(dir, "kea-leases4.csv")
	arp := filepath.Join(dir, "arp")
	future := time.Now().Add(time.Hour).Unix()
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(kea, "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n"+
		"192.168.1.40,50:ec:50:00:00:40,,3600,0,1,0,0,mi-robot,0\n")
	write(arp, "IP address       HW type     Flags       HW address            Mask     Device\n"+
		"192.168.1.23     0x1         0x2         a4:45:19:01:02:03     *        br-lan\n"+
		"192.168.1.77     0x1         0x2         a4:45:19:01:02:03     *        br-lan\n"+ // the phone at a static address
		"192.168.1.88     0x1         0x2         da:a1:19:00:00:01     *        br-lan\n")
	// The first lease expired long ago.
	write(dnsmasq, "1700000000 00:11:22:33:44:55 192.168.1.60 long-gone *\n"+
		itoa(future)+" a4:45:19:01:02:03 192.168.1.23 Redmi-Note-12 *\n")

	w := NewWatcher(Config{LeaseFiles: []string{dnsmasq, kea, filepath.Join(dir, "not-yet")}, NeighborTable: arp}, zaptest.NewLogger(t))
	if name, _ := w.Lookup(netip.MustParseAddr("192.168.1.23")); name != "" {
		t.Fatalf("a name before the first refresh: %q", name)
	}
	w.Refresh()
	xiaomi := HardwareVendor{Name: "Xiaomi Communications Co Ltd"}
	for _, tc := range []struct {
		addr string
		want Device
	}{
		{"192.168.1.23", Device{Name: "redmi-note-12", NameSource: "lease", MAC: "a4:45:19:01:02:03", Vendor: xiaomi}},
		{"192.168.1.77", Device{Name: "redmi-note-12", NameSource: "lease", MAC: "a4:45:19:01:02:03", Vendor: xiaomi}},
		{"192.168.1.40", Device{Name: "mi-robot", NameSource: "lease", MAC: "50:ec:50:00:00:40", Vendor: VendorOf("50:ec:50:00:00:40")}},
		{"192.168.1.88", Device{MAC: "da:a1:19:00:00:01", Vendor: HardwareVendor{Randomized: true}}},
	} {
		got, ok := w.Current().Lookup(netip.MustParseAddr(tc.addr))
		tc.want.Addr = netip.MustParseAddr(tc.addr)
		if !ok || got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.addr, got, tc.want)
		}
	}
	if _, ok := w.Current().Lookup(netip.MustParseAddr("192.168.1.60")); ok {
		t.Error("an expired lease still names its address")
	}
	if VendorOf("50:ec:50:00:00:40").Name == "" {
		t.Error("50:ec:50 should be a registered Xiaomi prefix")
	}

	// The lease file changes: the next refresh reads it.
	write(dnsmasq, itoa(future)+" a4:45:19:01:02:03 192.168.1.23 kids-phone *\n")
	w.Refresh()
	if name, mac := w.Lookup(netip.MustParseAddr("192.168.1.23")); name != "kids-phone" || mac != "a4:45:19:01:02:03" {
		t.Errorf("after the change: %q %q", name, mac)
	}
	// A file that disappears keeps its last leases.
	if err := os.Remove(kea); err != nil {
		t.Fatal(err)
	}
	w.Refresh()
	if name, _ := w.Lookup(netip.MustParseAddr("192.168.1.40")); name != "mi-robot" {
		t.Errorf("a vanished lease file's names: %q, want kept", name)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
