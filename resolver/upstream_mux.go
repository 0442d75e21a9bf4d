package resolver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// udpMux carries a PlainUpstream's UDP exchanges over a few connected
// sockets at once, each read by one goroutine of its own.
//
// Why: with a socket per exchange, every forwarded query paid for a read
// that found nothing yet, the netpoller's wait and wake-up, a second read,
// and a deadline set and cleared on the socket (a profile under a CPU
// quota put the system calls at 41 % of a forwarded query and the
// scheduler at 16 %). Here a query registers itself under a fresh ID,
// writes, and waits on its own channel; the socket's reader takes every
// reply that is waiting in one recvmmsg(2) (replyBatch) and hands each to
// the query whose ID and question it matches. That is how dnsdist talks to
// its backends.
//
// RFC 5452 wants a query's source port and ID unpredictable. Each socket's
// port is a random one the kernel picks; a query goes out on a random one
// of muxSockets sockets, under an ID the multiplexer draws at random among
// those not in flight on that socket (the caller's ID is put back on the
// reply); a socket takes muxSocketUses queries or lives muxSocketAge, then
// it is replaced by a new one on a new port and closed once its last reply
// is in. An off-path attacker must hit one of muxSockets unknown ports out
// of the ephemeral range and one of 65,536 IDs, and then the question: a
// reply whose question is not the query's is dropped and the query keeps
// waiting (replyMatches).
type udpMux struct {
	spec   UpstreamSpec
	dialer net.Dialer

	// uses and age bound one socket's (one port's) life: muxSocketUses
	// and muxSocketAge, shorter in tests.
	uses int32
	age  time.Duration

	mu     sync.Mutex // guards socks and closed
	socks  [muxSockets]*muxSocket
	closed bool
}

func newUDPMux(spec UpstreamSpec) *udpMux {
	return &udpMux{spec: spec, uses: muxSocketUses, age: muxSocketAge}
}

const (
	// muxSockets is how many sockets carry an upstream's queries at once.
	muxSockets = 16
	// muxSocketUses and muxSocketAge bound one socket's (one port's) life.
	muxSocketUses = 1024
	muxSocketAge  = 30 * time.Second
	// muxReplyBatch is how many replies one read takes at most, each in a
	// buffer of udpReplySize.
	muxReplyBatch = 8
	// muxReadBuffer is each socket's receive buffer (SO_RCVBUF).
	muxReadBuffer = 1 << 20
	// A query unanswered after half its time (at most muxResendAfter) is
	// sent once more, when that half is at least muxResendMin.
	muxResendAfter = time.Second
	muxResendMin   = 100 * time.Millisecond
)

// muxSocket is one connected socket and the queries in flight on it.
type muxSocket struct {
	m    *udpMux
	c    *net.UDPConn
	born time.Time
	sent atomic.Int32 // queries sent on it

	mu      sync.Mutex // guards pending, retired and closed
	pending map[uint16]*muxWait
	retired bool // takes no new queries; closed when pending empties
	closed  bool
}

// muxWait is one query in flight.
type muxWait struct {
	q     *dns.Msg
	done  chan muxResult // buffered: the reader never waits on it
	timer *time.Timer
}

type muxResult struct {
	r   *dns.Msg
	err error
}

// muxWaits keeps the waits, each with its channel and timer, for reuse:
// three allocations per forwarded query otherwise. A wait goes back only
// when nothing can send on its channel any more and its timer is stopped.
var muxWaits = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &muxWait{done: make(chan muxResult, 1), timer: t}
}}

// exchange sends wire (m packed) and waits for the reply until deadline
// (zero: none) or until done is closed (nil: never). wire's ID bytes are
// overwritten while it is sent and put back after.
func (x *udpMux) exchange(deadline time.Time, done <-chan struct{}, m *dns.Msg, wire []byte) (*dns.Msg, error) {
	s, err := x.socket()
	if err != nil {
		return nil, err
	}
	w := muxWaits.Get().(*muxWait)
	w.q = m
	defer func() {
		w.q = nil
		muxWaits.Put(w)
	}()
	id, ok := s.register(w)
	if !ok {
		// The socket was retired between being picked and now: pick again.
		if s, err = x.socket(); err != nil {
			return nil, err
		}
		if id, ok = s.register(w); !ok {
			return nil, fmt.Errorf("%s: %w", x.spec, net.ErrClosed)
		}
	}
	if s.sent.Add(1) >= x.uses {
		x.retire(s)
	}
	if err := s.send(wire, id, m.Id); err != nil {
		if !s.unregister(id, w) {
			<-w.done // failed meanwhile by the reader: empty the channel
		}
		return nil, fmt.Errorf("sending to %s: %w", x.spec, err)
	}
	var expired <-chan time.Time
	resend := false
	if !deadline.IsZero() {
		// Half the time left (at most muxResendAfter) for the reply,
		// then the query once more: a datagram lost on the way (a full
		// buffer, a lossy link) costs a retransmission, as in Unbound
		// and BIND, not the whole attempt and a SERVFAIL.
		left := time.Until(deadline)
		first := min(left/2, muxResendAfter)
		resend = first >= muxResendMin
		if !resend {
			first = left
		}
		w.timer.Reset(first)
		defer w.timer.Stop()
		expired = w.timer.C
	}
wait:
	select {
	case res := <-w.done:
		return res.r, res.err
	case <-expired:
		if resend {
			resend = false
			if s.send(wire, id, m.Id) == nil {
				w.timer.Reset(time.Until(deadline))
				goto wait
			}
		}
	case <-done:
	}
	if !s.unregister(id, w) {
		// The reader took it first: its result is on the way.
		res := <-w.done
		return res.r, res.err
	}
	return nil, fmt.Errorf("%s: %w", x.spec, ErrTimeout)
}

// socket returns a random live socket, opening one in an empty slot.
func (x *udpMux) socket() (*muxSocket, error) {
	i := rand.IntN(muxSockets)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, fmt.Errorf("%s: %w", x.spec, net.ErrClosed)
	}
	if s := x.socks[i]; s != nil && time.Since(s.born) < x.age {
		return s, nil
	} else if s != nil {
		x.socks[i] = nil
		s.retire()
	}
	c, err := x.dialer.Dial("udp", x.spec.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", x.spec, err)
	}
	uc := c.(*net.UDPConn)
	// Replies to a few thousand queries in flight can arrive at once, a
	// sixteenth of them on each socket; with the kernel's default buffer
	// (208 KiB, some 200 small datagrams) a burst overflowed it and each
	// reply dropped cost its query a SERVFAIL after the attempt's timeout.
	// Best effort: the kernel caps it at net.core.rmem_max.
	_ = uc.SetReadBuffer(muxReadBuffer)
	s := &muxSocket{m: x, c: uc, born: time.Now(), pending: map[uint16]*muxWait{}}
	x.socks[i] = s
	go s.read()
	return s, nil
}

// retire takes s out of use: no new queries, closed after the last reply.
func (x *udpMux) retire(s *muxSocket) {
	x.mu.Lock()
	for i, o := range x.socks {
		if o == s {
			x.socks[i] = nil
		}
	}
	x.mu.Unlock()
	s.retire()
}

// close retires every socket; exchanges in flight finish first.
func (x *udpMux) close() {
	x.mu.Lock()
	x.closed = true
	socks := x.socks
	x.socks = [muxSockets]*muxSocket{}
	x.mu.Unlock()
	for _, s := range socks {
		if s != nil {
			s.retire()
		}
	}
}

// send writes wire under the wire ID id, then puts the caller's ID back.
func (s *muxSocket) send(wire []byte, id, callerID uint16) error {
	binary.BigEndian.PutUint16(wire, id)
	_, err := s.c.Write(wire)
	binary.BigEndian.PutUint16(wire, callerID)
	return err
}

// register puts w in flight under a random ID free on s.
func (s *muxSocket) register(w *muxWait) (uint16, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return 0, false
	}
	for {
		id := uint16(rand.Uint32())
		if _, taken := s.pending[id]; !taken {
			s.pending[id] = w
			return id, true
		}
	}
}

// unregister ends w's wait under id, unless the reader already took it
// (false).
func (s *muxSocket) unregister(id uint16, w *muxWait) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[id] != w {
		return false
	}
	delete(s.pending, id)
	s.closeIfDrainedLocked()
	return true
}

// take hands r, read under id, to the query waiting for it, if r answers
// that query's question.
func (s *muxSocket) take(id uint16, r *dns.Msg) {
	s.mu.Lock()
	w := s.pending[id]
	if w == nil {
		s.mu.Unlock()
		return // late, or never asked: dropped
	}
	r.Id = w.q.Id
	if !replyMatches(w.q, r) {
		s.mu.Unlock()
		return // not this query's answer: it keeps waiting
	}
	delete(s.pending, id)
	s.closeIfDrainedLocked()
	s.mu.Unlock()
	w.done <- muxResult{r: r}
}

// fail ends every query in flight on s with err.
func (s *muxSocket) fail(err error) {
	s.mu.Lock()
	waits := s.pending
	s.pending = map[uint16]*muxWait{}
	s.closeIfDrainedLocked()
	s.mu.Unlock()
	for _, w := range waits {
		w.done <- muxResult{err: err}
	}
}

func (s *muxSocket) retire() {
	s.mu.Lock()
	s.retired = true
	s.closeIfDrainedLocked()
	s.mu.Unlock()
}

func (s *muxSocket) closeIfDrainedLocked() {
	if s.retired && len(s.pending) == 0 && !s.closed {
		s.closed = true
		_ = s.c.Close()
	}
}

// read is s's reader: it hands each reply to its query until s is
// closed. The read deadline wakes it when s has outlived its age, so
// that an idle socket is closed rather than kept for ever.
func (s *muxSocket) read() {
	b := newReplyBatch(s.c, muxReplyBatch, udpReplySize)
	_ = s.c.SetReadDeadline(s.born.Add(s.m.age))
	for {
		n, err := b.read()
		if err != nil {
			switch {
			case errors.Is(err, net.ErrClosed):
				s.fail(fmt.Errorf("%s: %w", s.m.spec, net.ErrClosed))
				return
			case isTimeout(err):
				s.m.retire(s)
				// Queries in flight end by their own deadlines; look
				// again in a second.
				_ = s.c.SetReadDeadline(time.Now().Add(time.Second))
			default:
				// An ICMP error (connection refused): the upstream
				// turned these queries away. Fail them now, not at
				// their deadlines, and take no more on this socket.
				s.fail(fmt.Errorf("reading from %s: %w", s.m.spec, err))
				s.m.retire(s)
			}
			continue
		}
		for i := range n {
			pkt := b.datagram(i)
			if len(pkt) < headerLen {
				continue
			}
			r := new(dns.Msg)
			if r.Unpack(pkt) != nil {
				continue // garbage: whatever waits keeps waiting
			}
			s.take(binary.BigEndian.Uint16(pkt), r)
		}
	}
}
