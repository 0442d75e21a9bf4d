package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Upstream exchanges one message with one server. Unlike miekg's client it
// takes a context, so shutdown and the query deadline cut a wait short, and
// it checks the whole question of the reply, not just its ID.
type Upstream interface {
	// Exchange sends m and returns the matching reply. m must have its ID
	// set; Exchange does not modify m.
	Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
	// String names the upstream for logs and metrics.
	String() string
}

// Errors an Upstream returns.
var (
	// ErrTimeout means no matching reply came in time.
	ErrTimeout = errors.New("no matching reply before the deadline")
	// ErrMismatch means a TCP upstream answered a different question.
	ErrMismatch = errors.New("reply does not match the question")
)

// maxDNSMessage is the largest DNS message (RFC 1035 section 4.2.2's
// two-byte TCP length).
const maxDNSMessage = 65535

// udpReplySize is the read buffer for UDP replies: Vigil offers upstreams
// upstreamUDPSize (1232) bytes, so a longer datagram is a misbehaving
// upstream; anything cut off fails to parse and is ignored like garbage.
const udpReplySize = 4096

// PlainUpstream speaks classic DNS over UDP (retrying over TCP when the
// answer is truncated) or over TCP only.
type PlainUpstream struct {
	spec   UpstreamSpec
	dialer net.Dialer
	udp    *udpMux // the UDP exchanges' sockets (upstream_mux.go)
}

// NewPlainUpstream returns an upstream for a udp:// or tcp:// spec.
func NewPlainUpstream(spec UpstreamSpec) *PlainUpstream {
	return &PlainUpstream{spec: spec, udp: newUDPMux(spec)}
}

var _ Upstream = (*PlainUpstream)(nil)

// String implements Upstream.
func (u *PlainUpstream) String() string { return u.spec.String() }

// Exchange implements Upstream.
//
// UDP exchanges share a few connected sockets on random source ports that
// keep changing, each query under a random ID (udpMux says how); a
// connected socket only delivers datagrams from the upstream's address,
// and together with the question check that makes off-path spoofing
// expensive (RFC 5452 section 9).
func (u *PlainUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	if u.spec.Net == "udp" {
		deadline, _ := ctx.Deadline()
		r, err := u.udp.exchange(deadline, ctx.Done(), m, wire)
		if err != nil || !r.Truncated {
			return r, err
		}
		// RFC 7766 section 5: a truncated answer is retried over TCP.
	}
	return u.exchangeTCP(ctx, m, wire)
}

// deadlineExchanger is an Upstream that can exchange bounded by a
// deadline alone (*PlainUpstream).
type deadlineExchanger interface {
	ExchangeBy(deadline time.Time, m *dns.Msg) (*dns.Msg, error)
}

// ExchangeBy is Exchange bounded by a deadline alone, for an exchange
// nothing cancels early (the forwarder's, but for the parallel race): the
// socket's deadline ends it. Exchange derives the same deadline from a
// context, which costs a context and a callback registered on its parent
// per query — and the parent, the server's, is shared by every query:
// its lock was taken twice per forwarded query. deadline must not be zero.
func (u *PlainUpstream) ExchangeBy(deadline time.Time, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	if u.spec.Net == "udp" {
		r, err := u.udp.exchange(deadline, nil, m, wire)
		if err != nil || !r.Truncated {
			return r, err
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return u.exchangeTCP(ctx, m, wire)
}

// Close retires the UDP sockets: each closes once its exchanges in flight
// are over. The Forwarder calls it for an upstream a reload removed.
func (u *PlainUpstream) Close() error {
	u.udp.close()
	return nil
}

func (u *PlainUpstream) exchangeTCP(ctx context.Context, m *dns.Msg, wire []byte) (*dns.Msg, error) {
	conn, err := u.dialer.DialContext(ctx, "tcp", u.spec.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s over tcp: %w", u.spec, err)
	}
	defer conn.Close()
	stop := deadlineFromContext(ctx, conn)
	defer stop()
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := conn.Write(out); err != nil {
		return nil, fmt.Errorf("sending to %s over tcp: %w", u.spec, err)
	}
	var lb [2]byte
	if _, err := io.ReadFull(conn, lb[:]); err != nil {
		return nil, tcpReadError(u.spec, err)
	}
	// Sized to the reply: TCP answers are the rare large ones.
	buf := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, tcpReadError(u.spec, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf); err != nil {
		return nil, fmt.Errorf("unpacking reply from %s over tcp: %w", u.spec, err)
	}
	if !replyMatches(m, r) {
		return nil, fmt.Errorf("%s over tcp: %w", u.spec, ErrMismatch)
	}
	return r, nil
}

func tcpReadError(spec UpstreamSpec, err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%s over tcp: %w", spec, ErrTimeout)
	}
	return fmt.Errorf("reading from %s over tcp: %w", spec, err)
}

// replyMatches reports whether r answers q: same ID, the response bit, and
// the same question (name compared case-insensitively, since upstreams may
// randomise case). miekg's client checks only the ID.
//
// An error reply without a question (some servers send SERVFAIL or FORMERR
// that way) is accepted when it carries no records: it can only make Vigil
// try another upstream, never plant data.
func replyMatches(q, r *dns.Msg) bool {
	if !r.Response || r.Id != q.Id {
		return false
	}
	if len(r.Question) == 0 {
		return r.Rcode != dns.RcodeSuccess && len(r.Answer) == 0 && len(r.Ns) == 0
	}
	if len(r.Question) != 1 {
		return false
	}
	a, b := q.Question[0], r.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// deadlineFromContext applies ctx's deadline to conn and unblocks conn as
// soon as ctx is cancelled. The returned func releases the watcher.
func deadlineFromContext(ctx context.Context, conn net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
