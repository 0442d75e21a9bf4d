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
	// ChaosIdentity, if set, answers the CHAOS TXT identity questions
	// (version.bind, hostname.bind, id.server, version.server); unset,
	// they are REFUSED like every CHAOS question.
	ChaosIdentity string
	// Forwarded reports whether a [[forward]] zone holds a name: such
	// names go to their forwarder even inside the zones Vigil otherwise
	// serves itself (localZones). Nil means none does.
	Forwarded func(name string) bool
}

// Local answers what Vigil should answer itself rather than forward. It
// is the first stage of the chain.
//
// ANY queries get the minimal answer of RFC 8482 section 4.2 (one HINFO
// record "RFC8482"): forwarding them would hand whoever spoofs a client's
// address the biggest answers upstreams give, an amplification tool.
//
// Questions Vigil has no business forwarding are answered here too:
//   - zone transfers (AXFR, IXFR) REFUSED: Vigil serves no zone, and
//     passing them on would let a client pull zones from the upstreams
//     with Vigil's address; REFUSED is RFC 1035's "will not, by policy",
//     what recursive resolvers answer (Unbound, BIND without
//     allow-transfer);
//   - CHAOS-class questions REFUSED: forwarded, version.bind,
//     hostname.bind, id.server and version.server tell the client the
//     upstream's software and name (RFC 4892), which is not Vigil's to
//     give away; it is policy, not a missing feature, hence REFUSED.
//     With LocalConfig.ChaosIdentity set, those four are answered with
//     it instead;
//   - any class but IN and CHAOS (HS, NONE, ANY as a class, unassigned)
//     NOTIMP: Vigil implements class IN only, RFC 1035's "does not
//     support the requested kind of query"; NONE belongs to UPDATE (RFC
//     2136) and ANY has no data of its own, so no upstream would answer
//     them usefully either.
type Local struct {
	cfg     atomic.Pointer[LocalConfig] // replaced by a reload
	records atomic.Pointer[RecordTable] // replaced when its sources change
	next    Handler
}

// SetRecords replaces the local records.
func (l *Local) SetRecords(t *RecordTable) { l.records.Store(t) }

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

// localAnswer is what the local stage does with a question.
type localAnswer uint8

const (
	localNone        localAnswer = iota // not Vigil's to answer: the next stage's
	localANY                            // RFC 8482 minimal answer
	localHealth                         // the health name
	localBypassNX                       // a resolver-bypass canary: NXDOMAIN
	localDiscovery                      // RFC 9462 resolver.arpa: NODATA
	localRefused                        // zone transfers and CHAOS: REFUSED
	localNotImp                         // classes other than IN and CHAOS: NOTIMP
	localChaos                          // a CHAOS identity question, with ChaosIdentity
	localZoneNX                         // below the apex of a locally-served zone: NXDOMAIN
	localZoneApex                       // the apex of a locally-served zone: SOA, or NODATA
	localLoopback                       // localhost and below: the machine's own addresses
	localLoopbackPTR                    // the reverse name of a loopback address: localhost.
	localPlainNX                        // an A/AAAA question for a single-label name: NXDOMAIN
	localRecord                         // a name of the local records
)

// decide is the stage's one decision: every path that answers a query
// (Resolve, and the Server's packed answers through Handles) asks it.
func (l *Local) decide(name string, qtype, qclass uint16) localAnswer {
	cfg := l.cfg.Load()
	switch {
	case qclass == dns.ClassCHAOS:
		switch name {
		case "version.bind.", "hostname.bind.", "id.server.", "version.server.":
			if cfg.ChaosIdentity != "" {
				return localChaos
			}
		}
		return localRefused
	case qclass != dns.ClassINET:
		return localNotImp
	case qtype == dns.TypeAXFR || qtype == dns.TypeIXFR:
		return localRefused
	case qtype == dns.TypeANY:
		return localANY
	case cfg.HealthName != "" && name == cfg.HealthName:
		return localHealth
	case l.records.Load().has(name):
		return localRecord
	case cfg.BlockBypass:
		switch name {
		case "use-application-dns.net.", "mask.icloud.com.", "mask-h2.icloud.com.":
			return localBypassNX
		case "resolver.arpa.":
			return localDiscovery
		}
		if strings.HasSuffix(name, ".resolver.arpa.") {
			return localDiscovery
		}
	}
	return l.decideZone(cfg, name, qtype)
}

// decideZone answers names that must not reach public upstreams (see
// localZones) unless a [[forward]] zone claims them.
func (l *Local) decideZone(cfg *LocalConfig, name string, qtype uint16) localAnswer {
	var (
		kind localZone
		zone string
		ok   bool
	)
	// Every query passes here, the packed ones too: the top label
	// decides cheaply whether a zone lookup is needed at all.
	if mayBeLocalZone(name) {
		kind, zone, ok = localZones.find(name)
	}
	plain := !ok && (qtype == dns.TypeA || qtype == dns.TypeAAAA) && isPlainName(name)
	if !ok && !plain || cfg.Forwarded != nil && cfg.Forwarded(name) {
		return localNone
	}
	switch {
	case plain:
		return localPlainNX
	case kind == zoneLoopback:
		return localLoopback
	case qtype == dns.TypePTR && isLoopbackPTR(name):
		return localLoopbackPTR
	case name == zone:
		return localZoneApex
	}
	return localZoneNX
}

// Handles reports whether the stage answers the question itself, so that
// nothing after it (blocking, the cache) may: the Server asks it before
// answering from packed bytes. name is lowercased and fully qualified.
func (l *Local) Handles(name string, qtype, qclass uint16) bool {
	return l.decide(name, qtype, qclass) != localNone
}

// Resolve implements Handler.
func (l *Local) Resolve(ctx context.Context, q *Query) (*Response, error) {
	var m *dns.Msg
	switch d := l.decide(q.Name, q.Type, q.Class); d {
	case localNone:
		return l.next.Resolve(ctx, q)
	case localRefused:
		m = l.reply(q)
		m.Rcode, m.Authoritative = dns.RcodeRefused, false
	case localNotImp:
		m = l.reply(q)
		m.Rcode, m.Authoritative = dns.RcodeNotImplemented, false
	case localChaos:
		m = l.reply(q)
		if q.Type == dns.TypeTXT {
			hdr := l.hdr(q, dns.TypeTXT, 0)
			hdr.Class = dns.ClassCHAOS
			m.Answer = []dns.RR{&dns.TXT{Hdr: hdr, Txt: []string{l.cfg.Load().ChaosIdentity}}}
		}
	case localANY:
		m = l.reply(q)
		m.Answer = []dns.RR{&dns.HINFO{Hdr: l.hdr(q, dns.TypeHINFO, anyTTL), Cpu: "RFC8482"}}
	case localHealth:
		m = l.reply(q)
		switch q.Type {
		case dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: l.hdr(q, dns.TypeA, 0), A: net.IPv4(127, 0, 0, 1)}}
		case dns.TypeTXT:
			m.Answer = []dns.RR{&dns.TXT{Hdr: l.hdr(q, dns.TypeTXT, 0), Txt: []string{"ok"}}}
		}
	case localBypassNX:
		m = l.reply(q)
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{l.soa(q.Name)}
	case localDiscovery:
		m = l.reply(q)
		m.Ns = []dns.RR{l.soa("resolver.arpa.")}
	case localRecord:
		m = l.reply(q)
		m.Answer = l.records.Load().answer(q.Name, q.Type)
		for _, rr := range m.Answer {
			if rr.Header().Name == q.Name {
				rr.Header().Name = q.Msg.Question[0].Name // the client's spelling
			}
		}
	case localPlainNX:
		m = l.reply(q)
		m.Rcode, m.Authoritative = dns.RcodeNameError, false
	case localZoneNX, localZoneApex:
		_, zone, _ := localZones.find(q.Name)
		m = l.reply(q)
		switch {
		case d == localZoneNX:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{localZoneSOA(zone)}
		case q.Type == dns.TypeSOA:
			soa := localZoneSOA(zone)
			soa.Hdr.Name = q.Msg.Question[0].Name
			m.Answer = []dns.RR{soa}
		case q.Type == dns.TypeNS:
			m.Answer = []dns.RR{&dns.NS{Hdr: l.hdr(q, dns.TypeNS, 300), Ns: "localhost."}}
		default:
			m.Ns = []dns.RR{localZoneSOA(zone)}
		}
	case localLoopback:
		m = l.reply(q)
		switch q.Type {
		case dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: l.hdr(q, dns.TypeA, 300), A: net.IPv4(127, 0, 0, 1)}}
		case dns.TypeAAAA:
			m.Answer = []dns.RR{&dns.AAAA{Hdr: l.hdr(q, dns.TypeAAAA, 300), AAAA: net.IPv6loopback}}
		default:
			m.Ns = []dns.RR{localZoneSOA("localhost.")}
		}
	case localLoopbackPTR:
		m = l.reply(q)
		m.Answer = []dns.RR{&dns.PTR{Hdr: l.hdr(q, dns.TypePTR, 300), Ptr: "localhost."}}
	}
	return &Response{Msg: m, Source: SourceLocal}, nil
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
