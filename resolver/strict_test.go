package resolver_test

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// Answers a strict client checks: each test round-trips through a Vigil
// on 127.0.0.1 to an in-process upstream.

// TestDNAMEQuestionAnswered asks for the DNAME record itself: the record
// at the query name is the answer (RFC 6672 section 2.3), not something
// for the scrubber to drop.
func TestDNAMEQuestionAnswered(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeDNAME {
			m.Answer = []dns.RR{&dns.DNAME{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeDNAME, Class: dns.ClassINET, Ttl: 300},
				Target: "example.net."}}
		}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	for _, pass := range []string{"forwarded", "cached"} {
		r := rt.Exchange(t, "udp", v.addr, rt.Question("Old.Example", dns.TypeDNAME))
		if len(r.Answer) != 1 {
			t.Fatalf("%s: answer %v, want the DNAME", pass, r.Answer)
		}
		if d, ok := r.Answer[0].(*dns.DNAME); !ok || d.Target != "example.net." {
			t.Errorf("%s: answer %v, want DNAME example.net.", pass, r.Answer[0])
		}
	}
}

// validatingUpstream answers A questions as a validating resolver does
// for a signed name: AD set only for a request with AD or DO (RFC 6840
// section 5.7).
func validatingUpstream(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{192, 0, 2, 1}}}
	m.AuthenticatedData = r.AuthenticatedData || r.IsEdns0() != nil && r.IsEdns0().Do()
	_ = w.WriteMsg(m)
}

// TestADPerRequest asks the same names with and without AD (and with
// DO), in both orders, over UDP (packed cache hits) and TCP: each client
// sees AD exactly when it asked with AD or DO, whatever the cache holds.
func TestADPerRequest(t *testing.T) {
	up := rt.NewUpstream(t, validatingUpstream)
	v := startVigil(t, []string{up.Addr}, nil)
	ask := func(network, name string, ad, do bool) bool {
		q := rt.Question(name, dns.TypeA)
		q.AuthenticatedData = ad
		if do {
			q.SetEdns0(1232, true)
		}
		return rt.Exchange(t, network, v.addr, q).AuthenticatedData
	}
	type step struct{ ad, do bool }
	for _, network := range []string{"udp", "tcp"} {
		for i, order := range [][]step{
			{{ad: true}, {}, {ad: true}, {}},
			{{}, {ad: true}, {}, {ad: true}},
			{{do: true}, {}, {ad: true, do: true}, {}},
		} {
			name := network + string(rune('a'+i)) + ".ad.example"
			for j, s := range order {
				if got, want := ask(network, name, s.ad, s.do), s.ad || s.do; got != want {
					t.Errorf("%s %s query %d (ad=%v do=%v): AD=%v, want %v", network, name, j, s.ad, s.do, got, want)
				}
			}
		}
	}
}

// TestAAOnlyOnLocalAnswers has an authoritative upstream set AA on every
// answer: a forwarder's answers are not authoritative, forwarded or from
// the cache (packed over UDP, unpacked over TCP); Vigil's own answers (the
// health name, a blocked name) are.
func TestAAOnlyOnLocalAnswers(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{192, 0, 2, 1}}}
		} else {
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{rt.SOA("example.", 300)}
		}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Lists = newStaticLists(t, []string{"||blocked.example^"}, nil) })
	for _, network := range []string{"udp", "tcp"} {
		for _, q := range []struct {
			name   string
			qtype  uint16
			wantAA bool
		}{
			{network + ".aa.example", dns.TypeA, false},
			{network + ".aa.example", dns.TypeA, false}, // cached
			{network + ".aa.example", dns.TypeMX, false},
			{network + ".aa.example", dns.TypeMX, false}, // cached NXDOMAIN
			{"health.vigil", dns.TypeA, true},
			{"blocked.example", dns.TypeA, true},
		} {
			if r := rt.Exchange(t, network, v.addr, rt.Question(q.name, q.qtype)); r.Authoritative != q.wantAA {
				t.Errorf("%s %s %s: AA=%v, want %v", network, q.name, dns.TypeToString[q.qtype], r.Authoritative, q.wantAA)
			}
		}
	}
}

// exchangeRaw sends pkt over UDP and returns the reply, or fails.
func exchangeRaw(t *testing.T, addr string, pkt []byte) *dns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return r
}

// TestMalformedQueriesFormErr sends queries a strict server rejects:
// more than one OPT, an OPT outside the additional section or with an
// owner other than the root (RFC 6891 section 6.1.1), and a question
// without its type and class. Each gets FORMERR and reaches no upstream.
func TestMalformedQueriesFormErr(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	opt := func(owner string) *dns.OPT {
		return &dns.OPT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeOPT, Class: 1232}}
	}
	pack := func(mod func(m *dns.Msg)) []byte {
		m := rt.Question("formerr.example", dns.TypeA)
		mod(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := pack(func(*dns.Msg) {})
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"two OPT", pack(func(m *dns.Msg) { m.Extra = []dns.RR{opt("."), opt(".")} })},
		{"OPT in answer", pack(func(m *dns.Msg) { m.Answer = []dns.RR{opt(".")} })},
		{"OPT in authority", pack(func(m *dns.Msg) { m.Ns = []dns.RR{opt(".")} })},
		{"OPT in authority and additional", pack(func(m *dns.Msg) { m.Ns = []dns.RR{opt(".")}; m.Extra = []dns.RR{opt(".")} })},
		{"OPT owner not root", pack(func(m *dns.Msg) { m.Extra = []dns.RR{opt("example.")} })},
		{"question without type and class", plain[:len(plain)-4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := exchangeRaw(t, v.addr, tc.pkt); r.Rcode != dns.RcodeFormatError {
				t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[r.Rcode])
			}
		})
	}
	if n := up.Queries(); n != 0 {
		t.Errorf("upstream saw %d queries, want none", n)
	}
}

// TestOddQueriesAnsweredLocally: zone transfers (Vigil serves no zone)
// are REFUSED, classes other than IN and CHAOS NOTIMP, and CHAOS
// queries REFUSED by default, over UDP and TCP, without reaching an
// upstream: forwarded, CHAOS identity queries would give away the
// upstream's software and name.
func TestOddQueriesAnsweredLocally(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: r.Question[0].Qclass}, Txt: []string{"upstream-secret"}}}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name          string
			qtype, qclass uint16
			rcode         int
		}{
			{"example.", dns.TypeAXFR, dns.ClassINET, dns.RcodeRefused},
			{"example.", dns.TypeIXFR, dns.ClassINET, dns.RcodeRefused},
			{"example.", dns.TypeA, dns.ClassHESIOD, dns.RcodeNotImplemented},
			{"example.", dns.TypeA, dns.ClassNONE, dns.RcodeNotImplemented},
			{"example.", dns.TypeA, dns.ClassANY, dns.RcodeNotImplemented},
			{"version.bind.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused},
			{"hostname.bind.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused},
			{"id.server.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused},
			{"version.server.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused},
			{"authors.bind.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeRefused},
		} {
			q := rt.Question(tc.name, tc.qtype)
			q.Question[0].Qclass = tc.qclass
			r := rt.Exchange(t, network, v.addr, q)
			if r.Rcode != tc.rcode || len(r.Answer) != 0 || r.Authoritative {
				t.Errorf("%s %s %s %s: rcode %s, %d answers, AA=%v; want %s, none, no AA", network, tc.name,
					dns.ClassToString[tc.qclass], dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative, dns.RcodeToString[tc.rcode])
			}
		}
	}
	if n := up.Queries(); n != 0 {
		t.Errorf("upstream saw %d queries, want none", n)
	}
}

// TestChaosIdentity: with blocking.chaos_identity set, the identity
// names are answered with it, locally; other CHAOS names stay REFUSED.
func TestChaosIdentity(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Blocking.ChaosIdentity = "vigil on the router" })
	for _, name := range []string{"version.bind.", "Hostname.Bind.", "id.server.", "version.server."} {
		q := rt.Question(name, dns.TypeTXT)
		q.Question[0].Qclass = dns.ClassCHAOS
		r := rt.Exchange(t, "udp", v.addr, q)
		if len(r.Answer) != 1 {
			t.Fatalf("%s: rcode %s, answer %v", name, dns.RcodeToString[r.Rcode], r.Answer)
		}
		if txt, ok := r.Answer[0].(*dns.TXT); !ok || txt.Hdr.Class != dns.ClassCHAOS || txt.Hdr.Name != name || len(txt.Txt) != 1 || txt.Txt[0] != "vigil on the router" {
			t.Errorf("%s: answer %v", name, r.Answer[0])
		}
	}
	q := rt.Question("authors.bind.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	if r := rt.Exchange(t, "udp", v.addr, q); r.Rcode != dns.RcodeRefused {
		t.Errorf("authors.bind: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	if n := up.Queries(); n != 0 {
		t.Errorf("upstream saw %d queries, want none", n)
	}
}

// TestTCPLengthPrefixUnderReadTimeout: a client that sends one byte of a
// query's length prefix has begun a query, so the read timeout applies,
// not the idle timeout.
func TestTCPLengthPrefixUnderReadTimeout(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.TCPReadTimeout = 200 * time.Millisecond
		c.Server.TCPIdleTimeout = 3 * time.Second
	})
	c, err := net.Dial("tcp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if took := time.Since(start); err == nil || isTimeout(err) || took > time.Second {
		t.Errorf("one byte of a length prefix: %v after %s; want closed within the read timeout (200ms)", err, took.Round(time.Millisecond))
	}
}
