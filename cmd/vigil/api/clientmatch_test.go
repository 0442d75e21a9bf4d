package api

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/resolver/neighbors"
)

type fakeNeighbors []neighbors.Device

func (f fakeNeighbors) Devices() []neighbors.Device { return f }

// A client is found by its name in any case, by any of its addresses, or
// by its MAC, whether the configuration, the network or the log knows it;
// an unknown one is a 404 naming the closest known names.
func TestResolveClient(t *testing.T) {
	deps := testDeps(t)
	deps.Retention = 7 * 24 * time.Hour
	deps.Clients = func() []ClientInfo {
		return []ClientInfo{
			{Name: "alice-phone", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, MACs: []string{"aa:bb:cc:dd:ee:01"}},
			{Name: "guests", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
			{Name: "printer", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.5/32")}},
		}
	}
	deps.Neighbors = fakeNeighbors{
		{Addr: netip.MustParseAddr("192.168.1.23"), Name: "kids-phone", NameSource: "lease", MAC: "a4:45:19:01:02:03"},
		{Addr: netip.MustParseAddr("192.168.1.50"), MAC: "da:a1:19:00:00:01"},
	}
	a := &api{d: deps, now: time.Now}
	for _, tc := range []struct{ in, want, err string }{
		{"", "", ""},
		{"alice-phone", "alice-phone", ""},
		{"Alice-Phone", "alice-phone", ""},
		{"127.0.0.2", "alice-phone", ""},
		{"::ffff:127.0.0.2", "alice-phone", ""},
		{"AA-BB-CC-DD-EE-01", "alice-phone", ""},
		{"10.9.0.5", "printer", ""}, // the longest prefix
		{"10.9.3.3", "guests", ""},
		{"KIDS-PHONE", "kids-phone", ""},
		{"192.168.1.23", "kids-phone", ""},
		{"a4:45:19:01:02:03", "kids-phone", ""},
		{"da:a1:19:00:00:01", "192.168.1.50", ""}, // known, unnamed
		{"192.168.1.50", "192.168.1.50", ""},
		{"TV", "tv", ""},               // in the log only
		{"127.0.0.1", "127.0.0.1", ""}, // an address in the log
		{"alice-phon", "", `did you mean "alice-phone"`},
		{"kids-phnoe", "", `did you mean "kids-phone"`},
		{"10.10.10.10", "10.10.10.10", ""}, // an address is never unknown
		{"00:00:5e:00:53:01", "", "no client"},
		{"zz", "", "no client"},
	} {
		got, err := a.resolveClient(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err != "":
			var he *httpError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &he) || he.status != http.StatusNotFound {
				t.Errorf("%q: %q, %v; want a 404 saying %q", tc.in, got, err, tc.err)
			}
		}
	}
}
