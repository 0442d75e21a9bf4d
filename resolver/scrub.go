package resolver

import (
	"strings"

	"github.com/miekg/dns"
)

// scrub drops records that have no business in an answer to qname before
// it is cached or returned: answer records outside the CNAME/DNAME chain
// that starts at qname, authority records that are not about an ancestor
// of a name in that chain (or, for denial-of-existence records, not in a
// zone that is), and additional records other than addresses of the name
// servers the authority section names. This is the classic defence
// against cache poisoning by out-of-bailiwick data (RFC 5452 section 6;
// the Kaminsky attack rode on such "extra" records). It returns how many
// records it dropped.
//
// What a validating client needs to check the answer stays: a signature
// goes with the RRset it signs (kept or dropped together, in every
// section), and the NSEC and NSEC3 records that prove a name, a type or a
// closer match does not exist (RFC 4035 section 3.1.3) are kept when a
// zone of the chain holds them, although their owners are rarely names of
// the chain.
func scrub(m *dns.Msg, qname string) int {
	chain := []string{strings.ToLower(qname)}
	inChain := func(name string) bool {
		name = strings.ToLower(name)
		for _, c := range chain {
			if c == name {
				return true
			}
		}
		return false
	}
	// underChain: zone is a name of the chain or an ancestor of one.
	underChain := func(zone string) bool {
		for _, c := range chain {
			if dns.IsSubDomain(zone, c) {
				return true
			}
		}
		return false
	}
	dropped := 0
	// Records come in chain order in practice, but be robust to any
	// order: repeat until the chain stops growing. Signatures are decided
	// by keepSigned, with what they sign.
	kept := make([]bool, len(m.Answer))
	for grew := true; grew; {
		grew = false
		for i, rr := range m.Answer {
			if kept[i] {
				continue
			}
			h := rr.Header()
			switch rr.(type) {
			case *dns.RRSIG:
			case *dns.DNAME:
				// A DNAME at an ancestor rewrites names below it; one at a
				// name of the chain answers a DNAME question (RFC 6672
				// section 2.3).
				if underChain(h.Name) {
					kept[i], grew = true, true
				}
			default:
				if inChain(h.Name) {
					kept[i], grew = true, true
					if cn, ok := rr.(*dns.CNAME); ok && !inChain(cn.Target) {
						chain = append(chain, strings.ToLower(cn.Target))
					}
				}
			}
		}
	}
	var n int
	m.Answer, n = keepSigned(m.Answer, kept)
	dropped += n

	// The zones the authority section may speak for: those of its SOA
	// records and the signers of its signatures, when they are the chain's
	// names or their ancestors. A signer is the apex of the zone holding
	// what it signs (RFC 4035 section 5.3.1), so an NSEC or NSEC3 under
	// one of them belongs to a zone of the chain.
	var zones []string
	for _, rr := range m.Ns {
		var zone string
		switch r := rr.(type) {
		case *dns.SOA:
			zone = r.Hdr.Name
		case *dns.RRSIG:
			zone = r.SignerName
		default:
			continue
		}
		if underChain(zone) {
			zones = append(zones, zone)
		}
	}
	var nsNames []string
	kept = make([]bool, len(m.Ns))
	for i, rr := range m.Ns {
		h := rr.Header()
		switch h.Rrtype {
		case dns.TypeSOA, dns.TypeNS, dns.TypeDS, dns.TypeDNSKEY:
			kept[i] = underChain(h.Name)
		case dns.TypeNSEC, dns.TypeNSEC3:
			for _, z := range zones {
				if dns.IsSubDomain(z, h.Name) {
					kept[i] = true
					break
				}
			}
		}
		if n, ok := rr.(*dns.NS); ok && kept[i] {
			nsNames = append(nsNames, strings.ToLower(n.Ns))
		}
	}
	m.Ns, n = keepSigned(m.Ns, kept)
	dropped += n

	kept = make([]bool, len(m.Extra))
	for i, rr := range m.Extra {
		h := rr.Header()
		switch h.Rrtype {
		case dns.TypeOPT, dns.TypeTSIG, dns.TypeSIG:
			kept[i] = true
		case dns.TypeA, dns.TypeAAAA:
			for _, n := range nsNames {
				if strings.EqualFold(n, h.Name) {
					kept[i] = true // glue
					break
				}
			}
		}
	}
	m.Extra, n = keepSigned(m.Extra, kept)
	return dropped + n
}

// keepSigned keeps the records of rrs that keep marks, and each RRSIG
// whose RRset (its owner, the type it covers) is kept in the same
// section: a signature is kept or dropped with what it signs. keep's
// entries for signatures are ignored. It filters rrs in place and returns
// how many records it dropped.
func keepSigned(rrs []dns.RR, keep []bool) ([]dns.RR, int) {
	for i, rr := range rrs {
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		keep[i] = false
		for j, o := range rrs {
			h := o.Header()
			if keep[j] && h.Rrtype == sig.TypeCovered && h.Rrtype != dns.TypeRRSIG && strings.EqualFold(h.Name, sig.Hdr.Name) {
				keep[i] = true
				break
			}
		}
	}
	out := rrs[:0]
	for i, rr := range rrs {
		if keep[i] {
			out = append(out, rr)
		}
	}
	return out, len(rrs) - len(out)
}
