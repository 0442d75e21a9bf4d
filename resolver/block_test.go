package resolver_test

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// staticLists is a ListSource whose set a test can swap.
type staticLists struct {
	set atomic.Pointer[blocklists.Set]
}

func newStaticLists(t *testing.T, deny, allow []string) *staticLists {
	s := &staticLists{}
	s.replace(t, deny, allow)
	return s
}

func (s *staticLists) Current() *blocklists.Set { return s.set.Load() }

// replace compiles adblock-syntax rules into a new set.
func (s *staticLists) replace(t *testing.T, deny, allow []string) {
	t.Helper()
	b := blocklists.NewBuilder()
	d, _ := b.AddList(blocklists.ListInfo{Name: "vendor", Vendor: "Vendor"})
	a, _ := b.AddList(blocklists.ListInfo{Name: "mine", Allow: true})
	for idx, rules := range map[int][]string{d: deny, a: allow} {
		_, err := blocklists.Parse(strings.NewReader(strings.Join(rules, "\n")), blocklists.ParseOptions{Format: blocklists.FormatAdblock, MaxRejected: 0},
			func(r blocklists.Rule) { b.Add(idx, r) })
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	s.set.Store(&blocklists.Set{Matcher: m, Built: time.Now()})
}

// cnameUpstream answers "alias.*" names with a CNAME to target, then an A.
func cnameUpstream(target string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if strings.HasPrefix(q.Name, "alias.") {
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: target})
			q.Name = target
		}
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)})
		}
		_ = w.WriteMsg(m)
	}
}

func withLists(lists resolver.ListSource, mod func(*resolver.BlockingConfig)) func(*testConfig) {
	return func(c *testConfig) {
		c.Lists = lists
		c.Blocking = resolver.DefaultBlockingConfig()
		if mod != nil {
			mod(&c.Blocking)
		}
	}
}

func edeOf(r *dns.Msg) *dns.EDNS0_EDE {
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

func TestBlockingAnswers(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	lists := newStaticLists(t, []string{"||tracker.example^", "exact.example"}, []string{"fine.tracker.example"})
	v := startVigil(t, []string{up.Addr}, withLists(lists, nil))
	cases := []struct {
		name    string
		qtype   uint16
		blocked bool
		answer  string // first answer's rdata, "" for none
	}{
		{"tracker.example", dns.TypeA, true, "0.0.0.0"},
		{"deep.sub.tracker.example", dns.TypeA, true, "0.0.0.0"},
		{"tracker.example", dns.TypeAAAA, true, "::"},
		{"tracker.example", dns.TypeTXT, true, ""},
		{"Tracker.EXAMPLE", dns.TypeA, true, "0.0.0.0"},
		{"exact.example", dns.TypeA, true, "0.0.0.0"},
		{"sub.exact.example", dns.TypeA, false, "192.0.2.1"},
		{"fine.tracker.example", dns.TypeA, false, "192.0.2.1"},
		{"unlisted.example", dns.TypeA, false, "192.0.2.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			q := rt.Question(tc.name, tc.qtype)
			q.SetEdns0(1232, false)
			r := rt.Exchange(t, "udp", v.addr, q)
			if r.Rcode != dns.RcodeSuccess {
				t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
			}
			got := ""
			if len(r.Answer) > 0 {
				switch a := r.Answer[0].(type) {
				case *dns.A:
					got = a.A.String()
				case *dns.AAAA:
					got = a.AAAA.String()
				}
			}
			if got != tc.answer {
				t.Errorf("answer %q, want %q", got, tc.answer)
			}
			ede := edeOf(r)
			if tc.blocked {
				if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked || !strings.Contains(ede.ExtraText, "vendor") {
					t.Errorf("EDE %v, want Blocked naming the list", ede)
				}
				if len(r.Answer) > 0 && r.Answer[0].Header().Ttl != 10 {
					t.Errorf("blocked TTL %d, want 10", r.Answer[0].Header().Ttl)
				}
				if len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
					t.Error("empty blocked answer without an SOA")
				}
			} else if ede != nil {
				t.Errorf("unexpected EDE %v", ede)
			}
		})
	}
}

func TestBlockingModes(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	lists := newStaticLists(t, []string{"||tracker.example^"}, nil)
	cases := []struct {
		mode   string
		mod    func(*resolver.BlockingConfig)
		rcode  int
		answer string
	}{
		{"nxdomain", func(c *resolver.BlockingConfig) { c.Answer = resolver.AnswerNXDomain }, dns.RcodeNameError, ""},
		{"refused", func(c *resolver.BlockingConfig) { c.Answer = resolver.AnswerRefused }, dns.RcodeRefused, ""},
		{"ip", func(c *resolver.BlockingConfig) {
			c.Answer = resolver.AnswerIP
			c.IPv4 = []netip.Addr{netip.MustParseAddr("192.168.1.10")}
		}, dns.RcodeSuccess, "192.168.1.10"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			v := startVigil(t, []string{up.Addr}, withLists(lists, tc.mod))
			r := rt.Exchange(t, "udp", v.addr, rt.Question("a.tracker.example", dns.TypeA))
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.answer != "" && (len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.answer) {
				t.Errorf("answer %v, want %s", r.Answer, tc.answer)
			}
			if tc.mode == "nxdomain" && (len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != 10) {
				t.Errorf("NXDOMAIN authority %v, want an SOA with minimum 10 (RFC 2308)", r.Ns)
			}
		})
	}
	if up.Queries() != 0 {
		t.Errorf("blocked names reached the upstream %d times", up.Queries())
	}
}

func TestCNAMECloakingBlocked(t *testing.T) {
	up := rt.NewUpstream(t, cnameUpstream("cdn.tracker.example."))
	lists := newStaticLists(t, nil, nil)
	v := startVigil(t, []string{up.Addr}, withLists(lists, nil))
	q := func() *dns.Msg {
		m := rt.Question("alias.shop.example", dns.TypeA)
		m.SetEdns0(1232, false)
		return rt.Exchange(t, "udp", v.addr, m)
	}
	if r := q(); len(r.Answer) != 2 {
		t.Fatalf("before the list change: %d answers, want CNAME + A", len(r.Answer))
	}
	// The answer is now cached; a list change must apply to it at once.
	lists.replace(t, []string{"||tracker.example^"}, nil)
	r := q()
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "0.0.0.0" {
		t.Fatalf("answer %v, want blocked 0.0.0.0", r.Answer)
	}
	if e := edeOf(r); e == nil || !strings.Contains(e.ExtraText, "CNAME cdn.tracker.example.") {
		t.Errorf("EDE %v, want one naming the CNAME", e)
	}
	if up.Queries() != 1 {
		t.Errorf("upstream saw %d queries, want 1: the second answer came from the cache", up.Queries())
	}
	// An explicitly allowed name keeps its CNAMEs.
	lists.replace(t, []string{"||tracker.example^"}, []string{"alias.shop.example"})
	if r := q(); len(r.Answer) != 2 {
		t.Errorf("allowlisted name: %v, want the upstream answer", r.Answer)
	}
}
