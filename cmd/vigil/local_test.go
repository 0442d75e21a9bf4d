package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver/neighbors"
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

// Devices named by nobody but the network: a lease file names one client,
// the neighbour table gives another's MAC, which a [[clients]] table by
// MAC names (no trusted forwarder needed); the per-client log shows them
// by those names, and a changed lease file renames a client.
func TestServeLearnsDeviceNames(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	dir := t.TempDir()
	leases := filepath.Join(dir, "dnsmasq.leases")
	arp := filepath.Join(dir, "arp")
	expiry := time.Now().Add(time.Hour).Unix()
	writeFile(t, leases, fmt.Sprintf("%d a4:45:19:01:02:03 127.0.0.7 Redmi-Note-12 *\n", expiry))
	writeFile(t, arp, "IP address       HW type     Flags       HW address            Mask     Device\n"+
		"127.0.0.8        0x1         0x2         aa:bb:cc:dd:ee:08     *        lo\n")
	cfgPath := writeTestConfig(t, up.Addr, logTestLists+fmt.Sprintf(`
[identify]
lease_files = [%q]
neighbor_table = %q
[[clients]]
name = "vacuum"
macs = ["aa:bb:cc:dd:ee:08"]
`, leases, arp))
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	queryFrom(t, "127.0.0.7", addr, "a.xiaomi.example")
	queryFrom(t, "127.0.0.8", addr, "b.xiaomi.example")
	queryFrom(t, "127.0.0.9", addr, "c.xiaomi.example")
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 3 })
	names := func() map[string]bool {
		clients, err := apiClient(t, inst).Clients(t.Context(), "1h")
		noErr(t, err)
		got := map[string]bool{}
		for _, c := range clients.Clients {
			got[c.Client] = true
		}
		return got
	}
	if got := names(); !got["redmi-note-12"] || !got["vacuum"] || !got["127.0.0.9"] || len(got) != 3 {
		t.Errorf("clients %v, want redmi-note-12 (lease), vacuum (neighbour MAC) and 127.0.0.9", got)
	}

	writeFile(t, leases, fmt.Sprintf("%d a4:45:19:01:02:03 127.0.0.7 kids-phone *\n", expiry))
	inst.neighbors.Refresh()
	queryFrom(t, "127.0.0.7", addr, "d.xiaomi.example")
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 4 })
	if got := names(); !got["kids-phone"] {
		t.Errorf("clients %v after the lease changed, want kids-phone", got)
	}

	// The inventory: every device, its name's source, MAC and maker.
	rep, err := apiClient(t, inst).Devices(t.Context(), "1h", "", "name")
	noErr(t, err)
	byName := map[string]api.Device{}
	for _, d := range rep.Devices {
		byName[d.Name] = d
	}
	xiaomi := neighbors.HardwareVendor{Name: "Xiaomi Communications Co Ltd"}
	if d := byName["kids-phone"]; d.NameSource != "lease" || d.MAC != "a4:45:19:01:02:03" || d.HardwareVendor != xiaomi ||
		d.Blocked != 2 || d.Vendors["Xiaomi"] != 2 || !slices.Equal(d.Addresses, []string{"127.0.0.7"}) {
		t.Errorf("kids-phone: %+v; want both lookups, the one logged under its old name too (same MAC)", d)
	}
	if d, ok := byName["redmi-note-12"]; ok {
		t.Errorf("the phone's old name is a device of its own: %+v", d)
	}
	if d := byName["vacuum"]; d.NameSource != "config" || d.MAC != "aa:bb:cc:dd:ee:08" || !d.HardwareVendor.Randomized {
		t.Errorf("vacuum: %+v; want named by config, its locally administered MAC marked randomised", d)
	}
	if d := byName[""]; !slices.Equal(d.Addresses, []string{"127.0.0.9"}) || d.MAC != "" {
		t.Errorf("the unnamed device: %+v", d)
	}
	rep, err = apiClient(t, inst).Devices(t.Context(), "1h", "xiaomi", "")
	noErr(t, err)
	if len(rep.Devices) != 1 || rep.Devices[0].Name != "kids-phone" {
		t.Errorf("devices made by Xiaomi: %+v, want kids-phone only", rep.Devices)
	}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"devices", "-config", cfgPath, "-maker", "Xiaomi"}, &out, &errOut); err != nil {
		t.Fatalf("vigil devices: %v: %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "kids-phone") || !strings.Contains(out.String(), "Xiaomi Communications Co Ltd") || strings.Contains(out.String(), "vacuum") {
		t.Errorf("vigil devices -maker Xiaomi:\n%s", out.String())
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A client nothing else names is named by the PTR record of its address,
// asked of the forward zone holding the reverse name, never of the public
// upstream.
func TestServePTRNames(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	router := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Qtype == dns.TypePTR && q.Name == "10.0.0.127.in-addr.arpa." {
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 60}, Ptr: "Printer.LAN."}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	cfgPath := writeTestConfig(t, public.Addr, logTestLists+fmt.Sprintf(`
[identify]
neighbor_table = ""
[[forward]]
zones = ["0.0.127.in-addr.arpa"]
servers = [%q]
`, router.Addr))
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	queryFrom(t, "127.0.0.10", addr, "a.xiaomi.example") // asks for the name, in the background
	waitFor(t, "the PTR name", func() bool { name, _ := inst.neighbors.Lookup(netip.MustParseAddr("127.0.0.10")); return name != "" })
	queryFrom(t, "127.0.0.10", addr, "b.xiaomi.example")
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 2 })
	rep, err := apiClient(t, inst).Devices(t.Context(), "1h", "", "")
	noErr(t, err)
	found := false
	for _, d := range rep.Devices {
		if d.Name == "printer.lan" {
			found = d.NameSource == "ptr" && d.Blocked == 1
		}
	}
	if !found {
		t.Errorf("devices %+v, want printer.lan named by ptr with its one lookup since", rep.Devices)
	}
	for _, q := range []int64{public.Queries()} {
		if q != 0 {
			t.Errorf("the public upstream was asked %d times; the PTR must go to the router only", q)
		}
	}
}

// Every way of naming a client finds it, through the API and offline, and
// a client nobody knows is an error that says so, with the closest name.
func TestClientMatchingForgives(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, logTestLists+`
[identify]
neighbor_table = ""
[[clients]]
name = "alice-phone"
addresses = ["127.0.0.2"]
`)
	inst, stop := runServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	queryFrom(t, "127.0.0.2", addr, "a.xiaomi.example")
	queryFrom(t, "127.0.0.3", addr, "b.xiaomi.example")
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 2 })
	logFor := func(client string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), []string{"log", "-config", cfgPath, "-client", client}, &out, &errOut)
		return out.String(), err
	}
	check := func(how string) {
		t.Helper()
		for _, c := range []string{"alice-phone", "Alice-Phone", "127.0.0.2"} {
			out, err := logFor(c)
			if err != nil || !strings.Contains(out, "a.xiaomi.example") || strings.Contains(out, "b.xiaomi.example") {
				t.Errorf("%s: vigil log -client %s: %v\n%s", how, c, err, out)
			}
		}
		if out, err := logFor("127.0.0.3"); err != nil || !strings.Contains(out, "b.xiaomi.example") {
			t.Errorf("%s: an unnamed client by its address: %v\n%s", how, err, out)
		}
		if _, err := logFor("alice-phon"); err == nil || !strings.Contains(err.Error(), `did you mean "alice-phone"`) {
			t.Errorf("%s: an unknown client: %v, want an error naming alice-phone", how, err)
		}
	}
	check("through the API")
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"pause", "-config", cfgPath, "-client", "ALICE-PHONE", "5m"}, &out, &errOut); err != nil {
		t.Fatalf("pause -client ALICE-PHONE: %v %s", err, errOut.String())
	}
	if st := inst.pause.Status(); len(st.Clients) != 1 || st.Clients["alice-phone"].IsZero() {
		t.Errorf("pauses %+v, want alice-phone's", st)
	}
	noErr(t, stop())
	check("offline")
}

// With log_allowed on, the inventory counts every lookup of a device;
// with it off, queries is null rather than a wrong number.
func TestDevicesCountQueries(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	for _, logAllowed := range []bool{true, false} {
		cfgPath := writeTestConfig(t, up.Addr, strings.Replace(logTestLists, "[querylog]\n", fmt.Sprintf("[querylog]\nlog_allowed = %v\n", logAllowed), 1)+`
[identify]
neighbor_table = ""
[[clients]]
name = "tv"
addresses = ["127.0.0.3"]
`)
		inst, stop := runServe(t, cfgPath)
		addr := inst.srv.UDPAddrs()[0].String()
		queryFrom(t, "127.0.0.3", addr, "c.lgtv.example")
		queryFrom(t, "127.0.0.3", addr, "allowed-1.example")
		queryFrom(t, "127.0.0.3", addr, "allowed-2.example")
		want := 1
		if logAllowed {
			want = 3
		}
		waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == uint64(want) })
		rep, err := apiClient(t, inst).Devices(t.Context(), "1h", "", "")
		noErr(t, err)
		var tv *api.Device
		for i := range rep.Devices {
			if rep.Devices[i].Name == "tv" {
				tv = &rep.Devices[i]
			}
		}
		switch {
		case tv == nil:
			t.Errorf("log_allowed=%v: no tv in %+v", logAllowed, rep.Devices)
		case logAllowed && (tv.Queries == nil || *tv.Queries != 3 || tv.Blocked != 1):
			t.Errorf("log_allowed on: tv %+v, want 3 queries, 1 blocked", tv)
		case !logAllowed && tv.Queries != nil:
			t.Errorf("log_allowed off: queries %d, want null", *tv.Queries)
		}
		noErr(t, stop())
	}
}
