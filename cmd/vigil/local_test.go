package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// The running server answers [local] records and hosts-file names, picks
// up a changed hosts file, sends [[forward]] zones to their servers, and
// a reload changes all three.
func TestServeLocalNetwork(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	router := rt.NewUpstream(t, rt.A("192.168.1.1", 60))
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("192.168.1.20 tv.lan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(`[local]
records = ["printer.lan. 300 IN A 192.168.1.9"]
hosts_files = [%q]
[[forward]]
zones = ["corp.example"]
servers = [%q]
`, hosts, router.Addr)
	path := writeTestConfig(t, public.Addr, local)
	inst := startServe(t, path)
	addr := inst.srv.UDPAddrs()[0].String()
	a := func(name string) string {
		t.Helper()
		r := rt.Exchange(t, "udp", addr, rt.Question(name, dns.TypeA))
		if len(r.Answer) == 0 {
			return dns.RcodeToString[r.Rcode]
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	for name, want := range map[string]string{
		"printer.lan.": "192.168.1.9", "tv.lan.": "192.168.1.20", "intranet.corp.example.": "192.168.1.1",
		"example.com.": "192.0.2.1", "nas.home.arpa.": "NXDOMAIN",
	} {
		if got := a(name); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	if public.Queries() != 1 || router.Queries() != 1 {
		t.Errorf("public asked %d, router %d; want 1 each", public.Queries(), router.Queries())
	}

	// The hosts file changes: the next check reads it again.
	if err := os.WriteFile(hosts, []byte("192.168.1.21 tv.lan\n192.168.1.22 radio.lan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst.records.refresh()
	if got := a("radio.lan."); got != "192.168.1.22" {
		t.Errorf("radio.lan after the hosts file changed: %s", got)
	}

	// A reload drops the record and the forward zone.
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`[upstream]
servers = [%q]
[store]
dir = %q
[http]
listen = ""
[log]
level = "warn"
`, public.Addr, filepath.Join(filepath.Dir(path), "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.reload.reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := a("printer.lan."); got != "192.0.2.1" {
		t.Errorf("printer.lan after the reload removed it: %s, want the public answer", got)
	}
	if got := a("www.corp.example."); got != "192.0.2.1" || router.Queries() != 1 {
		t.Errorf("corp.example after the reload removed it: %s, router asked %d", got, router.Queries())
	}
}
