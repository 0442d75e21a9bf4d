// Package dnstap sends every client query and response as dnstap
// messages (the logging format BIND, Unbound, Knot, CoreDNS and dnsdist
// speak) over Frame Streams to a Unix socket or a TCP address, with
// Vigil's verdict in each response's extra field.
//
// It is built like the per-client log: the query path hands an event to a
// bounded queue and never waits (a full queue drops the event and counts
// it); one goroutine encodes and writes, and reconnects with backoff when
// the collector goes away, dropping (and counting) what arrives meanwhile
// beyond the queue.
package dnstap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	dt "github.com/dnstap/golang-dnstap"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Config is the [dnstap] section.
type Config struct {
	// Socket is the path of the collector's Unix socket.
	Socket string `toml:"socket"`
	// Address is the collector's host:port over TCP; Socket and Address
	// both "" turn dnstap off.
	Address string `toml:"address"`
	// Identity is the server's name in every message; "" means the host
	// name.
	Identity string `toml:"identity"`
	// QueueSize bounds the events waiting for the writer.
	QueueSize int `toml:"queue_size"`
}

// DefaultConfig returns the [dnstap] defaults: off.
func DefaultConfig() Config { return Config{QueueSize: 8192} }

// Enabled reports whether a collector is configured.
func (c *Config) Enabled() bool { return c.Socket != "" || c.Address != "" }

// Validate checks the section without changing it.
func (c *Config) Validate() error {
	var errs []error
	if c.Socket != "" && c.Address != "" {
		errs = append(errs, errors.New("dnstap: want socket or address, not both"))
	}
	if c.Address != "" {
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			errs = append(errs, fmt.Errorf("dnstap.address: want host:port, got %q", c.Address))
		}
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<20 {
		errs = append(errs, fmt.Errorf("dnstap.queue_size: want 1 to 1048576, got %d", c.QueueSize))
	}
	return errors.Join(errs...)
}

func (c *Config) addr() net.Addr {
	if c.Socket != "" {
		return &net.UnixAddr{Name: c.Socket, Net: "unix"}
	}
	a, err := net.ResolveTCPAddr("tcp", c.Address)
	if err != nil {
		return &net.TCPAddr{} // validated: only a name that no longer resolves
	}
	return a
}

// Protocol is a transport as dnstap names it.
type Protocol = dt.SocketProtocol

// Protocols, as dnstap's SocketProtocol names them.
const (
	UDP = dt.SocketProtocol_UDP
	TCP = dt.SocketProtocol_TCP
	DoT = dt.SocketProtocol_DOT
	DoH = dt.SocketProtocol_DOH
)

// event is one query and its response, copied off the query path.
type event struct {
	buf         []byte // query, then response
	qlen        int
	client      netip.AddrPort
	proto       dt.SocketProtocol
	queryAt, at time.Time
	extra       string
}

// Writer is the dnstap output. Tap is safe for concurrent use.
type Writer struct {
	cfg      Config
	identity []byte
	log      *zap.Logger
	queue    chan *event
	free     sync.Pool

	sent, dropped, reconnects atomic.Uint64
	queuedBytes               atomic.Int64
	connected                 atomic.Bool
	// describe, when set, gives the verdict text of a response that did
	// not come with one (answers the chain built).
	describe func(query, response []byte, client netip.Addr) string
}

// New returns a writer for a validated, enabled cfg; Run does the work.
func New(cfg Config, log *zap.Logger) *Writer {
	id := cfg.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	return &Writer{cfg: cfg, identity: []byte(id), log: log, queue: make(chan *event, cfg.QueueSize)}
}

// Describe sets how a response without a verdict from the query path gets
// one, off the query path. Set it before Run.
func (w *Writer) Describe(fn func(query, response []byte, client netip.Addr) string) { w.describe = fn }

// Tap hands one query and its response to the writer, copying both; it
// never blocks. extra is Vigil's verdict when the query path has it at
// hand ("" to have it described off the path).
func (w *Writer) Tap(query, response []byte, client netip.AddrPort, proto dt.SocketProtocol, queryAt time.Time, extra string) {
	e, _ := w.free.Get().(*event)
	if e == nil {
		e = &event{}
	}
	e.buf = append(append(e.buf[:0], query...), response...)
	e.at = time.Now()
	if queryAt.IsZero() {
		queryAt = e.at
	}
	e.qlen, e.client, e.proto, e.queryAt, e.extra = len(query), client, proto, queryAt, extra
	// Bounded in bytes as well as in events: TCP answers can be 64 KiB.
	if w.queuedBytes.Add(int64(len(e.buf))) > maxQueuedBytes {
		w.queuedBytes.Add(-int64(len(e.buf)))
		w.dropped.Add(1)
		w.release(e)
		return
	}
	select {
	case w.queue <- e:
	default:
		w.queuedBytes.Add(-int64(len(e.buf)))
		w.dropped.Add(1)
		w.release(e)
	}
}

// maxQueuedBytes bounds the bytes waiting for the writer.
const maxQueuedBytes = 16 << 20

// release returns an event to the pool, unless it grew large (a long TCP
// answer), which the pool would keep for ever.
func (w *Writer) release(e *event) {
	if cap(e.buf) <= 4096 {
		w.free.Put(e)
	}
}

// Stats is what the writer reports.
type Stats struct {
	Sent       uint64 `json:"sent"`
	Dropped    uint64 `json:"dropped"`
	Reconnects uint64 `json:"reconnects"`
	Connected  bool   `json:"connected"`
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	return Stats{Sent: w.sent.Load(), Dropped: w.dropped.Load(), Reconnects: w.reconnects.Load(), Connected: w.connected.Load()}
}

// Run connects to the collector and writes until ctx ends, reconnecting
// with backoff (a second, doubling to a minute, jittered).
func (w *Writer) Run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		connected, err := w.session(ctx)
		w.connected.Store(false)
		if connected {
			backoff = time.Second // it worked: the next outage starts from a second
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("dnstap collector unreachable; retrying (DNS is not affected)", zap.Stringer("collector", w.cfg.addr()), zap.Error(err))
		if !w.drainFor(ctx, backoff/2+rand.N(backoff/2+1)) {
			return
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// drainFor drops (and counts) what arrives while there is no collector,
// for d, so the queue does not hold stale events for the next session.
func (w *Writer) drainFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case e := <-w.queue:
			w.queuedBytes.Add(-int64(len(e.buf)))
			w.dropped.Add(1)
			w.release(e)
		}
	}
}

// session writes to one connection until it fails or ctx ends;
// connected says the handshake succeeded.
func (w *Writer) session(ctx context.Context) (connected bool, err error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	addr := w.cfg.addr()
	conn, err := d.DialContext(ctx, addr.Network(), addr.String())
	if err != nil {
		return false, err
	}
	defer conn.Close()
	fw, err := dt.NewWriter(conn, &dt.WriterOptions{Bidirectional: true, Timeout: 5 * time.Second})
	if err != nil {
		return false, fmt.Errorf("frame streams handshake: %w", err)
	}
	w.connected.Store(true)
	w.reconnects.Add(1)
	w.log.Info("dnstap connected", zap.Stringer("collector", addr))
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	var frame []byte
	msg := &dt.Dnstap{}
	for {
		select {
		case <-ctx.Done():
			return true, fw.Close() // flushes and says goodbye
		case <-flush.C:
			if f, ok := fw.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					return true, err
				}
			}
		case e := <-w.queue:
			w.queuedBytes.Add(-int64(len(e.buf)))
			for _, typ := range []dt.Message_Type{dt.Message_CLIENT_QUERY, dt.Message_CLIENT_RESPONSE} {
				w.fill(msg, e, typ)
				frame, err = proto.MarshalOptions{}.MarshalAppend(frame[:0], msg)
				if err != nil {
					continue
				}
				if _, err := fw.WriteFrame(frame); err != nil {
					w.release(e)
					return true, err
				}
			}
			w.sent.Add(1)
			w.release(e)
		}
	}
}

// fill makes msg the dnstap message of e's query or response.
func (w *Writer) fill(msg *dt.Dnstap, e *event, typ dt.Message_Type) {
	family := dt.SocketFamily_INET
	addr := e.client.Addr()
	if addr.Is6() && !addr.Is4In6() {
		family = dt.SocketFamily_INET6
	}
	ip := addr.Unmap().AsSlice()
	port := uint32(e.client.Port())
	qsec, qnsec := uint64(e.queryAt.Unix()), uint32(e.queryAt.Nanosecond())
	m := &dt.Message{
		Type: &typ, SocketFamily: &family, SocketProtocol: &e.proto,
		QueryAddress: ip, QueryPort: &port,
		QueryTimeSec: &qsec, QueryTimeNsec: &qnsec,
		QueryMessage: e.buf[:e.qlen],
	}
	kind := dt.Dnstap_MESSAGE
	msg.Reset()
	msg.Type, msg.Identity, msg.Message = &kind, w.identity, m
	if typ == dt.Message_CLIENT_RESPONSE {
		rsec, rnsec := uint64(e.at.Unix()), uint32(e.at.Nanosecond())
		m.ResponseTimeSec, m.ResponseTimeNsec = &rsec, &rnsec
		m.ResponseMessage = e.buf[e.qlen:]
		extra := e.extra
		if extra == "" && w.describe != nil {
			extra = w.describe(e.buf[:e.qlen], e.buf[e.qlen:], addr)
		}
		if extra != "" {
			msg.Extra = []byte(extra)
		}
	}
}
