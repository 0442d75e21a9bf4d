package resolver

import (
	"strings"

	"github.com/miekg/dns"
)

// scrub drops records that have no business in an answer to qname before
// it is cached or returned: answer records outside the CNAME/DNAME chain
// that starts at qname, authority records that are not about an ancestor
// of a name in that chain, and additional records other than addresses
// of the name servers the authority section names. This is the classic
// defence against cache poisoning by out-of-bailiwick data (RFC 5452
// section 6; the Kaminsky attack rode on such "extra" records). It
// returns how many records it dropped.
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
	dropped := 0
	answer := m.Answer[:0]
	// Records come in chain order in practice, but be robust to any
	// order: repeat until the chain stops growing.
	kept := make([]bool, len(m.Answer))
	for grew := true; grew; {
		grew = false
		for i, rr := range m.Answer {
			if kept[i] {
				continue
			}
			h := rr.Header()
			switch rr.(type) {
			case *dns.DNAME:
				// A DNAME at an ancestor rewrites names below it.
				for _, c := range chain {
					if dns.IsSubDomain(h.Name, c) && !strings.EqualFold(h.Name, c) {
						kept[i], grew = true, true
						break
					}
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
	for i, rr := range m.Answer {
		if kept[i] {
			answer = append(answer, rr)
		} else {
			dropped++
		}
	}
	m.Answer = answer

	underChain := func(zone string) bool {
		for _, c := range chain {
			if dns.IsSubDomain(zone, c) {
				return true
			}
		}
		return false
	}
	var nsNames []string
	ns := m.Ns[:0]
	for _, rr := range m.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeSOA, dns.TypeNS, dns.TypeDS, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeRRSIG:
			if underChain(rr.Header().Name) || rr.Header().Rrtype == dns.TypeNSEC3 || rr.Header().Rrtype == dns.TypeRRSIG {
				ns = append(ns, rr)
				if n, ok := rr.(*dns.NS); ok {
					nsNames = append(nsNames, strings.ToLower(n.Ns))
				}
				continue
			}
		}
		dropped++
	}
	m.Ns = ns

	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		h := rr.Header()
		switch h.Rrtype {
		case dns.TypeOPT, dns.TypeTSIG, dns.TypeSIG:
			extra = append(extra, rr)
			continue
		case dns.TypeA, dns.TypeAAAA:
			glue := false
			for _, n := range nsNames {
				if strings.EqualFold(n, h.Name) {
					glue = true
				}
			}
			if glue {
				extra = append(extra, rr)
				continue
			}
		}
		dropped++
	}
	m.Extra = extra
	return dropped
}
