package resolver_test

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// router answers for the "lan" zone and private reverse names, as a home
// router's DNS does.
func routerStub(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeA && strings.EqualFold(q.Name, "printer.lan."):
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 168, 1, 9}}}
	case q.Qtype == dns.TypePTR && strings.EqualFold(q.Name, "9.1.168.192.in-addr.arpa."):
		m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 60}, Ptr: "printer.lan."}}
	default:
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// Split DNS: the zones of a [[forward]] section go to its servers only,
// the longest zone winning, everything else to the public upstream; names
// that must stay inside the network are answered locally when no
// forwarder claims them, and never reach the public upstream.
func TestForwardZonesAndLocallyServed(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	router := rt.NewUpstream(t, routerStub)
	office := rt.NewUpstream(t, rt.A("198.51.100.7", 300))
	v := startVigil(t, []string{public.Addr}, func(c *testConfig) {
		c.Forward = []resolver.ForwardConfig{
			{Zones: []string{"lan", "168.192.in-addr.arpa"}, Servers: resolver.MustParseUpstreams(router.Addr)},
			{Zones: []string{"Office.LAN."}, Servers: resolver.MustParseUpstreams(office.Addr)},
		}
	})
	type want struct {
		rcode  int
		answer string // the first answer's data, "" for none
		soa    string // the authority SOA's owner, "" for none
		at     *rt.Upstream
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  want
	}{
		{"printer.lan.", dns.TypeA, want{dns.RcodeSuccess, "192.168.1.9", "", router}},
		{"PRINTER.Lan.", dns.TypeA, want{dns.RcodeSuccess, "192.168.1.9", "", nil}}, // from the cache
		{"9.1.168.192.in-addr.arpa.", dns.TypePTR, want{dns.RcodeSuccess, "printer.lan.", "", router}},
		{"nas.office.lan.", dns.TypeA, want{dns.RcodeSuccess, "198.51.100.7", "", office}}, // the longest zone
		{"example.com.", dns.TypeA, want{dns.RcodeSuccess, "192.0.2.1", "", public}},
		// Locally served (no forwarder claims them): never forwarded.
		{"5.0.0.10.in-addr.arpa.", dns.TypePTR, want{dns.RcodeNameError, "", "10.in-addr.arpa.", nil}},
		{"1.0.20.172.in-addr.arpa.", dns.TypePTR, want{dns.RcodeNameError, "", "20.172.in-addr.arpa.", nil}},
		{"9.8.254.169.in-addr.arpa.", dns.TypePTR, want{dns.RcodeNameError, "", "254.169.in-addr.arpa.", nil}},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, want{dns.RcodeNameError, "", "d.f.ip6.arpa.", nil}},
		{"printer.home.arpa.", dns.TypeA, want{dns.RcodeNameError, "", "home.arpa.", nil}},
		{"x.invalid.", dns.TypeA, want{dns.RcodeNameError, "", "invalid.", nil}},
		{"foo.test.", dns.TypeAAAA, want{dns.RcodeNameError, "", "test.", nil}},
		{"tv.local.", dns.TypeA, want{dns.RcodeNameError, "", "local.", nil}},
		{"duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion.", dns.TypeA, want{dns.RcodeNameError, "", "onion.", nil}},
		{"10.in-addr.arpa.", dns.TypeSOA, want{dns.RcodeSuccess, "localhost.", "", nil}},
		{"10.in-addr.arpa.", dns.TypeA, want{dns.RcodeSuccess, "", "10.in-addr.arpa.", nil}},
		{"localhost.", dns.TypeA, want{dns.RcodeSuccess, "127.0.0.1", "", nil}},
		{"app.localhost.", dns.TypeAAAA, want{dns.RcodeSuccess, "::1", "", nil}},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, want{dns.RcodeSuccess, "localhost.", "", nil}},
		{"printer.", dns.TypeA, want{dns.RcodeNameError, "", "", nil}}, // a single-label name
		// Not special: public DNS.
		{"100.in-addr.arpa.", dns.TypeNS, want{dns.RcodeSuccess, "", "", public}},
		{"8.8.8.8.in-addr.arpa.", dns.TypePTR, want{dns.RcodeSuccess, "", "", public}},
		{"com.", dns.TypeNS, want{dns.RcodeSuccess, "", "", public}},
	} {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			before := map[*rt.Upstream]int64{public: public.Queries(), router: router.Queries(), office: office.Queries()}
			r := rt.Exchange(t, "udp", v.addr, rt.Question(tc.name, tc.qtype))
			if r.Rcode != tc.want.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.want.rcode])
			}
			if tc.want.answer != "" {
				if len(r.Answer) == 0 {
					t.Fatalf("no answer, want %s", tc.want.answer)
				}
				var got string
				switch rr := r.Answer[0].(type) {
				case *dns.A:
					got = rr.A.String()
				case *dns.AAAA:
					got = rr.AAAA.String()
				case *dns.PTR:
					got = rr.Ptr
				case *dns.SOA:
					got = rr.Ns
				}
				if got != tc.want.answer {
					t.Errorf("answer %s, want %s", r.Answer[0], tc.want.answer)
				}
			}
			if tc.want.soa != "" {
				if len(r.Ns) != 1 || r.Ns[0].Header().Name != tc.want.soa || r.Ns[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("authority %v, want the SOA of %s", r.Ns, tc.want.soa)
				}
			}
			for _, u := range []*rt.Upstream{public, router, office} {
				asked := u.Queries() - before[u]
				if u == tc.want.at && asked != 1 || u != tc.want.at && asked != 0 {
					t.Errorf("upstream %s asked %d times; want it asked only if it is the zone's", u.Addr, asked)
				}
			}
		})
	}
}

// The rebinding guard takes private and loopback addresses out of public
// answers (not out of forward zones' or allowed zones'), and leaves the
// public ones.
func TestRebindingGuard(t *testing.T) {
	mixed := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		name := r.Question[0].Name
		hdr := dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}
		for _, ip := range [][]byte{{192, 168, 1, 1}, {127, 0, 0, 1}, {10, 1, 2, 3}, {169, 254, 1, 1}, {0, 0, 0, 0}, {203, 0, 113, 5}} {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
		}
		if r.Question[0].Qtype == dns.TypeAAAA {
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = []dns.RR{
				&dns.AAAA{Hdr: hdr, AAAA: []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
				&dns.AAAA{Hdr: hdr, AAAA: []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
				&dns.AAAA{Hdr: hdr, AAAA: []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1}},
				&dns.AAAA{Hdr: hdr, AAAA: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
			}
		}
		_ = w.WriteMsg(m)
	}
	public := rt.NewUpstream(t, mixed)
	internal := rt.NewUpstream(t, mixed)
	v := startVigil(t, []string{public.Addr}, func(c *testConfig) {
		c.Forward = []resolver.ForwardConfig{{Zones: []string{"corp.example"}, Servers: resolver.MustParseUpstreams(internal.Addr)}}
		c.Network.RebindAllow = []string{"plex.direct"}
	})
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  int
	}{
		{"rebind.attacker.example.", dns.TypeA, 1},    // only 203.0.113.5 is left
		{"rebind.attacker.example.", dns.TypeAAAA, 1}, // only 2001:db8::1
		{"nas.corp.example.", dns.TypeA, 6},           // a forward zone: internal answers are the point
		{"192-168-1-5.abc.plex.direct.", dns.TypeA, 6},
	} {
		r := rt.Exchange(t, "udp", v.addr, rt.Question(tc.name, tc.qtype))
		if len(r.Answer) != tc.want {
			t.Errorf("%s %s: %d answers %v, want %d", tc.name, dns.TypeToString[tc.qtype], len(r.Answer), r.Answer, tc.want)
		}
	}
	// Cached, the guarded answer stays guarded.
	if r := rt.Exchange(t, "udp", v.addr, rt.Question("rebind.attacker.example.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("from the cache: %v", r.Answer)
	}
	if n := v.chain.Router.RebindDropped(); n != 8 {
		t.Errorf("RebindDropped %d, want 8 (5 IPv4, 3 IPv6)", n)
	}
}

func TestValidateForwards(t *testing.T) {
	ok := resolver.MustParseUpstreams("192.168.1.1:53")
	for _, tc := range []struct {
		name string
		fs   []resolver.ForwardConfig
		want string // "" for valid
	}{
		{"valid", []resolver.ForwardConfig{{Zones: []string{"lan", "168.192.in-addr.arpa."}, Servers: ok}}, ""},
		{"no zones", []resolver.ForwardConfig{{Servers: ok}}, "forward[0].zones: want at least one zone"},
		{"root", []resolver.ForwardConfig{{Zones: []string{"."}, Servers: ok}}, "forward[0].zones[0]: want a zone"},
		{"bad name", []resolver.ForwardConfig{{Zones: []string{"a..b"}, Servers: ok}}, "forward[0].zones[0]: want a zone name"},
		{"twice", []resolver.ForwardConfig{{Zones: []string{"lan"}, Servers: ok}, {Zones: []string{"LAN."}, Servers: ok}}, `forward[1].zones[0]: "LAN." is also in forward[0]`},
		{"no servers", []resolver.ForwardConfig{{Zones: []string{"lan"}}}, "forward[0].servers: want at least one server"},
		{"host name", []resolver.ForwardConfig{{Zones: []string{"lan"}, Servers: resolver.MustParseUpstreams("tls://router.lan:853")}}, "forward[0].servers[0]: want an IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := resolver.ValidateForwards(tc.fs)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A reload adds and removes forward zones; a name it takes out of a
// forward zone is served locally again when it is one of those.
func TestForwardZonesReload(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	router := rt.NewUpstream(t, routerStub)
	var cfg testConfig
	v := startVigil(t, []string{public.Addr}, func(c *testConfig) {
		c.Cache.Enabled = false // every answer from its upstream
		cfg = *c
	})
	chainCfg := func(fs []resolver.ForwardConfig) resolver.ChainConfig {
		return resolver.ChainConfig{Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking, Network: cfg.Network, Forward: fs}
	}
	ptr := rt.Question("9.1.168.192.in-addr.arpa.", dns.TypePTR)
	if r := rt.Exchange(t, "udp", v.addr, ptr); r.Rcode != dns.RcodeNameError || router.Queries() != 0 {
		t.Fatalf("before: rcode %s, router asked %d; want local NXDOMAIN", dns.RcodeToString[r.Rcode], router.Queries())
	}
	if err := v.chain.Reconfigure(chainCfg([]resolver.ForwardConfig{{Zones: []string{"168.192.in-addr.arpa"}, Servers: resolver.MustParseUpstreams(router.Addr)}})); err != nil {
		t.Fatal(err)
	}
	if r := rt.Exchange(t, "udp", v.addr, ptr); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || router.Queries() != 1 {
		t.Fatalf("with the zone: rcode %s, %v, router asked %d; want the router's PTR", dns.RcodeToString[r.Rcode], r.Answer, router.Queries())
	}
	if err := v.chain.Reconfigure(chainCfg(nil)); err != nil {
		t.Fatal(err)
	}
	if r := rt.Exchange(t, "udp", v.addr, ptr); r.Rcode != dns.RcodeNameError || router.Queries() != 1 || public.Queries() != 0 {
		t.Fatalf("after removing it: rcode %s, router %d, public %d; want local NXDOMAIN again", dns.RcodeToString[r.Rcode], router.Queries(), public.Queries())
	}
}

// mayBeLocalZone must let through every zone of localZones, or the cheap
// test would hide one.
func TestMayBeLocalZoneCoversLocalZones(t *testing.T) {
	for _, z := range resolver.LocalZoneNames() {
		if !resolver.MayBeLocalZone("x." + z) {
			t.Errorf("%s is a local zone but mayBeLocalZone says no", z)
		}
	}
	for _, n := range []string{"example.com.", "arpa.example.", "localhost.example.", "com."} {
		if resolver.MayBeLocalZone(n) {
			t.Errorf("%s: mayBeLocalZone says yes", n)
		}
	}
}

// local.router alone sends the router's zones and the private reverse
// zones to the router; an explicit [[forward]] for one of them wins.
func TestRouterShortcut(t *testing.T) {
	public := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	router := rt.NewUpstream(t, routerStub)
	other := rt.NewUpstream(t, rt.A("198.51.100.9", 300))
	v := startVigil(t, []string{public.Addr}, func(c *testConfig) {
		c.Cache.Enabled = false
		if err := c.Network.Router.UnmarshalText([]byte(router.Addr)); err != nil {
			t.Fatal(err)
		}
		c.Forward = []resolver.ForwardConfig{{Zones: []string{"home.arpa"}, Servers: resolver.MustParseUpstreams(other.Addr)}}
	})
	for _, tc := range []struct {
		name  string
		qtype uint16
		at    *rt.Upstream
	}{
		{"printer.lan.", dns.TypeA, router},
		{"9.1.168.192.in-addr.arpa.", dns.TypePTR, router},
		{"1.0.0.10.in-addr.arpa.", dns.TypePTR, router},
		{"5.0.20.172.in-addr.arpa.", dns.TypePTR, router},
		{"nas.home.arpa.", dns.TypeA, other}, // the explicit section wins
		{"example.com.", dns.TypeA, public},
	} {
		before := map[*rt.Upstream]int64{public: public.Queries(), router: router.Queries(), other: other.Queries()}
		rt.Exchange(t, "udp", v.addr, rt.Question(tc.name, tc.qtype))
		for u, n := range before {
			if asked := u.Queries() - n; (u == tc.at) != (asked == 1) {
				t.Errorf("%s: upstream %s asked %d times", tc.name, u.Addr, asked)
			}
		}
	}
	cfg := resolver.DefaultNetworkConfig()
	_ = cfg.Router.UnmarshalText([]byte("tls://router.lan"))
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "local.router: want the router's IP address") {
		t.Errorf("a router by name: %v", err)
	}
}
