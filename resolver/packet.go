package resolver

import (
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/store/querylog"
)

// One query path. Every query packet goes through Server.prepare, which
// parses it once and asks the chain's stages, in the chain's order, whether
// they can answer it from packed bytes without building a message:
//
//  1. Local.Handles: a name Vigil answers itself goes to the chain;
//  2. Blocker.judge, then Blocker.appendPacked for a blocked name;
//  3. Cache.PackedHit, with the Blocker's CNAME check as its veto.
//
// What a stage cannot answer packed goes to Server.answer with the parse and
// the verdict (a prepared), so the chain decides nothing twice: the request
// message is built from the parse, not unpacked again, and the Blocker
// takes the verdict instead of matching again. The packed answers are
// methods of the stages that own the decision, so they cannot drift from
// Resolve; TestFastPathMatchesFullPath and FuzzFastPath check that they
// agree byte for byte in meaning.

// respond answers one query, packed if the stages can, else through the
// chain: what every transport but UDP runs (UDP readers hand the chain's
// part to a goroutine of its own). nil means no answer.
func (s *Server) respond(req []byte, client netip.Addr, proto Proto, out []byte, rb *readerBufs) []byte {
	var pre prepared
	reply, ok := s.prepare(req, client, proto, out, rb, &pre)
	if !ok {
		reply = s.answer(req, client, proto, out, &pre)
	}
	if s.tap != nil && reply != nil {
		s.tap.Tap(req, reply, netip.AddrPortFrom(client, 0), proto.tapProtocol(), time.Time{}, rb.tapExtra)
		rb.tapExtra = ""
	}
	return reply
}

// readerBufs is what one goroutine lends prepare from query to query:
// scratch for the name and a rule's text, its counter stripe and, for a
// UDP reader, its lane into the per-client log.
type readerBufs struct {
	name   []byte // 256 bytes: the longest name, lowercased
	rule   []byte
	stripe int
	// lane, when not nil, takes logged lookups; else they go to the
	// Server's Recorder.
	lane *querylog.Lane
	// batchAt, when not zero, is when the reader's current batch of
	// queries arrived (one recvmmsg): the time each of them is answered
	// at, so that a busy reader reads the clock once per batch rather
	// than once per query. Zero: each query reads the clock.
	batchAt time.Time
	// blockedKey and blockedCount are the last blocked-lookup counter
	// this reader counted (counters.countBlockedFrom).
	blockedKey   BlockedKey
	blockedCount *stripedUint64
	// tapExtra is the verdict of the packed blocked answer just built,
	// for dnstap; set only with dnstap on.
	tapExtra string
	// The access list's last answer: a reader's queries come in runs
	// from one client, and comparing an address is cheaper than walking
	// the prefixes.
	aclFor  *AccessList
	aclAddr netip.Addr
	aclOK   bool
}

// allowed is acl.Allowed(client), remembered for the next query.
func (rb *readerBufs) allowed(acl *AccessList, client netip.Addr) bool {
	if rb.aclFor != acl || rb.aclAddr != client {
		rb.aclFor, rb.aclAddr, rb.aclOK = acl, client, acl.Allowed(client)
	}
	return rb.aclOK
}

func newReaderBufs(stripe int, lane *querylog.Lane) *readerBufs {
	return &readerBufs{name: make([]byte, 256), stripe: stripe, lane: lane}
}

// prepared is what prepare learned of a query it could not answer packed;
// the zero value means nothing (the request is unpacked in full).
type prepared struct {
	// parsed: wq holds parseWire's reading of the request, the client is
	// allowed, and no EDNS option of it matters (it is not a trusted
	// forwarder's), so the request message can be built from wq.
	parsed bool
	wq     wireQuery
	// judged: verdict holds the Blocker's decision. Its rule name may be a
	// view of the reader's buffer: rebased onto the query's name before use.
	judged  bool
	verdict verdict
	// noWait: answer only from what Vigil has (Query.noWait).
	noWait bool
	// view is Query.view, when judged.
	view uint16
}

// prepare answers req from packed bytes if the stages can (reply, true), or
// writes what it learned for Server.answer into pre (false). out is the
// buffer the reply is written into. pre is the caller's, so that the
// commonest outcome, a packed answer, copies nothing.
func (s *Server) prepare(req []byte, client netip.Addr, proto Proto, out []byte, rb *readerBufs, pre *prepared) (reply []byte, ok bool) {
	pre.parsed, pre.judged, pre.noWait, pre.view = false, false, false, 0
	wq := &pre.wq
	n, parsed := parseWire(req, rb.name, wq)
	if !parsed {
		return nil, false
	}
	pol := s.policy.Load()
	if !rb.allowed(pol.acl, client) {
		return nil, false // answer refuses and counts it
	}
	if cl := pol.clients; cl != nil && len(cl.trusted) > 0 && wq.edns && cl.isTrusted(client) {
		return nil, false // its EDNS options may name another client
	}
	pre.parsed = true
	// The name as a string without copying: it is only looked up and
	// compared here; what outlives the query is copied (the log) or
	// rebased (the verdict).
	name := unsafe.String(&rb.name[0], n)
	if s.local != nil && s.local.Handles(name, wq.qtype, wq.qclass) {
		return nil, false
	}
	b := s.blocker
	var accept func([]string) bool
	var (
		m      blocklists.Match
		listed bool
	)
	// Who asked is found out only if a rule hits the name (asker).
	a := asker{cl: Client{Addr: client}, clients: pol.clients, now: rb.batchAt}
	if b != nil {
		// The verdict goes into pre only when the chain will need it: a
		// packed answer, the common case, copies nothing.
		m, listed = b.judge(name, &a)
		if listed && m.Blocked {
			if reply, ok := s.packedBlocked(req, wq, name, &a, proto, out, &m, rb); ok {
				return reply, true
			}
			pre.judged, pre.verdict = true, verdict{match: m, listed: true, mem: a.mem}
			pre.view = b.viewFor(&a) // a paused client's question is forwarded
			return nil, false
		}
		if b.cnameCheck(listed) {
			accept = func(cnames []string) bool { return b.acceptCNAMEs(&a, cnames) }
		}
	}
	if s.cache != nil && !s.recordAllowed { // allowed lookups are recorded by answer
		var view uint16
		if b != nil {
			view = b.viewFor(&a)
		}
		pre.view = view
		if reply, ok := s.cache.PackedHit(out, req, wq, name, view, proto, s.cfg.MaxUDPSize, rb.stripe, rb.batchAt, accept); ok {
			s.stats.queries.Add(rb.stripe, 1)
			s.metrics.count(rb.stripe, proto, ResultCached, wq.qtype)
			return reply, true
		}
	}
	pre.judged, pre.verdict = b != nil, verdict{match: m, listed: listed, mem: a.mem}
	return nil, false
}

// packedBlocked answers a blocked name from packed bytes when the Blocker
// can and the client's blocking is not paused, and records the lookup as
// answer would.
func (s *Server) packedBlocked(req []byte, wq *wireQuery, name string, a *asker, proto Proto, out []byte, v *blocklists.Match, rb *readerBufs) ([]byte, bool) {
	b := s.blocker
	out, ok := b.appendPacked(out, req, wq, v, a.mem, s.cfg.MaxUDPSize)
	if !ok || len(out) > replyLimit(proto, wq.edns, wq.udpSize, s.cfg.MaxUDPSize) {
		return nil, false // another answer mode, or a rule text too long for the client: answer fits it
	}
	now := a.now
	if now.IsZero() {
		now = time.Now()
	}
	cl := a.identify()
	if b.paused(*cl, a.mem, now) {
		return nil, false
	}
	s.stats.queries.Add(rb.stripe, 1)
	s.metrics.count(rb.stripe, proto, ResultBlocked, wq.qtype)
	bk := BlockedKey{List: v.List.Name, Vendor: v.List.Vendor, Client: cl.Name}
	if a.mem != nil {
		bk.Group = a.mem.Joined
	}
	s.metrics.countBlockedFrom(rb, bk)
	if s.tap != nil {
		rb.tapExtra = tapVerdict(v, cl.Name)
	}
	if s.recorder != nil {
		e := querylog.Entry{
			Time: now, ClientName: cl.Name, ClientAddr: cl.Addr, MAC: cl.MAC,
			QType: typeString(wq.qtype), Proto: proto.logName(), Blocked: true,
			List: v.List.Name, Vendor: v.List.Vendor, Reason: querylog.ReasonName,
		}
		if a.mem != nil {
			e.Group = a.mem.Joined
		}
		if rb.lane != nil {
			// The lane copies the entry before Add returns: the name and
			// rule may be views of the reader's buffers.
			e.QName, e.Rule = name, rb.ruleText(v.Rule)
			rb.lane.Add(&e)
		} else {
			e.QName, e.Rule = logStrings(name, v.Rule)
			s.recorder.Record(e)
		}
	}
	return out, true
}

// ruleText returns the rule's text for the log without allocating: a
// plain rule's text is its name (Match reports the suffix of the name
// looked up, so a view of the reader's buffer); any other is built in
// rb's scratch. Both are valid until the next query.
func (rb *readerBufs) ruleText(r blocklists.Rule) string {
	if r.Plain() {
		return r.Name
	}
	rb.rule = r.AppendText(rb.rule[:0])
	return unsafe.String(unsafe.SliceData(rb.rule), len(rb.rule))
}

// logStrings copies the looked-up name (which lives in the reader's reused
// buffer) and the rule's text for the log, in one allocation: the two
// strings share it. A plain rule's text is its name, a suffix of the name
// looked up, so it is a piece of the copy.
func logStrings(qname string, r blocklists.Rule) (name, rule string) {
	if r.Plain() {
		name = strings.Clone(qname)
		trimmed := strings.TrimSuffix(name, ".")
		return name, trimmed[len(trimmed)-len(r.Name):]
	}
	// A rule's text is its name and at most 25 bytes of syntax.
	b := make([]byte, 0, len(qname)+len(r.Name)+32)
	b = append(b, qname...)
	b = r.AppendText(b)
	// b is never written again, so strings may share it.
	both := unsafe.String(unsafe.SliceData(b), len(b))
	return both[:len(qname)], both[len(qname):]
}

// tapVerdict is a blocked answer's verdict as dnstap's extra field
// carries it: "vigil blocked list=L vendor=V rule=R client=C".
func tapVerdict(v *blocklists.Match, client string) string {
	b := make([]byte, 0, 96)
	b = append(b, "vigil blocked list="...)
	b = append(b, v.List.Name...)
	if v.List.Vendor != "" {
		b = append(append(b, " vendor="...), v.List.Vendor...)
	}
	b = append(b, " rule="...)
	b = v.Rule.AppendText(b)
	if client != "" {
		b = append(append(b, " client="...), client...)
	}
	return string(b)
}

// DescribeAnswer is the verdict dnstap's extra field carries for an answer
// the chain built (a packed blocked answer brings its own, tapVerdict):
// read back from the answer, off the query path. "vigil blocked ..." when
// the answer carries Vigil's Extended DNS Error (a client that asked with
// EDNS), else "vigil answered RCODE".
func DescribeAnswer(_, response []byte) string {
	var m dns.Msg
	if m.Unpack(response) != nil {
		return ""
	}
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok && ede.InfoCode == dns.ExtendedErrorCodeBlocked {
				return "vigil " + ede.ExtraText
			}
		}
	}
	return "vigil answered " + dns.RcodeToString[m.Rcode]
}
