package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
)

// Blocking answer modes.
const (
	AnswerNull     = "null"     // A 0.0.0.0, AAAA ::, other types empty NOERROR
	AnswerNXDomain = "nxdomain" // NXDOMAIN with an SOA (cached per RFC 2308)
	AnswerRefused  = "refused"  // REFUSED
	AnswerIP       = "ip"       // A and AAAA from ipv4/ipv6, other types empty NOERROR
)

// BlockingConfig is the [blocking] section: how blocked names are answered.
type BlockingConfig struct {
	// Answer is "null", "nxdomain", "refused" or "ip".
	Answer string `toml:"answer"`
	// IPv4 and IPv6 are the addresses answered in "ip" mode.
	IPv4 []netip.Addr `toml:"ipv4"`
	IPv6 []netip.Addr `toml:"ipv6"`
	// TTL of blocked answers: short, so a device that keeps phoning home
	// keeps asking, and keeps being seen.
	TTL time.Duration `toml:"ttl"`
	// CNAMECheck blocks answers whose CNAME chain passes through a blocked
	// name (CNAME cloaking), cached answers included.
	CNAMECheck bool `toml:"cname_check"`
	// BlockBypass answers resolver-bypass canaries so devices keep using
	// Vigil (see LocalConfig.BlockBypass).
	BlockBypass bool `toml:"block_bypass"`
	// HealthName is a name Vigil answers itself, for health checks; "" for
	// none.
	HealthName string `toml:"health_name"`
}

// DefaultBlockingConfig returns the [blocking] defaults.
func DefaultBlockingConfig() BlockingConfig {
	return BlockingConfig{Answer: AnswerNull, IPv4: []netip.Addr{}, IPv6: []netip.Addr{}, TTL: 10 * time.Second, CNAMECheck: true,
		BlockBypass: true, HealthName: "health.vigil."}
}

// Validate checks the section.
func (c *BlockingConfig) Validate() error {
	var errs []error
	switch c.Answer {
	case AnswerNull, AnswerNXDomain, AnswerRefused:
	case AnswerIP:
		if len(c.IPv4) == 0 && len(c.IPv6) == 0 {
			errs = append(errs, errors.New("blocking.ipv4/ipv6: answer \"ip\" wants at least one address"))
		}
	default:
		errs = append(errs, fmt.Errorf("blocking.answer: want \"null\", \"nxdomain\", \"refused\" or \"ip\", got %q", c.Answer))
	}
	for i, a := range c.IPv4 {
		if !a.Is4() {
			errs = append(errs, fmt.Errorf("blocking.ipv4[%d]: want an IPv4 address, got %s", i, a))
		}
	}
	for i, a := range c.IPv6 {
		if !a.Is6() || a.Is4In6() {
			errs = append(errs, fmt.Errorf("blocking.ipv6[%d]: want an IPv6 address, got %s", i, a))
		}
	}
	if c.HealthName != "" {
		if _, ok := dns.IsDomainName(c.HealthName); !ok {
			errs = append(errs, fmt.Errorf("blocking.health_name: want a domain name such as \"health.vigil.\", got %q", c.HealthName))
		}
	}
	if c.TTL < time.Second || c.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("blocking.ttl: want \"1s\" to \"24h\", got %q", c.TTL.String()))
	}
	return errors.Join(errs...)
}

// ListSource provides the current compiled lists; Current is called once
// per query and must be cheap (an atomic load).
type ListSource interface {
	Current() *blocklists.Set
}

// Block reasons.
const (
	ReasonName  = "name"  // the query name is listed
	ReasonCNAME = "cname" // a CNAME in the answer points at a listed name
)

// BlockInfo says why a Response was blocked.
type BlockInfo struct {
	List   string // the list's name
	Vendor string // the list's vendor tag
	Rule   string // the rule, in list syntax
	Reason string // ReasonName or ReasonCNAME
	CNAME  string // the blocked CNAME target, for ReasonCNAME
}

// maxCNAMEChecks bounds the work spent on one answer's CNAME records.
const maxCNAMEChecks = 16

// Blocker is the blocking stage: listed names are answered locally; other
// questions go on, and their answers are blocked too if a CNAME in them is
// listed. It sits above the cache, so a list change applies to cached
// answers at once.
type Blocker struct {
	lists  ListSource
	policy atomic.Pointer[blockPolicy] // replaced by a reload
	next   Handler
	pause  *Pauser // nil: never paused
}

type blockPolicy struct {
	cfg BlockingConfig
	ttl uint32
}

var _ Handler = (*Blocker)(nil)

// NewBlocker returns a blocking stage in front of next; pause may be nil.
func NewBlocker(lists ListSource, cfg BlockingConfig, pause *Pauser, next Handler) *Blocker {
	b := &Blocker{lists: lists, next: next, pause: pause}
	b.Reconfigure(cfg)
	return b
}

// Reconfigure replaces how blocked names are answered.
func (b *Blocker) Reconfigure(cfg BlockingConfig) {
	b.policy.Store(&blockPolicy{cfg: cfg, ttl: uint32(cfg.TTL / time.Second)})
}

// Resolve implements Handler.
func (b *Blocker) Resolve(ctx context.Context, q *Query) (*Response, error) {
	if b.pause != nil && b.pause.Paused(q.Client, q.Start) {
		return b.next.Resolve(ctx, q)
	}
	mt := b.lists.Current().Matcher
	verdict, matched := mt.Match(q.Name)
	if matched && verdict.Blocked {
		return b.blocked(q, verdict, ReasonName, ""), nil
	}
	resp, err := b.next.Resolve(ctx, q)
	if err != nil || matched || !b.policy.Load().cfg.CNAMECheck {
		// An explicitly allowed name is trusted with its CNAMEs too, as
		// Pi-hole does: the user said so.
		return resp, err
	}
	checked := 0
	for _, rr := range resp.Msg.Answer {
		c, ok := rr.(*dns.CNAME)
		if !ok {
			continue
		}
		if checked++; checked > maxCNAMEChecks {
			break
		}
		target := strings.ToLower(c.Target)
		if v, ok := mt.Match(target); ok && v.Blocked {
			return b.blocked(q, v, ReasonCNAME, target), nil
		}
	}
	return resp, nil
}

// blocked builds the local answer for a blocked question.
func (b *Blocker) blocked(q *Query, v blocklists.Match, reason, cname string) *Response {
	pol := b.policy.Load()
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.Authoritative = true
	hdr := dns.RR_Header{Name: q.Msg.Question[0].Name, Class: dns.ClassINET, Ttl: pol.ttl}
	switch pol.cfg.Answer {
	case AnswerRefused:
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
	case AnswerNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soaFor(v.Rule.Name, pol.ttl)}
	default:
		switch {
		case q.Type == dns.TypeA && q.Class == dns.ClassINET:
			addrs := []netip.Addr{netip.IPv4Unspecified()}
			if pol.cfg.Answer == AnswerIP {
				addrs = pol.cfg.IPv4
			}
			hdr.Rrtype = dns.TypeA
			for _, a := range addrs {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
			}
		case q.Type == dns.TypeAAAA && q.Class == dns.ClassINET:
			addrs := []netip.Addr{netip.IPv6Unspecified()}
			if pol.cfg.Answer == AnswerIP {
				addrs = pol.cfg.IPv6
			}
			hdr.Rrtype = dns.TypeAAAA
			for _, a := range addrs {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
			}
		}
		if len(m.Answer) == 0 {
			// NODATA: the SOA bounds how long clients cache it (RFC 2308).
			m.Ns = []dns.RR{soaFor(v.Rule.Name, pol.ttl)}
		}
	}
	info := &BlockInfo{List: v.List.Name, Vendor: v.List.Vendor, Rule: v.Rule.String(), Reason: reason, CNAME: cname}
	text := "blocked by list " + info.List
	if info.Vendor != "" {
		text += " (" + info.Vendor + ")"
	}
	text += ": " + info.Rule
	if cname != "" {
		text += " via CNAME " + cname
	}
	return &Response{
		Msg: m, Source: SourceBlocked, Blocked: info,
		ExtendedError: &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: text},
	}
}

// soaFor is the SOA of a blocked answer: it bounds how long resolvers
// cache the negative answer (RFC 2308).
func soaFor(zone string, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: dns.Fqdn(zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "vigil.", Mbox: "blocked.vigil.", Serial: 1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl,
	}
}
