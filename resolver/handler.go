// Package resolver is Vigil's query path: the listeners, the chain of
// stages that answer a query (blocking, cache, forwarding) and the
// upstream clients. It is the only package that imports miekg/dns, so a
// later move to another DNS library touches this package alone.
package resolver

import (
	"context"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver/dnstap"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Proto is the transport a query arrived on.
type Proto uint8

// Transports a query can arrive on.
const (
	ProtoUDP Proto = iota + 1
	ProtoTCP
	ProtoDoT // DNS over TLS (RFC 7858)
	ProtoDoH // DNS over HTTPS (RFC 8484)
	numProtos
)

// tapProtocol is the transport as dnstap names it.
func (p Proto) tapProtocol() dnstap.Protocol {
	switch p {
	case ProtoTCP:
		return dnstap.TCP
	case ProtoDoT:
		return dnstap.DoT
	case ProtoDoH:
		return dnstap.DoH
	}
	return dnstap.UDP
}

// String returns the lowercase transport name, as used in logs and the API.
func (p Proto) String() string { return string(p.logName()) }

// logName is the transport as the per-client log spells it.
func (p Proto) logName() querylog.Proto {
	switch p {
	case ProtoUDP:
		return querylog.ProtoUDP
	case ProtoTCP:
		return querylog.ProtoTCP
	case ProtoDoT:
		return querylog.ProtoDoT
	case ProtoDoH:
		return querylog.ProtoDoH
	default:
		return "unknown"
	}
}

// Client identifies who asked. It is computed once per query at the edge,
// before the chain runs.
type Client struct {
	// Addr is the client's address, unmapped (IPv4-in-IPv6 addresses are
	// reported as IPv4): the source address, or the address a trusted
	// forwarder passed in EDNS Client Subnet.
	Addr netip.Addr
	// Name is the configured client name, if the client is known.
	Name string
	// MAC is the hardware address a trusted forwarder passed, if any.
	MAC string
}

// Query is one client question, parsed and identified once by the Server.
//
// A Query is read-only for every Handler: stages that need a different
// message must build their own (the Forwarder does). Msg is never nil and
// holds exactly one question.
type Query struct {
	// Msg is the message as received, unpacked.
	Msg *dns.Msg
	// Name is the question name, lowercased, fully qualified ("example.com.").
	Name string
	// Type and Class are the question's type and class.
	Type, Class uint16
	// DO and CD are the DNSSEC OK and Checking Disabled bits of the request;
	// both change what an upstream returns, so both are part of the cache key.
	DO, CD bool
	// Client is the identified client.
	Client Client
	// Proto is the transport the query arrived on.
	Proto Proto
	// Start is when the Server received the query.
	Start time.Time
	// Deadline is when the client stops being worth answering; stages that
	// wait (the Forwarder) must not wait beyond it.
	Deadline time.Time

	// verdict is the blocking stage's decision on Name when judged is
	// set: the Server took it before trying a packed answer, and the
	// Blocker does not take it again.
	verdict verdict
	judged  bool
	// view says whose upstreams answer a forwarded question: 0 the
	// [upstream] servers, i the i-th group with upstreams of its own
	// (groups.Membership.View). The Server sets it; the cache keys on it.
	view uint16
	// noWait: the Server has no slot for this query to wait in (UDP past
	// max_inflight), so it is answered only from what Vigil has: the
	// cache answers fresh or stale, or fails with errNoWait.
	noWait bool
}

// Source says which stage produced a Response.
type Source uint8

// Sources of a Response.
const (
	SourceUpstream Source = iota + 1 // forwarded to an upstream
	SourceCached                     // answered from the answer cache
	SourceBlocked                    // answered by the blocking stage
	SourceLocal                      // answered by Vigil itself (errors, policy)
)

// String returns the lowercase source name, as used in logs and the API.
func (s Source) String() string {
	switch s {
	case SourceUpstream:
		return "upstream"
	case SourceCached:
		return "cached"
	case SourceBlocked:
		return "blocked"
	case SourceLocal:
		return "local"
	default:
		return "unknown"
	}
}

// Response is what a Handler returns. Handlers never write to the network:
// the Server sets the ID, the question and EDNS, fits the answer to the
// client's transport and writes it.
type Response struct {
	// Msg is the answer. It belongs to the caller, which may modify it.
	Msg *dns.Msg
	// Source says which stage produced Msg.
	Source Source
	// Upstream is the address of the upstream that answered, for
	// SourceUpstream.
	Upstream string
	// Blocked says why, for SourceBlocked.
	Blocked *BlockInfo
	// ExtendedError, when set, is attached to the answer as an RFC 8914
	// Extended DNS Error for clients that sent EDNS.
	ExtendedError *dns.EDNS0_EDE
}

// Handler answers a Query. It is the one abstraction of the query path:
// every stage implements it and holds the next stage, given at
// construction and never changed.
//
// Contract:
//   - Resolve must be safe for concurrent use.
//   - Resolve must not modify q or q.Msg.
//   - A nil error means the Response and its Msg are non-nil.
//   - A non-nil error means nothing could answer; the Server replies
//     SERVFAIL and logs the error once (stages return errors, they do not
//     log them).
//   - Stages that wait honour ctx and q.Deadline.
type Handler interface {
	Resolve(ctx context.Context, q *Query) (*Response, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, q *Query) (*Response, error)

// Resolve implements Handler.
func (f HandlerFunc) Resolve(ctx context.Context, q *Query) (*Response, error) { return f(ctx, q) }
