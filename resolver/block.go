package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/store/querylog"
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
	// ChaosIdentity, when set, is the text Vigil answers the CHAOS TXT
	// identity questions with (version.bind, hostname.bind, id.server,
	// version.server; RFC 4892); "" answers them REFUSED. They are never
	// forwarded either way (see Local).
	ChaosIdentity string `toml:"chaos_identity"`
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
	if len(c.ChaosIdentity) > 255 || strings.IndexFunc(c.ChaosIdentity, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		errs = append(errs, fmt.Errorf("blocking.chaos_identity: want \"\" (CHAOS queries refused) or up to 255 printable ASCII characters, got %q", c.ChaosIdentity))
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

// BlockInfo says why a Response was blocked.
type BlockInfo struct {
	List   string          // the list's name
	Vendor string          // the list's vendor tag
	Rule   string          // the rule, in list syntax
	Reason querylog.Reason // querylog.ReasonName or querylog.ReasonCNAME
	CNAME  string          // the blocked CNAME target, for ReasonCNAME
	Group  string          // the client's groups, joined with ","; "" without groups
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
	groups atomic.Pointer[groupState]  // replaced by a reload; never nil
	next   Handler
	pause  *Pauser // nil: never paused
}

// groupState is the [[groups]] in force and the view of them for the
// current lists (groups.View), built when a lookup first needs it: after a
// list update, a reload, or on the minute when schedules may change.
type groupState struct {
	g    *groups.Groups
	view atomic.Pointer[groups.View]
}

// asker is the client a name is judged for. Identifying a client and its
// groups costs map lookups, so the Server's packed path has it done only
// when a rule hits the name (Matcher.MatchFor): most names hit none.
type asker struct {
	cl      Client
	clients *Clients // completes cl when identify is first called; nil: cl is complete
	done    bool
	mem     *groups.Membership // the client's groups; set when a rule hit and groups apply
	// now, when not zero, is the time the lookup was judged at, for the
	// caller to reuse: reading the clock costs as much as the rest of a
	// blocked answer's identification.
	now time.Time
}

// identify returns the client, completing its identity the first time.
func (a *asker) identify() *Client {
	if !a.done {
		a.done = true
		if a.clients != nil {
			a.clients.complete(&a.cl)
		}
	}
	return &a.cl
}

type blockPolicy struct {
	cfg BlockingConfig
	ttl uint32
}

// addrs returns the addresses a blocked A or AAAA question is answered
// with: the unspecified address in "null" mode, the configured ones in
// "ip" mode; none for other types (NODATA).
func (p *blockPolicy) addrs(qtype uint16, answer string) []netip.Addr {
	switch {
	case qtype == dns.TypeA && answer == AnswerIP:
		return p.cfg.IPv4
	case qtype == dns.TypeA:
		return []netip.Addr{netip.IPv4Unspecified()}
	case qtype == dns.TypeAAAA && answer == AnswerIP:
		return p.cfg.IPv6
	case qtype == dns.TypeAAAA:
		return []netip.Addr{netip.IPv6Unspecified()}
	}
	return nil
}

var _ Handler = (*Blocker)(nil)

// NewBlocker returns a blocking stage in front of next; pause may be nil.
func NewBlocker(lists ListSource, cfg BlockingConfig, pause *Pauser, next Handler) *Blocker {
	b := &Blocker{lists: lists, next: next, pause: pause}
	b.Reconfigure(cfg)
	b.SetGroups(nil)
	return b
}

// SetGroups puts the compiled [[groups]] in force (nil: none); every
// lookup after it uses them.
func (b *Blocker) SetGroups(g *groups.Groups) {
	if g == nil {
		g = groups.New(nil, nil)
	}
	b.groups.Store(&groupState{g: g})
}

// Groups returns the [[groups]] in force.
func (b *Blocker) Groups() *groups.Groups { return b.groups.Load().g }

// Reconfigure replaces how blocked names are answered.
func (b *Blocker) Reconfigure(cfg BlockingConfig) {
	b.policy.Store(&blockPolicy{cfg: cfg, ttl: uint32(cfg.TTL / time.Second)})
}

// verdict is the blocking stage's decision on a question's name, taken
// once per query: by the Server before it answers from packed bytes, and
// handed to Resolve in the Query when the chain must answer instead.
type verdict struct {
	match  blocklists.Match   // valid when listed
	listed bool               // a rule decided (blocking or allowing)
	mem    *groups.Membership // the client's groups, when judging needed them
}

// blocks reports whether the name itself is blocked (before any pause).
func (v verdict) blocks() bool { return v.listed && v.match.Blocked }

// rebase points the rule's name, a suffix of the name looked up (Match
// reports the suffix it hashed), into name, the same name in memory that
// outlives the buffer it was looked up in.
func (v *verdict) rebase(name string) {
	if !v.listed {
		return
	}
	name = strings.TrimSuffix(name, ".")
	v.match.Rule.Name = name[len(name)-len(v.match.Rule.Name):]
}

// judge looks name (lowercased, fully qualified) up in the lists that
// apply to the asker: the rule that decides, if one does (listed). It
// returns the matcher's values as they are, so the caller builds a verdict
// only when it keeps one (measured: returning a verdict cost the packed
// answers ~15 ns a query). The asker is identified, and a.mem set, only
// when a rule hits the name and groups or per-device exceptions exist.
func (b *Blocker) judge(name string, a *asker) (m blocklists.Match, listed bool) {
	mt := b.lists.Current().Matcher
	return mt.MatchFor(name, func() *blocklists.ListSet { return b.listsFor(mt, a) })
}

// listsFor returns the lists of mt that apply to the asker (nil: all).
func (b *Blocker) listsFor(mt *blocklists.Matcher, a *asker) *blocklists.ListSet {
	gs := b.groups.Load()
	lists := mt.Lists()
	v := gs.view.Load()
	stale := !v.ForLists(lists)
	if !stale && !v.Until.IsZero() {
		if a.now.IsZero() {
			a.now = time.Now()
		}
		stale = !a.now.Before(v.Until)
	}
	if stale {
		// Built by whichever lookup gets here first after a change; two
		// may build at once, and both views are right.
		v = gs.g.ViewFor(lists, time.Now())
		gs.view.Store(v)
	}
	if v.Unrestricted() {
		return nil
	}
	cl := a.identify()
	var mac [6]byte
	if cl.MAC != "" {
		mac, _ = colonMAC(cl.MAC)
	}
	a.mem = gs.g.Of(cl.Name, cl.Addr, mac)
	return v.Set(a.mem, cl.Name, cl.Addr)
}

// viewFor says whose upstreams answer the asker's forwarded questions
// (Query.view): 0 unless some group has upstreams of its own, and only
// then is the asker identified.
func (b *Blocker) viewFor(a *asker) uint16 {
	gs := b.groups.Load()
	if !gs.g.HasUpstreams() {
		return 0
	}
	if a.mem == nil {
		cl := a.identify()
		var mac [6]byte
		if cl.MAC != "" {
			mac, _ = colonMAC(cl.MAC)
		}
		a.mem = gs.g.Of(cl.Name, cl.Addr, mac)
	}
	if a.mem == nil {
		return 0
	}
	return a.mem.View
}

// paused reports whether blocking is paused for the client (by itself,
// one of its groups, or for everyone); a paused client's answers are
// passed through untouched.
func (b *Blocker) paused(cl Client, mem *groups.Membership, now time.Time) bool {
	return b.pause != nil && b.pause.Paused(cl, mem, now)
}

// cnameCheck reports whether answers to a name with verdict v must have
// their CNAME targets checked: an explicitly allowed name is trusted with
// its CNAMEs too, as Pi-hole does (the user said so).
func (b *Blocker) cnameCheck(listed bool) bool {
	return !listed && b.policy.Load().cfg.CNAMECheck
}

// blockedCNAME returns the first listed, blocked name among at most
// maxCNAMEChecks CNAME targets (lowercased), given by target(i) for i in
// [0, n).
func (b *Blocker) blockedCNAME(a *asker, n int, target func(i int) string) (blocklists.Match, string, bool) {
	if n == 0 {
		return blocklists.Match{}, "", false
	}
	for i := range min(n, maxCNAMEChecks) {
		t := target(i)
		if v, ok := b.judge(t, a); ok && v.Blocked {
			return v, t, true
		}
	}
	return blocklists.Match{}, "", false
}

// acceptCNAMEs is the Blocker's veto on a cached answer served packed to
// the asker: it refuses one with a blocked CNAME target (blocked, or
// passed if the client is paused: Resolve decides).
func (b *Blocker) acceptCNAMEs(a *asker, cnames []string) bool {
	_, _, blocked := b.blockedCNAME(a, len(cnames), func(i int) string { return cnames[i] })
	return !blocked
}

// Resolve implements Handler.
func (b *Blocker) Resolve(ctx context.Context, q *Query) (*Response, error) {
	v := q.verdict
	a := asker{cl: q.Client, done: true, mem: v.mem}
	if !q.judged {
		v.match, v.listed = b.judge(q.Name, &a)
	}
	if v.blocks() && !b.paused(q.Client, a.mem, q.Start) {
		return b.blocked(q, &v.match, a.mem, querylog.ReasonName, ""), nil
	}
	resp, err := b.next.Resolve(ctx, q)
	if err != nil || !b.cnameCheck(v.listed) {
		return resp, err
	}
	var targets [maxCNAMEChecks]string
	n := 0
	for _, rr := range resp.Msg.Answer {
		if c, ok := rr.(*dns.CNAME); ok && n < len(targets) {
			targets[n] = strings.ToLower(c.Target)
			n++
		}
	}
	if m, t, ok := b.blockedCNAME(&a, n, func(i int) string { return targets[i] }); ok && !b.paused(q.Client, a.mem, q.Start) {
		return b.blocked(q, &m, a.mem, querylog.ReasonCNAME, t), nil
	}
	return resp, nil
}

// answerMode is how a blocked name is answered to a client in mem's
// groups: the first group's mode that is set, else [blocking].answer.
func (p *blockPolicy) answerMode(mem *groups.Membership) string {
	if mem != nil && mem.Answer != "" {
		return mem.Answer
	}
	return p.cfg.Answer
}

// blocked builds the local answer for a blocked question asked by a
// client in mem's groups (nil: none).
func (b *Blocker) blocked(q *Query, v *blocklists.Match, mem *groups.Membership, reason querylog.Reason, cname string) *Response {
	pol := b.policy.Load()
	answer := pol.answerMode(mem)
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.Authoritative = true
	hdr := dns.RR_Header{Name: q.Msg.Question[0].Name, Class: dns.ClassINET, Ttl: pol.ttl}
	switch answer {
	case AnswerRefused:
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
	case AnswerNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soaFor(v.Rule.Name, pol.ttl)}
	default:
		if q.Class == dns.ClassINET {
			hdr.Rrtype = q.Type
			for _, a := range pol.addrs(q.Type, answer) {
				if q.Type == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
				} else {
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
				}
			}
		}
		if len(m.Answer) == 0 {
			// NODATA: the SOA bounds how long clients cache it (RFC 2308).
			m.Ns = []dns.RR{soaFor(v.Rule.Name, pol.ttl)}
		}
	}
	info := &BlockInfo{List: v.List.Name, Vendor: v.List.Vendor, Rule: v.Rule.String(), Reason: reason, CNAME: cname}
	if mem != nil {
		info.Group = mem.Joined
	}
	return &Response{
		Msg: m, Source: SourceBlocked, Blocked: info,
		ExtendedError: &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: string(appendBlockText(nil, v, cname))},
	}
}

// appendBlockText appends the Extended DNS Error text of a blocked answer
// (RFC 8914 code 15): "blocked by list <list> (<vendor>): <rule>", and
// " via CNAME <target>" when a CNAME target was the listed name.
func appendBlockText(b []byte, v *blocklists.Match, cname string) []byte {
	b = append(b, "blocked by list "...)
	b = append(b, v.List.Name...)
	if v.List.Vendor != "" {
		b = append(append(append(b, " ("...), v.List.Vendor...), ')')
	}
	b = append(b, ": "...)
	b = v.Rule.AppendText(b)
	if cname != "" {
		b = append(append(b, " via CNAME "...), cname...)
	}
	return b
}

// appendPacked appends the blocked answer to a question of req (parsed
// as wq) straight from the request bytes: header, the client's question,
// a compressed answer of 0.0.0.0 or ::, and Vigil's OPT with the Extended
// DNS Error. It is the packed form of blocked for the commonest case, an
// A or AAAA question in "null" mode; ok is false for any other case, which
// blocked answers. FuzzFastPath holds the two to the same answers.
func (b *Blocker) appendPacked(out, req []byte, wq *wireQuery, v *blocklists.Match, mem *groups.Membership, maxUDP int) ([]byte, bool) {
	pol := b.policy.Load()
	if pol.answerMode(mem) != AnswerNull || wq.qclass != dns.ClassINET || (wq.qtype != dns.TypeA && wq.qtype != dns.TypeAAAA) {
		return out, false
	}
	out = append(out[:0], req[:wq.nameEnd+4]...) // header and question, as asked
	out[2] = 0x80 | 0x04 | req[2]&0x01           // QR, AA, RD as asked
	out[3] = 0x80 | req[3]&0x10                  // RA, CD as asked, NOERROR
	binary.BigEndian.PutUint16(out[6:], 1)       // one answer
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	out = append(out, 0xC0, headerLen) // the owner: the question's name
	out = binary.BigEndian.AppendUint16(out, wq.qtype)
	out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
	out = binary.BigEndian.AppendUint32(out, pol.ttl)
	if wq.qtype == dns.TypeA {
		out = append(out, 0, 4, 0, 0, 0, 0)
	} else {
		out = append(out, 0, 16)
		out = append(out, make([]byte, 16)...)
	}
	if wq.edns {
		out = appendOPT(out, maxUDP, wq.do)
		// The option, then RDLEN and the option length patched once the
		// text is in, written in place.
		opt := len(out) - 2
		out = binary.BigEndian.AppendUint16(out, dns.EDNS0EDE)
		out = append(out, 0, 0)
		out = binary.BigEndian.AppendUint16(out, dns.ExtendedErrorCodeBlocked)
		text := len(out)
		out = appendBlockText(out, v, "")
		binary.BigEndian.PutUint16(out[opt:], uint16(6+len(out)-text))
		binary.BigEndian.PutUint16(out[opt+4:], uint16(2+len(out)-text))
		binary.BigEndian.PutUint16(out[10:], 1)
	}
	return out, true
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
