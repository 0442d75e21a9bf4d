package resolver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestScrubKeepsProofsDropsStrays holds scrub to its rule for DNSSEC
// records: proofs of a zone of the chain stay with their signatures;
// denial records of another zone, and signatures without their RRset (or
// over a dropped one), go.
func TestScrubKeepsProofsDropsStrays(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sig := func(owner, covered, signer string) dns.RR {
		return rr(owner + " 300 IN RRSIG " + covered + " 13 2 300 20300101000000 20200101000000 1 " + signer + " AAAA")
	}
	m := new(dns.Msg)
	m.Answer = []dns.RR{
		rr("sub.example.com. 300 IN DNAME other.example.net."),
		sig("sub.example.com.", "DNAME", "example.com."),
		rr("www.sub.example.com. 300 IN CNAME www.other.example.net."),
		rr("www.other.example.net. 300 IN A 192.0.2.1"),
		sig("www.other.example.net.", "A", "example.net."),
		sig("www.other.example.net.", "AAAA", "example.net."), // signs nothing here
		rr("bank.example. 300 IN A 203.0.113.66"),
		sig("bank.example.", "A", "example."), // signs the poison
	}
	m.Ns = []dns.RR{
		rr("example.net. 300 IN SOA ns.example.net. h.example.net. 1 2 3 4 300"),
		sig("example.net.", "SOA", "example.net."),
		rr("a.example.net. 300 IN NSEC z.example.net. A RRSIG NSEC"),
		sig("a.example.net.", "NSEC", "example.net."),
		rr("k1v2.example.net. 300 IN NSEC3 1 0 0 - K1V3 A"),
		sig("k1v2.example.net.", "NSEC3", "example.net."),
		rr("a.evil.example. 300 IN NSEC z.evil.example. A"), // another zone's
		sig("a.evil.example.", "NSEC", "evil.example."),
		rr("k1v2.evil.example. 300 IN NSEC3 1 0 0 - K1V3 A"),
		rr("evil.example. 300 IN NS ns.evil.example."),
		sig("evil.example.", "NS", "evil.example."),
	}
	dropped := scrub(m, "www.sub.example.com.")
	var got []string
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, r := range sec {
			s := r.Header().Name + " " + dns.TypeToString[r.Header().Rrtype]
			if g, ok := r.(*dns.RRSIG); ok {
				s += " " + dns.TypeToString[g.TypeCovered]
			}
			got = append(got, s)
		}
		got = append(got, "--")
	}
	want := []string{
		"sub.example.com. DNAME", "sub.example.com. RRSIG DNAME", "www.sub.example.com. CNAME",
		"www.other.example.net. A", "www.other.example.net. RRSIG A", "--",
		"example.net. SOA", "example.net. RRSIG SOA", "a.example.net. NSEC", "a.example.net. RRSIG NSEC",
		"k1v2.example.net. NSEC3", "k1v2.example.net. RRSIG NSEC3", "--",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kept:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if dropped != 8 {
		t.Errorf("dropped %d, want 8", dropped)
	}
}
