package resolver

import (
	"context"
	"net"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// LocalConfig says what the local-answers stage answers itself.
type LocalConfig struct {
	// BlockBypass answers the names devices use to decide whether to
	// route around the network's resolver: Firefox's DoH canary
	// (use-application-dns.net) and iCloud Private Relay
	// (mask.icloud.com, mask-h2.icloud.com) with NXDOMAIN, and RFC 9462
	// designated-resolver discovery (resolver.arpa) with NODATA. Without
	// this, such devices silently switch to a resolver Vigil cannot see.
	BlockBypass bool
	// HealthName, if set ("health.vigil."), is answered locally without
	// touching upstreams: A 127.0.0.1 and TXT "ok". Container and service
	// health checks use it.
	HealthName string
}

// Local answers what Vigil should answer itself rather than forward. It
// is the first stage of the chain.
//
// ANY queries get the minimal answer of RFC 8482 section 4.2 (one HINFO
// record "RFC8482"): forwarding them would hand whoever spoofs a client's
// address the biggest answers upstreams give, an amplification tool.
type Local struct {
	cfg  atomic.Pointer[LocalConfig] // replaced by a reload
	next Handler
}

var _ Handler = (*Local)(nil)

// NewLocal returns the local-answers stage in front of next.
func NewLocal(cfg LocalConfig, next Handler) *Local {
	l := &Local{next: next}
	l.Reconfigure(cfg)
	return l
}

// Reconfigure replaces what the stage answers.
func (l *Local) Reconfigure(cfg LocalConfig) {
	cfg.HealthName = strings.ToLower(dns.Fqdn(cfg.HealthName))
	if cfg.HealthName == "." {
		cfg.HealthName = ""
	}
	l.cfg.Store(&cfg)
}

// anyTTL is the TTL of the RFC 8482 answer; the RFC suggests a long one.
const anyTTL = 3600

// bypassNXDomain are names answered NXDOMAIN when BlockBypass is on.
var bypassNXDomain = [...]string{"use-application-dns.net.", "mask.icloud.com.", "mask-h2.icloud.com."}

// Resolve implements Handler.
func (l *Local) Resolve(ctx context.Context, q *Query) (*Response, error) {
	cfg := l.cfg.Load()
	switch {
	case q.Type == dns.TypeANY:
		m := l.reply(q)
		m.Answer = []dns.RR{&dns.HINFO{Hdr: l.hdr(q, dns.TypeHINFO, anyTTL), Cpu: "RFC8482"}}
		return &Response{Msg: m, Source: SourceLocal}, nil
	case cfg.HealthName != "" && q.Name == cfg.HealthName:
		m := l.reply(q)
		switch q.Type {
		case dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: l.hdr(q, dns.TypeA, 0), A: net.IPv4(127, 0, 0, 1)}}
		case dns.TypeTXT:
			m.Answer = []dns.RR{&dns.TXT{Hdr: l.hdr(q, dns.TypeTXT, 0), Txt: []string{"ok"}}}
		}
		return &Response{Msg: m, Source: SourceLocal}, nil
	case cfg.BlockBypass:
		for _, n := range bypassNXDomain {
			if q.Name == n {
				m := l.reply(q)
				m.Rcode = dns.RcodeNameError
				m.Ns = []dns.RR{l.soa(n)}
				return &Response{Msg: m, Source: SourceLocal}, nil
			}
		}
		if q.Name == "resolver.arpa." || strings.HasSuffix(q.Name, ".resolver.arpa.") {
			m := l.reply(q)
			m.Ns = []dns.RR{l.soa("resolver.arpa.")}
			return &Response{Msg: m, Source: SourceLocal}, nil
		}
	}
	return l.next.Resolve(ctx, q)
}

func (l *Local) reply(q *Query) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.Authoritative = true
	return m
}

func (l *Local) hdr(q *Query, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: q.Msg.Question[0].Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func (l *Local) soa(zone string) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns: "vigil.", Mbox: "hostmaster.vigil.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300}
}
