package resolver

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// Wire-level helpers: the one parser of plain queries, and the walks and
// size rules that answering from packed bytes needs. The decisions made
// on a parsed query belong to the stages (Local.Handles, Blocker.judge,
// Cache.freshEntry); this file only reads and writes bytes.

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

// wireQuery is a plain query as parseWire read it: everything the query
// path needs, as offsets into and values from the request bytes.
type wireQuery struct {
	nameEnd       int // offset just past the question's name
	optOff        int // offset of the OPT record, when edns
	qtype, qclass uint16
	edns          bool
	udpSize       int
	do            bool
}

// cd reports the request's Checking Disabled bit.
func cd(req []byte) bool { return req[3]&0x10 != 0 }

// parseWire reads a plain query: one question with an uncompressed name of
// letters, digits, hyphens and underscores, and at most an OPT record of
// version 0. The lowercased presentation form of the name ("example.com.")
// is written into name. ok is false for anything else, which miekg/dns
// then unpacks in full (Server.answer).
func parseWire(req []byte, name []byte, wq *wireQuery) (n int, ok bool) {
	*wq = wireQuery{}
	if len(req) < headerLen+5 {
		return 0, false
	}
	// QR=0, opcode QUERY, not truncated; one question, no answers or
	// authority, at most one additional record.
	if req[2]&0xFA != 0 || binary.BigEndian.Uint16(req[4:]) != 1 || binary.BigEndian.Uint16(req[6:]) != 0 ||
		binary.BigEndian.Uint16(req[8:]) != 0 || binary.BigEndian.Uint16(req[10:]) > 1 {
		return 0, false
	}
	off := headerLen
	for {
		if off >= len(req) {
			return 0, false
		}
		l := int(req[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(req) || n+l+1 > len(name) {
			return 0, false
		}
		for _, c := range req[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return 0, false // escapes in presentation form: leave it to miekg/dns
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
			return 0, false
		}
		name[0] = '.' // the root
		n = 1
	}
	if off+4 > len(req) {
		return 0, false
	}
	wq.nameEnd = off
	wq.qtype = binary.BigEndian.Uint16(req[off:])
	wq.qclass = binary.BigEndian.Uint16(req[off+2:])
	off += 4
	if binary.BigEndian.Uint16(req[10:]) == 1 {
		// The OPT record: root name, type 41, class = UDP size, TTL =
		// extended rcode, version, flags; its options are not needed.
		if off+11 > len(req) || req[off] != 0 || binary.BigEndian.Uint16(req[off+1:]) != 41 {
			return 0, false
		}
		if req[off+6] != 0 { // version
			return 0, false
		}
		rdlen := int(binary.BigEndian.Uint16(req[off+9:]))
		if off+11+rdlen != len(req) || !plainOptions(req[off+11:]) {
			return 0, false
		}
		wq.edns = true
		wq.optOff = off
		wq.udpSize = int(binary.BigEndian.Uint16(req[off+3:]))
		wq.do = req[off+7]&0x80 != 0
	} else if off != len(req) {
		return 0, false
	}
	return n, true
}

// msg builds the request message that miekg/dns would unpack from req,
// which parseWire accepted as wq, so the chain gets a *dns.Msg without a
// second parse. The EDNS options are left out: parseWire accepted only
// options that no stage reads (cookies, padding, unassigned codes).
func (wq *wireQuery) msg(req []byte) *dns.Msg {
	m := &dns.Msg{MsgHdr: dns.MsgHdr{
		Id:                 binary.BigEndian.Uint16(req),
		RecursionDesired:   req[2]&0x01 != 0,
		Authoritative:      req[2]&0x04 != 0,
		RecursionAvailable: req[3]&0x80 != 0,
		Zero:               req[3]&0x40 != 0,
		AuthenticatedData:  req[3]&0x20 != 0,
		CheckingDisabled:   cd(req),
		Rcode:              int(req[3] & 0x0F),
	}}
	m.Question = []dns.Question{{Name: presentationName(req[headerLen:wq.nameEnd]), Qtype: wq.qtype, Qclass: wq.qclass}}
	if wq.edns {
		// TTL: extended rcode, version (0), DO and the other flags.
		ttl := binary.BigEndian.Uint32(req[wq.optOff+5:])
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: uint16(wq.udpSize), Ttl: ttl}}
		m.Extra = []dns.RR{opt}
		m.Rcode |= opt.ExtendedRcode()
	}
	return m
}

// presentationName turns an uncompressed wire name whose labels hold only
// characters that need no escaping (parseWire checked) into its
// presentation form, keeping the client's case.
func presentationName(wire []byte) string {
	if len(wire) <= 1 {
		return "."
	}
	var sb strings.Builder
	sb.Grow(len(wire) - 1)
	for off := 0; wire[off] != 0; {
		l := int(wire[off])
		sb.Write(wire[off+1 : off+1+l])
		sb.WriteByte('.')
		off += 1 + l
	}
	return sb.String()
}

// plainOptions reports whether EDNS option data is well-formed and holds
// only options whose content cannot make the request malformed: cookies,
// padding and codes miekg/dns treats as opaque. Options it validates
// (Client Subnet, keepalive, expire, ...) make the request go through
// miekg/dns, so a malformed one gets its FORMERR there.
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
	optLen        = 11 // an OPT record without options
)

// replyLimit is the largest answer a client takes: on UDP its EDNS buffer
// size, at least 512 (RFC 6891 section 6.2.5) and at most Vigil's own
// (server.max_udp_size); 512 without EDNS (RFC 1035 section 4.2.1); over
// stream transports, 65535.
func replyLimit(proto Proto, edns bool, udpSize, maxUDP int) int {
	if proto != ProtoUDP {
		return dns.MaxMsgSize
	}
	if !edns {
		return dns.MinMsgSize
	}
	return min(max(udpSize, dns.MinMsgSize), maxUDP)
}

// appendOPT appends Vigil's OPT record without options: its UDP size and
// the DO bit echoed (RFC 3225 section 3).
func appendOPT(out []byte, maxUDP int, do bool) []byte {
	var flags byte
	if do {
		flags = 0x80
	}
	// Root name, TYPE, CLASS = UDP size, TTL = extended rcode, version,
	// flags, RDLEN 0.
	return append(out, 0, 0, byte(dns.TypeOPT), byte(maxUDP>>8), byte(maxUDP), 0, 0, flags, 0, 0, 0)
}
