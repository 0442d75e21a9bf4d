package api

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store/querylog"
)

func TestBuildDevices(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clients := []querylog.ClientSummary{
		{Client: "tv", Name: "tv", Addrs: []string{"192.168.1.30"}, Total: 7, Vendors: map[string]int{"LG": 7}, First: t0, Last: t0.Add(time.Hour)},
		// logged under the name its lease gave before, with its MAC
		{Client: "redmi", Name: "redmi", Addrs: []string{"192.168.1.23"}, MAC: "a4:45:19:01:02:03", Total: 3, Vendors: map[string]int{"Xiaomi": 3}, First: t0.Add(-time.Hour), Last: t0},
		// and under its address, before anything named it
		{Client: "192.168.1.23", Addrs: []string{"192.168.1.23"}, Total: 1, Vendors: map[string]int{"Xiaomi": 1}, First: t0.Add(-2 * time.Hour), Last: t0.Add(-2 * time.Hour)},
		{Client: "192.168.1.99", Addrs: []string{"192.168.1.99"}, Total: 2, Vendors: map[string]int{"Google": 2}, First: t0, Last: t0},
	}
	learned := []neighbors.Device{
		{Addr: netip.MustParseAddr("192.168.1.23"), Name: "kids-phone", NameSource: "lease", MAC: "a4:45:19:01:02:03"},
		{Addr: netip.MustParseAddr("192.168.1.50"), MAC: "da:a1:19:00:00:01"}, // seen, never blocked
	}
	ds := BuildDevices(clients, learned, []string{"tv"})
	got := map[string]Device{}
	for _, d := range ds {
		got[d.Name+"|"+d.Addresses[0]] = d
	}
	if len(ds) != 4 {
		t.Fatalf("%d devices, want 4: %+v", len(ds), ds)
	}
	if d := got["kids-phone|192.168.1.23"]; d.NameSource != "lease" || d.Blocked != 4 || d.Vendors["Xiaomi"] != 4 ||
		!d.FirstSeen.Equal(t0.Add(-2*time.Hour)) || !d.LastSeen.Equal(t0) || d.HardwareVendor.Name != "Xiaomi Communications Co Ltd" {
		t.Errorf("kids-phone: %+v", d)
	}
	if d := got["tv|192.168.1.30"]; d.NameSource != "config" || d.Blocked != 7 {
		t.Errorf("tv: %+v", d)
	}
	if d := got["|192.168.1.50"]; d.Blocked != 0 || !d.HardwareVendor.Randomized {
		t.Errorf("the device never blocked: %+v", d)
	}
	if ds[0].Name != "tv" || ds[1].Name != "kids-phone" {
		t.Errorf("order %v, want most blocked first", []string{ds[0].Name, ds[1].Name})
	}
	byName := FilterDevices(slices.Clone(ds), "", "name")
	if byName[0].Name != "" || byName[len(byName)-1].Name != "tv" {
		t.Errorf("sorted by name: %+v", byName)
	}
	if x := FilterDevices(slices.Clone(ds), "XIAOMI", ""); len(x) != 1 || x[0].Name != "kids-phone" {
		t.Errorf("made by Xiaomi: %+v", x)
	}
}
