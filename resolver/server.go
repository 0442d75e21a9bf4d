package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/resolver/dnstap"
	"github.com/vigil-dns/vigil/store/querylog"
)

const (
	headerLen = 12
	// udpReadSize is the largest query read over UDP. Real queries are far
	// smaller (a query with EDNS and a cookie is under 100 bytes); a longer
	// datagram is cut and then fails to parse (FORMERR).
	udpReadSize = 2048
	// udpReaders is how many goroutines read each UDP socket: two, so one
	// answers packed while the other waits in recvfrom.
	udpReaders = 2
	// maxKeptReply bounds the reply buffers kept for reuse.
	maxKeptReply = 64 << 10
)

// Server owns the UDP and TCP listeners and turns packets into Queries for
// the Handler chain, and Responses back into packets.
//
// Concurrency is bounded everywhere: every UDP socket is read by two
// reader goroutines, which answer what the stages can answer from packed
// bytes themselves (packet.go) and give each other query a goroutine of
// its own, at most max_inflight at once across sockets (past that, a name
// with a cached answer, fresh or stale, is answered at once from the cache
// and any other query is dropped and counted); TCP connections are capped
// at accept, and
// queries pipelined on one TCP connection are answered concurrently up to
// a per-connection limit and a server-wide one.
type Server struct {
	cfg      ServerConfig
	handler  Handler
	log      *zap.Logger
	recorder Recorder
	// policy holds what a reload may change; one atomic load per query.
	policy atomic.Pointer[serverPolicy]
	// The stages prepare asks for packed answers (packet.go): cache is
	// nil when there is no chain or no cache, blocker nil without lists,
	// local nil without a chain.
	cache   *Cache
	blocker *Blocker
	local   *Local
	// recordAllowed also records lookups that were not blocked.
	recordAllowed bool
	// tap sees every query and its answer; nil without dnstap.
	tap *dnstap.Writer

	// baseCtx is the parent of every query's context; it is cancelled when
	// a graceful shutdown runs out of time, cutting upstream waits short.
	baseCtx context.Context
	cancel  context.CancelFunc

	tcpInflight chan struct{} // server-wide TCP query semaphore
	udpInflight chan struct{} // server-wide semaphore of UDP queries answered through the chain
	// replyBufs holds reply buffers for UDP queries answered through the chain.
	replyBufs sync.Pool

	mu        sync.Mutex // guards the fields below; never taken per query
	udpConns  []*net.UDPConn
	listeners []net.Listener
	conns     map[net.Conn]*tcpConn
	// plainTCP is how many of listeners are plain TCP (the rest are DoT).
	plainTCP   int
	dohServers []*http.Server
	dohAddrs   []net.Addr
	// tcpPerClient counts open TCP connections per client address.
	tcpPerClient map[netip.Addr]int
	started      bool

	stopping atomic.Bool
	wg       sync.WaitGroup // UDP workers, TCP accept loops and connections
	tcpConns atomic.Int64
	stopOnce sync.Once

	stats     serverCounters
	metrics   counters
	lastError atomic.Int64 // unix nanos of the last logged query error
}

type serverCounters struct {
	queries                                                                                     stripedUint64 // bumped by packed answers on every core
	refused, formerr, notimp, dropped, servfail, tcpRejected, tcpEvicted, panics, limited, shed atomic.Uint64
}

// ServerStats is a snapshot of the server's counters.
type ServerStats struct {
	Queries     uint64 // queries answered by the chain (or refused)
	Refused     uint64 // clients outside the access list
	FormErr     uint64 // malformed queries answered with FORMERR
	NotImp      uint64 // opcodes other than QUERY
	Dropped     uint64 // packets not worth a reply (responses, garbage)
	ServFail    uint64 // queries the chain could not answer
	TCPRejected uint64 // TCP connections closed at accept (outside the access list, over a cap)
	TCPEvicted  uint64 // idle TCP connections closed to make room for a new one
	Panics      uint64 // handler panics recovered
	Limited     uint64 // queries over a client's rate limit
	// Shed counts UDP queries dropped unanswered because max_inflight
	// queries were already waiting for upstreams (the client retries).
	Shed     uint64
	TCPConns int64 // open TCP connections
}

// serverPolicy is the part of a Server's behaviour a reload replaces.
type serverPolicy struct {
	acl         *AccessList
	clients     *Clients
	limiter     *Limiter // nil: no rate limiting
	limitRefuse bool     // answer limited queries REFUSED rather than drop them
}

// Reconfigure replaces the access list, client identification and rate
// limiting at once; queries in flight finish with the old ones.
func (s *Server) Reconfigure(allow []netip.Prefix, clients *Clients, limiter *Limiter, limitRefuse bool) {
	s.policy.Store(&serverPolicy{acl: NewAccessList(allow), clients: clients, limiter: limiter, limitRefuse: limitRefuse})
}

// SetClients replaces how clients are identified, keeping the rest of the
// policy (a device named by hand).
func (s *Server) SetClients(clients *Clients) {
	for {
		old := s.policy.Load()
		next := *old
		next.clients = clients
		if s.policy.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Recorder takes log entries from the query path. Record must never block:
// it is called once per logged query, on the query's goroutine.
type Recorder interface {
	Record(querylog.Entry) bool
}

// A LaneRecorder also gives each UDP reader a lane of its own, which
// takes the reader's entries without a shared queue operation per entry.
type LaneRecorder interface {
	Recorder
	NewLane() *querylog.Lane
}

// ServerDeps is what a Server works with besides its configuration.
type ServerDeps struct {
	// Handler answers queries. When nil, Chain.Handler does.
	Handler Handler
	// Chain, when set, lets the Server answer plain cache hits and
	// blocked names from packed bytes through the chain's stages
	// (packet.go).
	Chain *Chain
	// Log receives the server's own messages; never nil.
	Log *zap.Logger
	// Clients identifies clients; nil means by source address only.
	Clients *Clients
	// Recorder receives blocked lookups (and allowed ones with
	// RecordAllowed); nil records nothing.
	Recorder      Recorder
	RecordAllowed bool
	// Limiter rate-limits clients; nil means no limit.
	Limiter *Limiter
	// LimitRefuse answers limited queries REFUSED instead of dropping them.
	LimitRefuse bool
	// Tap, when set, is handed every query with its answer (dnstap).
	Tap *dnstap.Writer
}

// NewServer returns a Server. It does not listen until Start.
func NewServer(cfg ServerConfig, deps ServerDeps) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:           cfg,
		handler:       deps.Handler,
		log:           deps.Log,
		recorder:      deps.Recorder,
		recordAllowed: deps.RecordAllowed,
		tap:           deps.Tap,
		tcpPerClient:  make(map[netip.Addr]int),
		baseCtx:       ctx,
		cancel:        cancel,
		tcpInflight:   make(chan struct{}, cfg.MaxInflight),
		udpInflight:   make(chan struct{}, cfg.MaxInflight),
		conns:         make(map[net.Conn]*tcpConn),
	}
	if ch := deps.Chain; ch != nil {
		if s.handler == nil {
			s.handler = ch.Handler
		}
		s.cache, s.blocker, s.local = ch.Cache, ch.Blocker, ch.local
	}
	s.Reconfigure(cfg.Allow, deps.Clients, deps.Limiter, deps.LimitRefuse)
	return s
}

// Start binds every configured address over UDP and TCP and starts serving.
// If any bind fails, everything bound so far is closed and the error is
// returned. An IPv6 wildcard address is skipped with a warning on hosts
// without IPv6.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server already started")
	}
	s.started = true
	var udp []*net.UDPConn
	var tcp []net.Listener
	fail := func(err error) error {
		for _, c := range udp {
			c.Close()
		}
		for _, l := range tcp {
			l.Close()
		}
		return err
	}
	for _, ap := range s.cfg.Listen {
		udpNet, tcpNet := "udp4", "tcp4"
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			udpNet, tcpNet = "udp6", "tcp6"
		}
		ln, pcs, err := s.bind(ap, tcpNet, udpNet)
		if err != nil {
			if ap.Addr().IsUnspecified() && ap.Addr().Is6() && errors.Is(err, syscall.EAFNOSUPPORT) {
				s.log.Warn("skipping IPv6 listener: no IPv6 on this host", zap.Stringer("addr", ap))
				continue
			}
			return fail(err)
		}
		tcp = append(tcp, ln)
		udp = append(udp, pcs...)
	}
	if len(tcp) == 0 {
		return errors.New("no address could be bound")
	}
	s.udpConns, s.listeners = udp, tcp
	stripe := 0
	for _, c := range udp {
		for range udpReaders {
			s.wg.Add(1)
			go s.serveUDP(c, udp, stripe)
			stripe++
		}
	}
	for _, l := range tcp {
		s.wg.Add(1)
		go s.serveTCP(l, ProtoTCP)
	}
	s.plainTCP = len(tcp)
	if err := s.startEncrypted(); err != nil {
		s.mu.Unlock()
		_ = s.Shutdown(context.Background())
		s.mu.Lock()
		return err
	}
	return nil
}

// bind opens ap's TCP listener and its UDP sockets. TCP goes first: with
// port 0 it picks the port the UDP sockets share; should that port be
// taken over UDP (by an upstream socket, say), it tries another.
func (s *Server) bind(ap netip.AddrPort, tcpNet, udpNet string) (net.Listener, []*net.UDPConn, error) {
	lc := listenConfig(s.cfg.sockets() > 1)
	for attempt := 0; ; attempt++ {
		ln, err := lc.Listen(context.Background(), tcpNet, ap.String())
		if err != nil {
			return nil, nil, fmt.Errorf("listening on tcp %s: %w", ap, err)
		}
		bound := netip.AddrPortFrom(ap.Addr(), uint16(ln.Addr().(*net.TCPAddr).Port))
		var udp []*net.UDPConn
		for range s.cfg.sockets() {
			pc, err := lc.ListenPacket(context.Background(), udpNet, bound.String())
			if err != nil {
				ln.Close()
				for _, c := range udp {
					c.Close()
				}
				if ap.Port() == 0 && errors.Is(err, syscall.EADDRINUSE) && attempt < 16 {
					break
				}
				return nil, nil, fmt.Errorf("listening on udp %s: %w", bound, err)
			}
			uc := pc.(*net.UDPConn)
			if s.cfg.UDPReadBuffer > 0 {
				// Best effort: the kernel caps it at net.core.rmem_max.
				_ = uc.SetReadBuffer(s.cfg.UDPReadBuffer)
			}
			udp = append(udp, uc)
		}
		if len(udp) == s.cfg.sockets() {
			return ln, udp, nil
		}
	}
}

// UDPAddrs returns the bound UDP addresses, one per listen address (useful
// with port 0).
func (s *Server) UDPAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	seen := map[string]bool{}
	for _, c := range s.udpConns {
		if a := c.LocalAddr(); !seen[a.String()] {
			seen[a.String()] = true
			out = append(out, a)
		}
	}
	return out
}

// Shutdown stops reading new queries, lets the ones in flight finish and
// write their answers, then closes every socket. When ctx ends first, the
// queries still waiting on upstreams are cancelled (they answer SERVFAIL)
// and Shutdown returns ctx's error once they are done.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		past := time.Unix(1, 0)
		s.mu.Lock()
		for _, c := range s.udpConns {
			_ = c.SetReadDeadline(past) // wakes the workers; the socket stays open for their answers
		}
		for _, l := range s.listeners {
			l.Close()
		}
		for _, hs := range s.dohServers {
			// Stops accepting and waits for DoH requests in flight.
			go func() { _ = hs.Shutdown(ctx) }()
		}
		for c := range s.conns {
			_ = c.SetReadDeadline(past)
		}
		s.mu.Unlock()

		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("waiting for queries in flight: %w", context.Cause(ctx))
			s.cancel()
			<-done
		}
		s.cancel()
		s.mu.Lock()
		for _, c := range s.udpConns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return err
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Queries: s.stats.queries.Load(), Refused: s.stats.refused.Load(),
		FormErr: s.stats.formerr.Load(), NotImp: s.stats.notimp.Load(),
		Dropped: s.stats.dropped.Load(), ServFail: s.stats.servfail.Load(),
		TCPRejected: s.stats.tcpRejected.Load(), TCPEvicted: s.stats.tcpEvicted.Load(), Panics: s.stats.panics.Load(), Limited: s.stats.limited.Load(),
		Shed: s.stats.shed.Load(), TCPConns: s.tcpConns.Load(),
	}
}

// serveUDPEach is one reader of a UDP socket, one packet per system call:
// it reads a query, answers it and writes the answer, until shutdown.
// Where batched system calls exist (udp_batch_linux.go) serveUDP uses
// those instead; both hand every packet to handleUDP.
func (s *Server) serveUDPEach(c *net.UDPConn, stripe int) {
	defer s.wg.Done()
	in := make([]byte, udpReadSize)
	out := make([]byte, 0, 512) // grows to the largest packed answer this reader sends
	r := s.newUDPReader(stripe)
	for {
		n, from, err := c.ReadFromUDPAddrPort(in)
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient errors (an ICMP error for an earlier answer, a
			// full buffer) concern one packet, not the socket.
			continue
		}
		if reply := s.handleUDP(c, in[:n], from, out, r); reply != nil {
			_, _ = c.WriteToUDPAddrPort(reply, from)
			if cap(reply) > cap(out) && cap(reply) <= maxKeptReply {
				out = reply[:0]
			}
		}
	}
}

// udpReader is what one UDP reader keeps from packet to packet.
type udpReader struct {
	rb  *readerBufs
	pre prepared // what prepare learned of the last query
}

func (s *Server) newUDPReader(stripe int) *udpReader {
	var lane *querylog.Lane
	if lr, ok := s.recorder.(LaneRecorder); ok {
		lane = lr.NewLane()
	}
	return &udpReader{rb: newReaderBufs(stripe, lane)}
}

// handleUDP answers one UDP query packet: the answer to write now, built
// in out when it fits, or nil when there is none now (dropped, or handed
// to a goroutine that writes it itself).
func (s *Server) handleUDP(c *net.UDPConn, pkt []byte, from netip.AddrPort, out []byte, r *udpReader) []byte {
	client := from.Addr().Unmap()
	if s.overLimit(client, ProtoUDP) {
		if s.policy.Load().limitRefuse && len(pkt) >= headerLen {
			return headerReply(out[:0], pkt, dns.RcodeRefused)
		}
		return nil
	}
	if reply, ok := s.prepare(pkt, client, ProtoUDP, out, r.rb, &r.pre); ok {
		if s.tap != nil {
			s.tap.Tap(pkt, reply, from, dnstap.UDP, r.rb.batchAt, r.rb.tapExtra)
			r.rb.tapExtra = ""
		}
		return reply
	}
	// Not answered packed, the answer may wait for an upstream: it gets
	// its own goroutine, at most max_inflight of them across all sockets.
	// When that many are busy the query is dropped (the client retries),
	// as dnsmasq does past dns-forward-max: a reader waiting for a slot
	// would stop answering cache hits and blocked names too, for as long
	// as a dead upstream makes every slot wait.
	select {
	case s.udpInflight <- struct{}{}:
	default:
		// No slot to wait in. A name with an answer in the cache, even an
		// expired one (RFC 8767), is still answered, here and now: the
		// chain runs without waiting for anything.
		if s.cache == nil { // nothing in the chain could answer without waiting
			s.stats.shed.Add(1)
			return nil
		}
		r.pre.noWait = true
		reply := s.answer(pkt, client, ProtoUDP, out, &r.pre)
		if s.tap != nil && reply != nil {
			s.tap.Tap(pkt, reply, from, dnstap.UDP, r.rb.batchAt, "")
		}
		return reply
	}
	s.wg.Add(1)
	go s.answerUDP(c, append([]byte(nil), pkt...), from, client, r.pre)
	return nil
}

// answerUDP answers, through the chain, one query prepare could not
// answer packed.
func (s *Server) answerUDP(c *net.UDPConn, req []byte, from netip.AddrPort, client netip.Addr, pre prepared) {
	defer s.wg.Done()
	defer func() { <-s.udpInflight }()
	buf, _ := s.replyBufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	reply := s.answer(req, client, ProtoUDP, (*buf)[:0], &pre)
	if reply != nil {
		_, _ = c.WriteToUDPAddrPort(reply, from)
		if s.tap != nil {
			s.tap.Tap(req, reply, from, dnstap.UDP, time.Time{}, "")
		}
		if cap(reply) <= maxKeptReply {
			*buf = reply[:0]
		}
	}
	s.replyBufs.Put(buf)
}

// overLimit applies the client's rate limit, logging at most one line per
// client network per interval.
func (s *Server) overLimit(client netip.Addr, proto Proto) bool {
	limiter := s.policy.Load().limiter
	if limiter == nil {
		return false
	}
	ok, logNow, network, suppressed := limiter.Allow(client, time.Now().UnixNano())
	if ok {
		return false
	}
	s.stats.limited.Add(1)
	s.metrics.byResult[proto][ResultLimited].Add(0, 1)
	if logNow {
		s.log.Warn("client over its rate limit", zap.Stringer("network", network), zap.Uint64("limited_since_last_report", suppressed))
	}
	return true
}

// serveTCP accepts connections up to the cap.
func (s *Server) serveTCP(l net.Listener, proto Proto) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off a little
			// rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		var client netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			client = ta.AddrPort().Addr().Unmap()
		}
		if !s.policy.Load().acl.Allowed(client) {
			// Outside the access list: it would only be REFUSED, so it
			// must not hold one of the connection slots meanwhile.
			s.stats.tcpRejected.Add(1)
			c.Close()
			continue
		}
		if s.tcpConns.Add(1) > int64(s.cfg.MaxTCPConns) && !s.evictIdle() {
			s.tcpConns.Add(-1)
			s.stats.tcpRejected.Add(1)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.stopping.Load() {
			s.mu.Unlock()
			s.tcpConns.Add(-1)
			c.Close()
			return
		}
		if s.tcpPerClient[client] >= s.cfg.MaxTCPConnsPerClient {
			// One client must not take every connection (slowloris).
			s.mu.Unlock()
			s.tcpConns.Add(-1)
			s.stats.tcpRejected.Add(1)
			c.Close()
			continue
		}
		s.tcpPerClient[client]++
		tc := &tcpConn{c: c}
		tc.lastActive.Store(time.Now().UnixNano())
		s.conns[c] = tc
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(tc, proto)
	}
}

// tcpConn is an open TCP (or DoT) connection as the accept loop sees it,
// to choose one to close when every slot is taken.
type tcpConn struct {
	c net.Conn
	// lastActive is when a query was last read or answered (unix nanos).
	lastActive atomic.Int64
	// busy counts the connection's queries being answered.
	busy atomic.Int32
	// evicted is set when the accept loop closed it for a newcomer.
	evicted atomic.Bool
}

// evictIdle makes room for a new connection at the cap by closing the one
// idle longest (no query being answered), as busy resolvers do (RFC 7766
// section 6.2.3: servers may close idle connections when short of
// resources), so that idle connections cannot hold every slot against
// clients with queries. It reports whether it closed one; the count of
// open connections drops when that connection's reader has finished.
func (s *Server) evictIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var victim *tcpConn
	for _, tc := range s.conns {
		if tc.busy.Load() != 0 || tc.evicted.Load() {
			continue
		}
		if victim == nil || tc.lastActive.Load() < victim.lastActive.Load() {
			victim = tc
		}
	}
	if victim == nil {
		return false
	}
	victim.evicted.Store(true)
	_ = victim.c.SetReadDeadline(time.Unix(1, 0)) // wakes its reader, which closes it
	s.stats.tcpEvicted.Add(1)
	return true
}

// idleTimeout is how long a TCP connection may wait between queries:
// TCPIdleTimeout, or a second when more than three quarters of the slots
// are taken (RFC 7766 section 6.2.3 lets servers shorten it under load).
func (s *Server) idleTimeout() time.Duration {
	if s.tcpConns.Load() > int64(s.cfg.MaxTCPConns)*3/4 {
		return min(s.cfg.TCPIdleTimeout, time.Second)
	}
	return s.cfg.TCPIdleTimeout
}

// serveConn reads length-prefixed queries from one TCP connection and
// answers them concurrently (RFC 7766 section 6.2.1.1: pipelined queries may
// be answered out of order), up to MaxTCPPipeline at once.
func (s *Server) serveConn(tc *tcpConn, proto Proto) {
	defer s.wg.Done()
	c := tc.c
	client := netip.Addr{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = ta.AddrPort().Addr().Unmap()
	}
	var (
		pending sync.WaitGroup
		wmu     sync.Mutex
		pipe    = make(chan struct{}, s.cfg.MaxTCPPipeline)
		lenBuf  [2]byte
	)
	for !s.stopping.Load() {
		// Idle until a query's first byte; from then on the rest of it,
		// the length's second byte included, must come within the read
		// timeout (one byte must not hold the connection for the idle
		// timeout).
		_ = c.SetReadDeadline(time.Now().Add(s.idleTimeout()))
		if tc.evicted.Load() {
			break // after setting the deadline: evictIdle's may not be overwritten unseen
		}
		got, _ := c.Read(lenBuf[:]) // an error leaves got 0, or fails the ReadFull below
		if got == 0 {
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.TCPReadTimeout))
		if tc.evicted.Load() {
			break
		}
		if _, err := io.ReadFull(c, lenBuf[got:]); err != nil {
			break
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n < headerLen {
			break // nothing sensible can follow a length this short
		}
		req := make([]byte, n)
		if _, err := io.ReadFull(c, req); err != nil {
			break
		}
		tc.lastActive.Store(time.Now().UnixNano())
		if s.overLimit(client, proto) {
			if s.policy.Load().limitRefuse {
				rep := headerReply(nil, req, dns.RcodeRefused)
				wmu.Lock()
				_, _ = (&net.Buffers{[]byte{0, byte(len(rep))}, rep}).WriteTo(c)
				wmu.Unlock()
			}
			continue
		}
		pipe <- struct{}{}
		s.tcpInflight <- struct{}{}
		pending.Add(1)
		tc.busy.Add(1)
		go func() {
			defer func() { tc.busy.Add(-1); <-s.tcpInflight; <-pipe; pending.Done() }()
			reply := s.respond(req, client, proto, make([]byte, 0, 512), newReaderBufs(0, nil))
			if reply == nil {
				return
			}
			var prefix [2]byte
			binary.BigEndian.PutUint16(prefix[:], uint16(len(reply)))
			bufs := net.Buffers{prefix[:], reply} // one writev, one segment
			wmu.Lock()
			_ = c.SetWriteDeadline(time.Now().Add(s.cfg.TCPReadTimeout))
			_, _ = bufs.WriteTo(c)
			wmu.Unlock()
			tc.lastActive.Store(time.Now().UnixNano())
		}()
	}
	pending.Wait()
	c.Close()
	s.tcpConns.Add(-1)
	s.mu.Lock()
	delete(s.conns, c)
	if s.tcpPerClient[client]--; s.tcpPerClient[client] <= 0 {
		delete(s.tcpPerClient, client)
	}
	s.mu.Unlock()
}

// answer turns one query packet into one answer packet through the chain,
// appended to out; nil means no answer at all. It never panics: a panic in
// the chain becomes SERVFAIL. pre is what prepare learned of req (nil or
// the zero value: nothing).
//
// out is a buffer the answer may be packed into, to save an allocation.
func (s *Server) answer(req []byte, client netip.Addr, proto Proto, out []byte, pre *prepared) (reply []byte) {
	if pre != nil && pre.parsed {
		return s.answerMsg(pre.wq.msg(req), client, proto, out, pre)
	}
	if len(req) < headerLen {
		s.stats.dropped.Add(1)
		return nil // not even a header: nothing to reply to
	}
	flags := binary.BigEndian.Uint16(req[2:4])
	if flags&0x8000 != 0 {
		// A response, not a query. Answering it could start a loop between
		// two servers or reflect traffic at a spoofed victim.
		s.stats.dropped.Add(1)
		return nil
	}
	if op := int(flags>>11) & 0xF; op != dns.OpcodeQuery {
		s.stats.notimp.Add(1)
		return headerReply(out, req, dns.RcodeNotImplemented)
	}
	m := new(dns.Msg)
	if err := m.Unpack(req); err != nil || len(m.Question) != 1 || !wellFormed(req, m) {
		s.stats.formerr.Add(1)
		return headerReply(out, req, dns.RcodeFormatError)
	}
	return s.answerMsg(m, client, proto, out, nil)
}

// wellFormed reports whether the query m, unpacked from req with one
// question, is one a strict server answers, beyond what miekg/dns's
// Unpack checks: its question has a type and a class (Unpack accepts a
// message that ends after the name), and it has at most one OPT record,
// in the additional section, owned by the root (RFC 6891 section 6.1.1:
// anything else is FORMERR). parseWire accepts none of these, so this is
// only asked of what it declined.
func wellFormed(req []byte, m *dns.Msg) bool {
	if end, err := skipName(req, headerLen); err != nil || end+4 > len(req) {
		return false
	}
	for _, sec := range [2][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return false
			}
		}
	}
	opts := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			if opts++; opts > 1 || rr.Header().Name != "." {
				return false
			}
		}
	}
	return true
}

// answerMsg answers the request m, a query with one question.
func (s *Server) answerMsg(m *dns.Msg, client netip.Addr, proto Proto, out []byte, pre *prepared) (reply []byte) {
	pol := s.policy.Load()
	if (pre == nil || !pre.parsed) && !pol.acl.Allowed(client) { // prepare let only allowed clients through
		s.stats.refused.Add(1)
		s.metrics.count(0, proto, ResultRefused, m.Question[0].Qtype)
		r := new(dns.Msg)
		r.SetRcode(m, dns.RcodeRefused)
		return s.pack(out, r, m.IsEdns0(), proto)
	}
	reqOPT := m.IsEdns0()
	if reqOPT != nil && reqOPT.Version() != 0 {
		// RFC 6891 section 6.1.3: unknown EDNS version.
		r := new(dns.Msg)
		r.SetRcode(m, dns.RcodeBadVers)
		return s.pack(out, r, reqOPT, proto)
	}
	s.stats.queries.Add(0, 1)

	defer func() {
		if p := recover(); p != nil {
			s.stats.panics.Add(1)
			s.log.Error("recovered from a panic answering a query", zap.Any("panic", p),
				zap.String("name", m.Question[0].Name), zap.Stringer("client", client))
			r := new(dns.Msg)
			r.SetRcode(m, dns.RcodeServerFailure)
			reply = s.pack(out, r, reqOPT, proto)
		}
	}()

	q := s.newQuery(m, reqOPT, client, proto, pol, pre)
	resp, err := s.handler.Resolve(s.baseCtx, q)
	if errors.Is(err, errNoWait) {
		s.stats.shed.Add(1)
		return nil // the client retries
	}
	if err != nil {
		resp = s.servfail(q, err)
	}
	s.account(q, resp, err)
	r := resp.Msg
	r.Id = m.Id
	r.Response = true
	r.Opcode = dns.OpcodeQuery
	r.RecursionDesired = m.RecursionDesired
	r.RecursionAvailable = true
	r.CheckingDisabled = m.CheckingDisabled
	r.Zero = false // RFC 1035 section 4.1.1: zero in every response, whatever an upstream sent
	r.AuthenticatedData = r.AuthenticatedData && showAD(m.AuthenticatedData, q.DO)
	r.Question = m.Question // the client's own spelling (RFC 1035 is case-preserving; 0x20 clients check it)
	if reqOPT != nil && resp.ExtendedError != nil {
		return s.packWithEDE(out, r, reqOPT, proto, resp.ExtendedError)
	}
	return s.pack(out, r, reqOPT, proto)
}

// showAD reports whether a client that asked with the AD bit reqAD and
// the DO bit do is shown an answer's AD bit: only when it set either (RFC
// 6840 section 5.7; a client that set neither may not understand it).
// The cache keeps the upstream's AD, asked for on every query
// (upstreamRequest), whatever the client asked; this decides per request,
// for the chain's answers (answerMsg) and the packed ones (Cache.PackedHit).
func showAD(reqAD, do bool) bool { return reqAD || do }

// newQuery identifies the client of the request m and makes the Query the
// chain answers, with the Blocker's verdict if prepare took it.
func (s *Server) newQuery(m *dns.Msg, reqOPT *dns.OPT, client netip.Addr, proto Proto, pol *serverPolicy, pre *prepared) *Query {
	now := time.Now()
	qu := m.Question[0]
	q := &Query{
		Msg:      m,
		Name:     strings.ToLower(qu.Name),
		Type:     qu.Qtype,
		Class:    qu.Qclass,
		CD:       m.CheckingDisabled,
		Client:   pol.clients.Identify(client, m),
		Proto:    proto,
		Start:    now,
		Deadline: now.Add(s.cfg.QueryTimeout),
	}
	if reqOPT != nil {
		q.DO = reqOPT.Do()
	}
	if pre != nil {
		q.noWait = pre.noWait
		if pre.judged {
			q.verdict, q.judged = pre.verdict, true
			q.verdict.rebase(q.Name)
			q.view = pre.view
		}
	}
	if !q.judged && s.blocker != nil {
		q.view = s.blocker.viewFor(&asker{cl: q.Client, done: true})
	}
	return q
}

// servfail is the answer when the chain could not answer: SERVFAIL with
// an Extended DNS Error saying why (RFC 8914), logged at most once a
// second.
func (s *Server) servfail(q *Query, err error) *Response {
	s.stats.servfail.Add(1)
	s.logQueryError(q, err)
	r := new(dns.Msg)
	r.SetRcode(q.Msg, dns.RcodeServerFailure)
	r.RecursionAvailable = true
	ede := &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNetworkError, ExtraText: "no upstream answered"}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority, ExtraText: "upstreams timed out"}
	}
	return &Response{Msg: r, Source: SourceLocal, ExtendedError: ede}
}

// account counts the answer in the metrics and records the lookup in the
// per-client log when it is blocked (or allowed ones are recorded too).
// err is the chain's error, if resp stands in for one.
func (s *Server) account(q *Query, resp *Response, err error) {
	result := ResultServfail
	if err == nil {
		switch resp.Source {
		case SourceBlocked:
			result = ResultBlocked
			if b := resp.Blocked; b != nil {
				s.metrics.countBlocked(0, BlockedKey{List: b.List, Vendor: b.Vendor, Client: q.Client.Name, Group: b.Group})
			}
		case SourceCached:
			result = ResultCached
		case SourceUpstream:
			result = ResultForwarded
		default:
			result = ResultLocal
		}
	}
	s.metrics.count(0, q.Proto, result, q.Type)
	if s.recorder != nil && (resp.Source == SourceBlocked || s.recordAllowed) {
		s.record(q, resp)
	}
}

// record hands the lookup to the recorder; it never waits.
func (s *Server) record(q *Query, resp *Response) {
	e := querylog.Entry{
		Time:       q.Start,
		ClientName: q.Client.Name,
		ClientAddr: q.Client.Addr,
		MAC:        q.Client.MAC,
		QName:      q.Name,
		QType:      typeString(q.Type),
		Proto:      q.Proto.logName(),
	}
	if b := resp.Blocked; b != nil && resp.Source == SourceBlocked {
		e.Blocked = true
		e.List, e.Vendor, e.Rule, e.Reason, e.CNAME, e.Group = b.List, b.Vendor, b.Rule, b.Reason, b.CNAME, b.Group
	}
	s.recorder.Record(e)
}

// typeString names a query type without allocating for known types.
func typeString(t uint16) string {
	// The common ones without a map lookup: this runs for every logged
	// lookup.
	switch t {
	case dns.TypeA:
		return "A"
	case dns.TypeAAAA:
		return "AAAA"
	case dns.TypeHTTPS:
		return "HTTPS"
	}
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// pack adds Vigil's OPT record if the client sent one, fits the answer to
// the client's UDP buffer (setting TC if it doesn't fit) and packs it into
// out.
func (s *Server) pack(out []byte, r *dns.Msg, reqOPT *dns.OPT, proto Proto) []byte {
	return s.packWithEDE(out, r, reqOPT, proto, nil)
}

func (s *Server) packWithEDE(out []byte, r *dns.Msg, reqOPT *dns.OPT, proto Proto, ede *dns.EDNS0_EDE) []byte {
	size := dns.MinMsgSize
	if reqOPT != nil {
		size = max(int(reqOPT.UDPSize()), dns.MinMsgSize)
		size = min(size, s.cfg.MaxUDPSize)
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: uint16(s.cfg.MaxUDPSize)}}
		if reqOPT.Do() {
			opt.SetDo()
		}
		if ede != nil {
			opt.Option = append(opt.Option, ede)
		}
		r.Extra = append(r.Extra, opt)
	}
	if proto == ProtoUDP {
		r.Truncate(size)
	}
	r.Compress = true
	wire, err := r.PackBuffer(out[:cap(out)])
	if err != nil {
		s.log.Warn("packing an answer failed", zap.Error(err))
		return headerReply(out[:0], nil, dns.RcodeServerFailure)
	}
	return wire
}

// headerReply answers with only a header: the request's ID, opcode and RD
// bit, and rcode. Used when the question cannot be trusted.
func headerReply(out, req []byte, rcode int) []byte {
	var h [headerLen]byte
	if len(req) >= headerLen {
		copy(h[:2], req[:2])
		h[2] = 0x80 | req[2]&0x79 // QR, opcode, RD
	} else {
		h[2] = 0x80
	}
	h[3] = byte(rcode & 0xF)
	return append(out, h[:]...)
}

// logQueryError logs at most one query error a second, so an upstream
// outage does not flood the log.
func (s *Server) logQueryError(q *Query, err error) {
	now := time.Now().UnixNano()
	last := s.lastError.Load()
	if now-last < int64(time.Second) || !s.lastError.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("answering SERVFAIL", zap.String("name", q.Name), zap.Stringer("client", q.Client.Addr),
		zap.Error(err), zap.Uint64("servfail_total", s.stats.servfail.Load()))
}
