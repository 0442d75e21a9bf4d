package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
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

// udpBufPool holds read buffers for UDP replies: a fresh buffer per
// exchange would be most of a cache miss's garbage. Small, since up to
// max_inflight of them can be in use at once.
var udpBufPool = sync.Pool{New: func() any { b := make([]byte, udpReplySize); return &b }}

// PlainUpstream speaks classic DNS over UDP (retrying over TCP when the
// answer is truncated) or over TCP only.
type PlainUpstream struct {
	spec   UpstreamSpec
	dialer net.Dialer

	// mu guards the pool of idle connected UDP sockets (udp.go's
	// comment on udpPoolSize says why and how they are reused).
	mu     sync.Mutex
	idle   []*pooledUDP
	closed bool
}

// A connected UDP socket costs a quarter of a forwarded query's CPU to
// open (socket, connect, the netpoller's registration, close: measured
// with go test -bench AnswerCacheMiss -cpuprofile), so sockets are kept
// and reused, as dnsmasq and Unbound keep a pool of ports. RFC 5452
// wants each query's source port unpredictable: every socket's port is a
// random one the kernel picked, a query takes a random idle socket, and a
// socket is closed after udpSocketUses exchanges or udpSocketAge, or at
// once when its exchange failed (its late answer must not meet the next
// query), so the ports in use keep changing. Together with the random ID
// and the question check (replyMatches) that keeps off-path spoofing as
// expensive as with a fresh socket per query for any attacker who cannot
// see the traffic.
const (
	udpPoolSize   = 512
	udpSocketUses = 64
	udpSocketAge  = 30 * time.Second
)

// pooledUDP is a connected UDP socket to the upstream, with its history.
type pooledUDP struct {
	c    net.Conn
	uses int
	born time.Time
}

// NewPlainUpstream returns an upstream for a udp:// or tcp:// spec.
func NewPlainUpstream(spec UpstreamSpec) *PlainUpstream {
	return &PlainUpstream{spec: spec}
}

var _ Upstream = (*PlainUpstream)(nil)

// String implements Upstream.
func (u *PlainUpstream) String() string { return u.spec.String() }

// Exchange implements Upstream.
//
// UDP exchanges use connected sockets, each on a random source port the
// kernel picked, taken at random from a small pool that keeps changing
// (see udpPoolSize); a connected socket only delivers datagrams from the
// upstream's address, and together with the random ID and the question
// check that makes off-path spoofing expensive (RFC 5452 section 9).
func (u *PlainUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	if u.spec.Net == "udp" {
		r, err := u.exchangeUDP(ctx, m, wire)
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
// its lock was taken twice per forwarded query.
func (u *PlainUpstream) ExchangeBy(deadline time.Time, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	if u.spec.Net == "udp" {
		pc, err := u.takeUDP(context.Background())
		if err != nil {
			return nil, err
		}
		_ = pc.c.SetDeadline(deadline)
		r, err := u.exchangeOn(pc, m, wire, func() bool { return true })
		if err != nil || !r.Truncated {
			return r, err
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return u.exchangeTCP(ctx, m, wire)
}

func (u *PlainUpstream) exchangeUDP(ctx context.Context, m *dns.Msg, wire []byte) (r *dns.Msg, err error) {
	pc, err := u.takeUDP(ctx)
	if err != nil {
		return nil, err
	}
	return u.exchangeOn(pc, m, wire, deadlineFromContext(ctx, pc.c))
}

// exchangeOn sends wire on pc and reads the matching reply; stop ends
// whatever else may still set the socket's deadline, and says whether
// nothing will.
func (u *PlainUpstream) exchangeOn(pc *pooledUDP, m *dns.Msg, wire []byte, stop func() bool) (r *dns.Msg, err error) {
	conn := pc.c
	defer func() {
		// Reusable only when it answered and no deadline can still fire.
		reusable := err == nil && stop() && conn.SetDeadline(time.Time{}) == nil
		u.returnUDP(pc, reusable)
	}()
	if _, err := conn.Write(wire); err != nil {
		return nil, fmt.Errorf("sending to %s: %w", u.spec, err)
	}
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if isTimeout(err) {
				return nil, fmt.Errorf("%s: %w", u.spec, ErrTimeout)
			}
			return nil, fmt.Errorf("reading from %s: %w", u.spec, err)
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) != nil || !replyMatches(m, r) {
			// Garbage, an answer to something else, or a late answer to
			// an earlier query on this socket: possibly a spoofing
			// attempt. Keep waiting for the real one until the deadline.
			continue
		}
		return r, nil
	}
}

// takeUDP returns a random idle socket to the upstream, or a new one.
func (u *PlainUpstream) takeUDP(ctx context.Context) (*pooledUDP, error) {
	now := time.Now()
	u.mu.Lock()
	for len(u.idle) > 0 {
		i := rand.IntN(len(u.idle))
		pc := u.idle[i]
		u.idle[i] = u.idle[len(u.idle)-1]
		u.idle = u.idle[:len(u.idle)-1]
		if now.Sub(pc.born) < udpSocketAge {
			u.mu.Unlock()
			return pc, nil
		}
		pc.c.Close()
	}
	u.mu.Unlock()
	conn, err := u.dialer.DialContext(ctx, "udp", u.spec.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", u.spec, err)
	}
	return &pooledUDP{c: conn, born: now}, nil
}

// returnUDP puts a socket back for reuse, or closes it.
func (u *PlainUpstream) returnUDP(pc *pooledUDP, reusable bool) {
	pc.uses++
	if reusable && pc.uses < udpSocketUses && time.Since(pc.born) < udpSocketAge {
		u.mu.Lock()
		if !u.closed && len(u.idle) < udpPoolSize {
			u.idle = append(u.idle, pc)
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
	}
	pc.c.Close()
}

// Close closes the idle sockets; sockets in use are closed when their
// exchange ends. The Forwarder calls it for an upstream a reload removed.
func (u *PlainUpstream) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	for _, pc := range u.idle {
		pc.c.Close()
	}
	u.idle = nil
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
