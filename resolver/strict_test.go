package resolver_test

import (
	"testing"

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
