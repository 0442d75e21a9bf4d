package resolver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// Local records and hosts-file names are answered by Vigil itself,
// authoritatively, with PTRs for their addresses, ahead of blocking and
// of the locally-served zones, and never forwarded.
func TestLocalRecords(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte(`# a comment
127.0.0.1	localhost
192.168.1.20  tv.lan  TV   # living room
fd00::20      tv.lan
0.0.0.0 ads.example
not-an-address  x.lan
`), 0o600); err != nil {
		t.Fatal(err)
	}
	netCfg := resolver.DefaultNetworkConfig()
	netCfg.Records = []string{
		"printer.lan. 300 IN A 192.168.1.9",
		"Printer.lan 300 IN TXT \"laser\"",
		"files.lan. 300 IN CNAME nas.home.arpa.",
		"nas.home.arpa. 300 IN A 192.168.1.5",
		"_ipp._tcp.lan. 300 IN SRV 0 0 631 printer.lan.",
		"blocked.example. 60 IN A 192.168.1.99",
	}
	netCfg.HostsFiles = []string{hosts}
	if err := netCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v := startVigil(t, []string{public.Addr}, func(c *testConfig) {
		c.Network = netCfg
		c.Lists = newStaticLists(t, []string{"||blocked.example^"}, nil)
	})
	src := resolver.NewRecordSources(netCfg)
	table, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	v.chain.SetLocalRecords(table)

	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string // each answer's data, in order
	}{
		{"printer.lan.", dns.TypeA, dns.RcodeSuccess, []string{"192.168.1.9"}},
		{"PRINTER.LAN.", dns.TypeTXT, dns.RcodeSuccess, []string{`"laser"`}},
		{"printer.lan.", dns.TypeAAAA, dns.RcodeSuccess, nil}, // NODATA: the name is ours
		{"9.1.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"printer.lan."}},
		{"files.lan.", dns.TypeA, dns.RcodeSuccess, []string{"nas.home.arpa.", "192.168.1.5"}},
		{"nas.home.arpa.", dns.TypeA, dns.RcodeSuccess, []string{"192.168.1.5"}}, // beats the locally-served home.arpa
		{"_ipp._tcp.lan.", dns.TypeSRV, dns.RcodeSuccess, []string{"printer.lan."}},
		{"tv.lan.", dns.TypeA, dns.RcodeSuccess, []string{"192.168.1.20"}},
		{"tv.", dns.TypeA, dns.RcodeSuccess, []string{"192.168.1.20"}}, // an alias, lowercased
		{"tv.lan.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::20"}},
		{"20.1.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"tv.lan.", "tv."}},
		{"blocked.example.", dns.TypeA, dns.RcodeSuccess, []string{"192.168.1.99"}}, // the user's record beats the list
		{"ads.example.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.1"}},        // 0.0.0.0 lines are not hosts
		{"x.lan.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.1"}},
	} {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			before := public.Queries()
			r := rt.Exchange(t, "udp", v.addr, rt.Question(tc.name, tc.qtype))
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			var got []string
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				case *dns.PTR:
					got = append(got, rr.Ptr)
				case *dns.TXT:
					got = append(got, `"`+strings.Join(rr.Txt, "")+`"`)
				case *dns.CNAME:
					got = append(got, rr.Target)
				case *dns.SRV:
					got = append(got, rr.Target)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.answer, " ") {
				t.Errorf("answer %v, want %v", got, tc.answer)
			}
			local := public.Queries() == before
			if wantLocal := len(tc.answer) == 0 || tc.answer[0] != "192.0.2.1"; local != wantLocal {
				t.Errorf("answered locally: %v, want %v", local, wantLocal)
			}
			if local && !r.Authoritative {
				t.Error("a local record's answer must be authoritative")
			}
		})
	}

	// A changed hosts file is noticed, and read again.
	if src.Changed() {
		t.Fatal("Changed before any change")
	}
	if err := os.WriteFile(hosts, []byte("192.168.1.21 tv.lan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !src.Changed() {
		t.Fatal("a rewritten hosts file is not noticed")
	}
	if table, err = src.Load(); err != nil {
		t.Fatal(err)
	}
	v.chain.SetLocalRecords(table)
	if r := rt.Exchange(t, "udp", v.addr, rt.Question("tv.lan.", dns.TypeA)); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.168.1.21" {
		t.Errorf("after the change: %v", r.Answer)
	}
}

func TestLocalRecordValidation(t *testing.T) {
	for _, tc := range []struct{ record, want string }{
		{"printer.lan. 300 IN A 192.168.1.9", ""},
		{"printer.lan. 300 IN A 300.1.1.1", "want a zone-file line"},
		{"printer.lan. 300 IN NS ns.lan.", "want a record of type A, AAAA"},
		{"printer.lan. 300 CH A 192.168.1.9", "want"},
	} {
		cfg := resolver.DefaultNetworkConfig()
		cfg.Records = []string{tc.record}
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.record, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "local.records[0]: "+tc.want)):
			t.Errorf("%q: error %v, want local.records[0]: %s", tc.record, err, tc.want)
		}
	}
	cfg := resolver.DefaultNetworkConfig()
	cfg.HostsFiles = []string{filepath.Join(t.TempDir(), "missing")}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "local.hosts_files[0]: want a readable hosts file") {
		t.Errorf("missing hosts file: %v", err)
	}
}
