package resolver

import (
	"context"

	"github.com/miekg/dns"
)

// Local answers what Vigil should answer itself rather than forward. It
// is the first stage of the chain.
//
// ANY queries get the minimal answer of RFC 8482 section 4.2 (one HINFO
// record "RFC8482"): forwarding them would hand whoever spoofs a client's
// address the biggest answers upstreams give, an amplification tool.
type Local struct {
	next Handler
}

var _ Handler = (*Local)(nil)

// NewLocal returns the local-answers stage in front of next.
func NewLocal(next Handler) *Local { return &Local{next: next} }

// anyTTL is the TTL of the RFC 8482 answer; the RFC suggests a long one.
const anyTTL = 3600

// Resolve implements Handler.
func (l *Local) Resolve(ctx context.Context, q *Query) (*Response, error) {
	if q.Type == dns.TypeANY {
		m := new(dns.Msg)
		m.SetReply(q.Msg)
		m.Answer = []dns.RR{&dns.HINFO{
			Hdr: dns.RR_Header{Name: q.Msg.Question[0].Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: anyTTL},
			Cpu: "RFC8482",
		}}
		return &Response{Msg: m, Source: SourceLocal}, nil
	}
	return l.next.Resolve(ctx, q)
}
