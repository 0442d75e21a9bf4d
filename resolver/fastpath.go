package resolver

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/store/querylog"
)

// The fast path answers the commonest query there is — a plain question
// whose answer is in the cache and involves no list — straight from the
// cached wire bytes: the ID, flags, question spelling and TTLs are patched
// in place and Vigil's OPT record appended. No message is unpacked or
// packed and nothing is allocated. Anything unusual (EDNS options from a
// trusted forwarder, a name with escapes, a listed name or CNAME target,
// an answer that needs truncating, logging of allowed lookups) falls back
// to the full path, which is the reference: TestFastPathMatchesFullPath
// and FuzzFastPath check the two agree.

// errWire means a cached answer could not be walked.
var errWire = errors.New("malformed wire message")

// skipName returns the offset just past the (possibly compressed) name at
// off.
func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errWire
		}
		c := int(msg[off])
		switch {
		case c == 0:
			return off + 1, nil
		case c&0xC0 == 0xC0:
			return off + 2, nil // a pointer ends the name
		case c&0xC0 != 0:
			return 0, errWire
		}
		off += 1 + c
	}
}

// ttlOffsets returns the offset of every record's TTL in a packed message.
func ttlOffsets(msg []byte) ([]uint16, error) {
	if len(msg) < headerLen {
		return nil, errWire
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off := headerLen
	var err error
	for range qd {
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		off += 4
	}
	out := make([]uint16, 0, rrs)
	for range rrs {
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		if off+10 > len(msg) || off > 0xFFFF {
			return nil, errWire
		}
		out = append(out, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	if off > len(msg) {
		return nil, errWire
	}
	return out, nil
}

// fastQuery is what the fast path reads from a request.
type fastQuery struct {
	nameEnd       int // offset just past the question's name
	qtype, qclass uint16
	edns          bool
	udpSize       int
	do            bool
}

// parseFast reads a plain query: one question with an uncompressed name of
// letters, digits, hyphens and underscores, and at most an OPT record of
// version 0. The lowercased presentation form of the name ("example.com.")
// is written into name. ok is false for anything else.
func parseFast(req []byte, name []byte) (fq fastQuery, n int, ok bool) {
	if len(req) < headerLen+5 {
		return fq, 0, false
	}
	// QR=0, opcode QUERY, not truncated; one question, no answers or
	// authority, at most one additional record.
	if req[2]&0xFA != 0 || binary.BigEndian.Uint16(req[4:]) != 1 || binary.BigEndian.Uint16(req[6:]) != 0 ||
		binary.BigEndian.Uint16(req[8:]) != 0 || binary.BigEndian.Uint16(req[10:]) > 1 {
		return fq, 0, false
	}
	off := headerLen
	for {
		if off >= len(req) {
			return fq, 0, false
		}
		l := int(req[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(req) || n+l+1 > len(name) {
			return fq, 0, false
		}
		for _, c := range req[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return fq, 0, false // escapes in presentation form: leave it to the full path
			}
			name[n] = c
			n++
		}
		name[n] = '.'
		n++
		off += l
	}
	if n == 0 {
		if len(name) == 0 {
			return fq, 0, false
		}
		name[0] = '.' // the root
		n = 1
	}
	if off+4 > len(req) {
		return fq, 0, false
	}
	fq.nameEnd = off
	fq.qtype = binary.BigEndian.Uint16(req[off:])
	fq.qclass = binary.BigEndian.Uint16(req[off+2:])
	off += 4
	if binary.BigEndian.Uint16(req[10:]) == 1 {
		// The OPT record: root name, type 41, class = UDP size, TTL =
		// extended rcode, version, flags; its options are not needed.
		if off+11 > len(req) || req[off] != 0 || binary.BigEndian.Uint16(req[off+1:]) != 41 {
			return fq, 0, false
		}
		if req[off+6] != 0 { // version
			return fq, 0, false
		}
		rdlen := int(binary.BigEndian.Uint16(req[off+9:]))
		if off+11+rdlen != len(req) || !plainOptions(req[off+11:]) {
			return fq, 0, false
		}
		fq.edns = true
		fq.udpSize = int(binary.BigEndian.Uint16(req[off+3:]))
		fq.do = req[off+7]&0x80 != 0
	} else if off != len(req) {
		return fq, 0, false
	}
	return fq, n, true
}

// plainOptions reports whether EDNS option data is well-formed and holds
// only options whose content cannot make the request malformed: cookies,
// padding and codes the full path treats as opaque. Options the full path
// validates (Client Subnet, keepalive, expire, ...) go to the full path, so
// a malformed one gets its FORMERR there.
func plainOptions(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+n {
			return false
		}
		if code <= 18 && code != dnsOptCookie && code != dnsOptPadding {
			return false
		}
		b = b[4+n:]
	}
	return true
}

const (
	dnsOptCookie  = 10
	dnsOptPadding = 12
)

// fastBufs is what one goroutine lends fastAnswer from query to query:
// scratch for the name and a rule's text, its counter stripe and, for a
// UDP reader, its lane into the per-client log.
type fastBufs struct {
	name   []byte // 256 bytes: the longest name, lower-cased
	rule   []byte
	stripe int
	// lane, when not nil, takes logged lookups (querylog.Lane); else they
	// go to the Server's Recorder.
	lane *querylog.Lane
}

func newFastBufs(stripe int, lane *querylog.Lane) *fastBufs {
	return &fastBufs{name: make([]byte, 256), stripe: stripe, lane: lane}
}

// ruleText returns the rule's text for the log without allocating: a
// plain rule's text is its name (Match reports the suffix of the name
// looked up, so a view of the reader's buffer); any other is built in
// fb's scratch. Both are valid until the next query.
func (fb *fastBufs) ruleText(r blocklists.Rule) string {
	if r.Plain() {
		return r.Name
	}
	fb.rule = r.AppendText(fb.rule[:0])
	return unsafe.String(unsafe.SliceData(fb.rule), len(fb.rule))
}

// fastAnswer answers req from the cache if the fast path applies; ok is
// false when the full path must answer instead.
func (s *Server) fastAnswer(req []byte, client netip.Addr, proto Proto, out []byte, fb *fastBufs) (reply []byte, ok bool) {
	c := s.cache
	if c == nil || s.recordAllowed {
		return nil, false
	}
	fq, n, ok := parseFast(req, fb.name)
	pol := s.policy.Load()
	if !ok || !pol.acl.Allowed(client) {
		return nil, false
	}
	if cl := pol.clients; cl != nil && len(cl.trusted) > 0 && fq.edns && cl.isTrusted(client) {
		return nil, false // its EDNS options may name another client
	}
	// The name as a string without copying: it is only looked up and
	// compared here, never kept (a list match sends us to the full path
	// before anything could hold on to it).
	qname := unsafe.String(&fb.name[0], n)
	if s.lists != nil {
		if v, listed := s.lists.Current().Matcher.Match(qname); listed {
			return s.fastBlocked(req, fq, qname, client, proto, out, pol, v, fb)
		}
	}
	cd := req[3]&0x10 != 0
	h := c.hashKey(qname, fq.qtype, fq.qclass, fq.do, cd)
	sh := &c.shards[h%cacheShards]
	now := c.now().UnixNano()
	e := sh.get(h)
	if e == nil || e.key.name != qname || e.key.qtype != fq.qtype || e.key.cls != fq.qclass || e.key.do != fq.do ||
		e.key.cd != cd || now >= e.expires || e.ttls == nil {
		return nil, false
	}
	if s.lists != nil && s.blocker != nil && s.blocker.policy.Load().cfg.CNAMECheck {
		mt := s.lists.Current().Matcher
		for _, t := range e.cnames {
			if v, listed := mt.Match(t); listed && v.Blocked {
				return nil, false
			}
		}
	}
	size := len(e.wire)
	if fq.edns {
		size += 11
	}
	if proto == ProtoUDP {
		limit := 512
		if fq.edns {
			limit = min(max(fq.udpSize, 512), s.cfg.MaxUDPSize)
		}
		if size > limit {
			return nil, false // needs truncating: the full path does that
		}
	}
	out = append(out[:0], e.wire...)
	out[0], out[1] = req[0], req[1]
	out[2] = 0x80 | out[2]&0x04 | req[2]&0x01 // QR, AA as cached, RD as asked
	out[3] = 0x80 | out[3]&0x6F | req[3]&0x10 // RA, Z/AD/rcode as cached, CD as asked
	copy(out[headerLen:fq.nameEnd], req[headerLen:fq.nameEnd])
	age := uint32((now - e.stored) / 1e9)
	for _, off := range e.ttls {
		ttl := binary.BigEndian.Uint32(out[off:])
		binary.BigEndian.PutUint32(out[off:], ttl-min(age, ttl))
	}
	if fq.edns {
		var opt [11]byte
		binary.BigEndian.PutUint16(opt[1:], 41)
		binary.BigEndian.PutUint16(opt[3:], uint16(s.cfg.MaxUDPSize))
		if fq.do {
			opt[7] = 0x80
		}
		out = append(out, opt[:]...)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	s.stats.queries.Add(fb.stripe, 1)
	s.metrics.count(fb.stripe, proto, ResultCached, fq.qtype)
	c.hits.Add(fb.stripe, 1)
	return out, true
}

// hashKey is the cache key hash for a question; it must agree with key.
func (c *Cache) hashKey(name string, qtype, qclass uint16, do, cd bool) uint64 {
	h := maphash.String(c.seed, name)
	flags := uint64(qtype)<<32 | uint64(qclass)<<16
	if do {
		flags |= 1
	}
	if cd {
		flags |= 2
	}
	// Mix the fixed-size fields in with a multiply so they spread over
	// the shard bits too.
	return h ^ (flags+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
}

// handlesLocally reports whether the local stage answers name itself (so
// the fast paths must leave it to the full path).
func (l *Local) handlesLocally(name string, qtype uint16) bool {
	cfg := l.cfg.Load()
	if qtype == dns.TypeANY || cfg.HealthName != "" && name == cfg.HealthName {
		return true
	}
	if cfg.BlockBypass {
		for _, n := range bypassNXDomain {
			if name == n {
				return true
			}
		}
		return name == "resolver.arpa." || strings.HasSuffix(name, ".resolver.arpa.")
	}
	return false
}

// fastBlocked answers an A or AAAA question for a listed name in "null"
// mode straight from the request bytes — header, the client's question, a
// compressed answer of 0.0.0.0 or ::, and Vigil's OPT with the Extended
// DNS Error — records it like the full path does and returns true. Any
// other case is left to the full path (FuzzFastPath and
// TestFastPathMatchesFullPath hold the two to the same answers).
func (s *Server) fastBlocked(req []byte, fq fastQuery, qname string, client netip.Addr, proto Proto, out []byte, pol *serverPolicy, v blocklists.Match, fb *fastBufs) ([]byte, bool) {
	b := s.blocker
	if b == nil || !v.Blocked || fq.qclass != dns.ClassINET || (fq.qtype != dns.TypeA && fq.qtype != dns.TypeAAAA) {
		return nil, false
	}
	bp := b.policy.Load()
	if bp.cfg.Answer != AnswerNull || s.local != nil && s.local.handlesLocally(qname, fq.qtype) {
		return nil, false
	}
	now := time.Now()
	var cl Client
	if b.pause != nil || s.recorder != nil || pol.clients != nil {
		cl = Client{Addr: client}
		if pol.clients != nil {
			cl.Name = pol.clients.nameOf(client)
		}
		if b.pause != nil && b.pause.Paused(cl, now) {
			return nil, false
		}
	}
	out = append(out[:0], req[:fq.nameEnd+4]...) // header and question, as asked
	out[2] = 0x80 | 0x04 | req[2]&0x01           // QR, AA, RD as asked
	out[3] = 0x80 | req[3]&0x10                  // RA, CD as asked, NOERROR
	binary.BigEndian.PutUint16(out[6:], 1)       // one answer
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	out = append(out, 0xC0, headerLen) // the owner: the question's name
	out = binary.BigEndian.AppendUint16(out, fq.qtype)
	out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
	out = binary.BigEndian.AppendUint32(out, bp.ttl)
	if fq.qtype == dns.TypeA {
		out = append(out, 0, 4, 0, 0, 0, 0)
	} else {
		out = append(out, 0, 16)
		out = append(out, make([]byte, 16)...)
	}
	if fq.edns {
		out = append(out, 0)
		out = binary.BigEndian.AppendUint16(out, dns.TypeOPT)
		out = binary.BigEndian.AppendUint16(out, uint16(s.cfg.MaxUDPSize))
		flags := byte(0)
		if fq.do {
			flags = 0x80
		}
		out = append(out, 0, 0, flags, 0) // extended rcode, version, DO, Z
		// RDLEN and the option length are patched once the text is in:
		// "blocked by list <list> (<vendor>): <rule>", written in place.
		rdlen := len(out)
		out = append(out, 0, 0)
		out = binary.BigEndian.AppendUint16(out, dns.EDNS0EDE)
		out = append(out, 0, 0)
		out = binary.BigEndian.AppendUint16(out, dns.ExtendedErrorCodeBlocked)
		text := len(out)
		out = append(out, "blocked by list "...)
		out = append(out, v.List.Name...)
		if v.List.Vendor != "" {
			out = append(append(append(out, " ("...), v.List.Vendor...), ')')
		}
		out = append(out, ": "...)
		out = v.Rule.AppendText(out)
		binary.BigEndian.PutUint16(out[rdlen:], uint16(6+len(out)-text))
		binary.BigEndian.PutUint16(out[rdlen+4:], uint16(2+len(out)-text))
		binary.BigEndian.PutUint16(out[10:], 1)
	}
	if proto == ProtoUDP {
		limit := 512
		if fq.edns {
			limit = min(max(fq.udpSize, 512), s.cfg.MaxUDPSize)
		}
		if len(out) > limit {
			return nil, false // a very long rule text: the full path fits it
		}
	}
	s.stats.queries.Add(fb.stripe, 1)
	s.metrics.count(fb.stripe, proto, ResultBlocked, fq.qtype)
	s.metrics.countBlocked(fb.stripe, BlockedKey{List: v.List.Name, Vendor: v.List.Vendor, Client: cl.Name})
	if s.recorder != nil {
		e := querylog.Entry{
			Time: now, ClientName: cl.Name, ClientAddr: client,
			QType: typeString(fq.qtype), Proto: proto.String(), Blocked: true,
			List: v.List.Name, Vendor: v.List.Vendor, Reason: ReasonName,
		}
		if fb.lane != nil {
			// The lane copies the entry before Add returns: the name and
			// rule may be views of the reader's buffers.
			e.QName, e.Rule = qname, fb.ruleText(v.Rule)
			fb.lane.Add(&e)
		} else {
			e.QName, e.Rule = logStrings(qname, v.Rule)
			s.recorder.Record(e)
		}
	}
	return out, true
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
