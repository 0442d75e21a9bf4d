package resolver_test

import (
	"crypto"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// signedZone is a small zone signed in the test, served by an in-process
// authoritative upstream:
//
//	signed.example.      SOA NS DNSKEY NSEC
//	a.signed.example.    A NSEC
//	*.w.signed.example.  A NSEC            (a wildcard)
//
// Its NSEC chain, in canonical order: signed.example. → a.signed.example.
// → *.w.signed.example. → signed.example.
type signedZone struct {
	apex  string
	key   *dns.DNSKEY
	priv  crypto.Signer
	rrs   map[string][]dns.RR // owner → records (not signatures)
	names []string            // owners in canonical order
}

const zoneTTL = 300

func newSignedZone(t testing.TB) *signedZone {
	t.Helper()
	z := &signedZone{apex: "signed.example.", rrs: map[string][]dns.RR{}}
	z.key = &dns.DNSKEY{Hdr: hdrOf(z.apex, dns.TypeDNSKEY), Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := z.key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	z.priv = priv.(crypto.Signer)
	a := "a." + z.apex
	wild := "*.w." + z.apex
	z.names = []string{z.apex, a, wild}
	z.add(rt.SOA(z.apex, zoneTTL),
		&dns.NS{Hdr: hdrOf(z.apex, dns.TypeNS), Ns: "ns." + z.apex},
		z.key,
		&dns.A{Hdr: hdrOf(a, dns.TypeA), A: net.IPv4(192, 0, 2, 1)},
		&dns.A{Hdr: hdrOf(wild, dns.TypeA), A: net.IPv4(192, 0, 2, 2)},
	)
	for i, n := range z.names {
		types := []uint16{dns.TypeNSEC, dns.TypeRRSIG}
		for _, rr := range z.rrs[n] {
			types = append(types, rr.Header().Rrtype)
		}
		slices.Sort(types)
		z.add(&dns.NSEC{Hdr: hdrOf(n, dns.TypeNSEC), NextDomain: z.names[(i+1)%len(z.names)], TypeBitMap: slices.Compact(types)})
	}
	return z
}

func hdrOf(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: zoneTTL}
}

func (z *signedZone) add(rrs ...dns.RR) {
	for _, rr := range rrs {
		z.rrs[rr.Header().Name] = append(z.rrs[rr.Header().Name], rr)
	}
}

// rrset returns the records of type t at owner, and their signature.
func (z *signedZone) rrset(t testing.TB, owner string, typ uint16) []dns.RR {
	var set []dns.RR
	for _, rr := range z.rrs[owner] {
		if rr.Header().Rrtype == typ {
			set = append(set, rr)
		}
	}
	if len(set) == 0 {
		return nil
	}
	now := time.Now()
	sig := &dns.RRSIG{Hdr: hdrOf(owner, dns.TypeRRSIG), Algorithm: z.key.Algorithm, OrigTtl: zoneTTL,
		Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(time.Hour).Unix()),
		KeyTag: z.key.KeyTag(), SignerName: z.apex}
	if err := sig.Sign(z.priv, set); err != nil {
		t.Fatal(err)
	}
	return append(set, sig)
}

// withOwner copies rrs with their owner changed (wildcard expansion).
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
	}
	return out
}

// serve answers as the zone's authoritative server would (RFC 4035
// section 3.1.3), with signatures only when the query has DO set.
func (z *signedZone) serve(t testing.TB) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		qname := strings.ToLower(q.Name)
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		soa := z.rrset(t, z.apex, dns.TypeSOA)
		nsec := func(owner string) []dns.RR { return z.rrset(t, owner, dns.TypeNSEC) }
		wild := "*.w." + z.apex
		switch {
		case z.rrs[qname] != nil:
			if set := z.rrset(t, qname, q.Qtype); set != nil {
				m.Answer = set
			} else { // NODATA
				m.Ns = append(soa, nsec(qname)...)
			}
		case dns.IsSubDomain("w."+z.apex, qname): // under the wildcard
			if set := z.rrset(t, wild, q.Qtype); set != nil {
				m.Answer = withOwner(set, q.Name)
				m.Ns = nsec(wild) // no closer match: the NSEC after *.w covers qname
			} else { // wildcard NODATA: qname covered, the wildcard lacks the type
				m.Ns = append(soa, nsec(wild)...)
			}
		default: // NXDOMAIN: qname covered, and the wildcard at the closest encloser
			m.Rcode = dns.RcodeNameError
			m.Ns = append(append(soa, nsec("a."+z.apex)...), nsec(z.apex)...)
		}
		if o := r.IsEdns0(); o == nil || !o.Do() {
			for _, sec := range []*[]dns.RR{&m.Answer, &m.Ns} {
				*sec = slices.DeleteFunc(*sec, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeRRSIG })
			}
		}
		m.SetEdns0(1232, r.IsEdns0() != nil && r.IsEdns0().Do())
		_ = w.WriteMsg(m)
	}
}

// validate checks a section as a validating stub would: every RRset
// signed by the zone's key with a valid signature, and no signature left
// without its RRset.
func (z *signedZone) validate(t *testing.T, section string, rrs []dns.RR) {
	t.Helper()
	type setKey struct {
		name string
		typ  uint16
	}
	sets := map[setKey][]dns.RR{}
	sigs := map[setKey]*dns.RRSIG{}
	for _, rr := range rrs {
		k := setKey{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs[setKey{k.name, s.TypeCovered}] = s
			continue
		}
		sets[k] = append(sets[k], rr)
	}
	for k, set := range sets {
		sig := sigs[k]
		if sig == nil {
			t.Errorf("%s: %s %s unsigned", section, k.name, dns.TypeToString[k.typ])
			continue
		}
		if err := sig.Verify(z.key, set); err != nil || !sig.ValidityPeriod(time.Now()) {
			t.Errorf("%s: %s %s does not validate: %v", section, k.name, dns.TypeToString[k.typ], err)
		}
	}
	for k := range sigs {
		if sets[k] == nil {
			t.Errorf("%s: RRSIG over %s %s without the RRset it signs", section, k.name, dns.TypeToString[k.typ])
		}
	}
}

// canonicalLess orders names as RFC 4034 section 6.1 does: by labels from
// the right, each compared as lowercase bytes.
func canonicalLess(a, b string) bool {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i := 1; i <= min(len(la), len(lb)); i++ {
		x, y := la[len(la)-i], lb[len(lb)-i]
		if x != y {
			return x < y
		}
	}
	return len(la) < len(lb)
}

// covers reports whether the NSEC proves name does not exist.
func covers(n *dns.NSEC, name string) bool {
	owner, next := n.Hdr.Name, n.NextDomain
	if canonicalLess(next, owner) || strings.EqualFold(next, owner) { // the last NSEC wraps to the apex
		return canonicalLess(owner, name)
	}
	return canonicalLess(owner, name) && canonicalLess(name, next)
}

func nsecs(rrs []dns.RR) []*dns.NSEC {
	var out []*dns.NSEC
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NSEC); ok {
			out = append(out, n)
		}
	}
	return out
}

func coveredBy(rrs []dns.RR, name string) bool {
	return slices.ContainsFunc(nsecs(rrs), func(n *dns.NSEC) bool { return covers(n, name) })
}

// lacksType reports whether an NSEC at owner proves it has no record of
// type t (and no CNAME).
func lacksType(rrs []dns.RR, owner string, t uint16) bool {
	return slices.ContainsFunc(nsecs(rrs), func(n *dns.NSEC) bool {
		return strings.EqualFold(n.Hdr.Name, owner) && !slices.Contains(n.TypeBitMap, t) && !slices.Contains(n.TypeBitMap, dns.TypeCNAME)
	})
}

// TestDNSSECProofsKept asks a signed zone through Vigil with DO set and
// validates the answers on the client's side: every RRset signed, every
// signature with its RRset, and the denial proofs complete (RFC 4035
// section 5.4), for NXDOMAIN, NODATA, a wildcard answer and a wildcard
// NODATA; each also from the cache.
func TestDNSSECProofsKept(t *testing.T) {
	z := newSignedZone(t)
	up := rt.NewUpstream(t, z.serve(t))
	v := startVigil(t, []string{up.Addr}, nil)
	cases := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		check func(t *testing.T, r *dns.Msg)
	}{
		{"nxdomain", "b.signed.example.", dns.TypeA, dns.RcodeNameError, func(t *testing.T, r *dns.Msg) {
			if !coveredBy(r.Ns, "b.signed.example.") {
				t.Error("no NSEC covers the name")
			}
			if !coveredBy(r.Ns, "*.signed.example.") {
				t.Error("no NSEC covers the wildcard at the closest encloser")
			}
		}},
		{"nodata", "a.signed.example.", dns.TypeTXT, dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if !lacksType(r.Ns, "a.signed.example.", dns.TypeTXT) {
				t.Error("no NSEC at the name proves it has no TXT")
			}
		}},
		{"wildcard answer", "x.w.signed.example.", dns.TypeA, dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 2 {
				t.Fatalf("answer %v, want the expanded A and its RRSIG", r.Answer)
			}
			if sig, ok := r.Answer[1].(*dns.RRSIG); !ok || int(sig.Labels) >= dns.CountLabel("x.w.signed.example.") {
				t.Fatalf("answer %v, want a wildcard expansion", r.Answer)
			}
			if !coveredBy(r.Ns, "x.w.signed.example.") {
				t.Error("no NSEC proves there was no closer match (RFC 4035 section 5.3.4)")
			}
		}},
		{"wildcard nodata", "x.w.signed.example.", dns.TypeTXT, dns.RcodeSuccess, func(t *testing.T, r *dns.Msg) {
			if !coveredBy(r.Ns, "x.w.signed.example.") || !lacksType(r.Ns, "*.w.signed.example.", dns.TypeTXT) {
				t.Error("no NSEC proves the name is covered and the wildcard lacks TXT")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, pass := range []string{"forwarded", "cached"} {
				q := rt.Question(tc.qname, tc.qtype)
				q.SetEdns0(1232, true)
				r := rt.Exchange(t, "udp", v.addr, q)
				if r.Rcode != tc.rcode || r.Truncated {
					t.Fatalf("%s: rcode %s tc=%v, want %s", pass, dns.RcodeToString[r.Rcode], r.Truncated, dns.RcodeToString[tc.rcode])
				}
				z.validate(t, pass+" answer", r.Answer)
				z.validate(t, pass+" authority", r.Ns)
				tc.check(t, r)
			}
		})
	}
}
