//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || mips64 || mips64le || loong64)

package resolver

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// TestBusyReaderServesOtherSockets: a reader that finds a batch of queries
// waiting on its own socket also reads, in turn, what waits on the
// server's other listening sockets and answers it from there — so one
// flooded socket cannot keep a query on another waiting for the
// scheduler. Here the other socket has no reader of its own at all: its
// query is answered only by the busy reader's sweep.
func TestBusyReaderServesOtherSockets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		waiting     int  // queries queued on the busy socket before its reader starts
		otherReader bool // the other socket has a reader of its own, waiting in Read
		swept       bool // the query on the other socket is answered by the busy reader
	}{
		{"a full batch waiting", udpBatch + 8, false, true},
		{"a few waiting", 3, false, false}, // not busy: the reader waits, and sweeps nothing
		// The other socket's own reader holds its read lock while it waits:
		// the sweep must not wait for it (the busy socket would stall).
		{"the other socket's reader waiting", 3 * udpBatch, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultServerConfig()
			cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			s := NewServer(cfg, ServerDeps{Handler: NewLocal(LocalConfig{}, nil), Log: zap.NewNop()})
			busy := listenUDPLoopback(t)
			other := listenUDPLoopback(t)
			all := []*net.UDPConn{busy, other}
			t.Cleanup(func() {
				s.stopping.Store(true)
				busy.Close()
				other.Close()
				s.wg.Wait()
			})
			if tc.otherReader {
				s.wg.Add(1)
				go s.serveUDP(other, all, 1)
				time.Sleep(50 * time.Millisecond) // let it settle into waiting for a datagram
			}

			flood := dialUDP(t, busy)
			for i := range tc.waiting {
				sendQuery(t, flood, uint16(i), "busy.example.")
			}
			gentle := dialUDP(t, other)
			if !tc.otherReader {
				sendQuery(t, gentle, 4242, "gentle.example.")
				waitQueued(t, other)
			}
			// Loopback delivery is all but immediate; on a loaded machine
			// the kernel may defer some of it a moment. The reader must find
			// every query already queued, or it waits midway and the count
			// that sets off the sweep starts again.
			waitQueued(t, busy)
			time.Sleep(20 * time.Millisecond)

			s.wg.Add(1)
			go s.serveUDP(busy, all, 0)

			for i := range tc.waiting {
				if _, err := readAnswer(flood); err != nil {
					t.Fatalf("busy socket, answer %d of %d: %v", i, tc.waiting, err)
				}
			}
			if tc.otherReader {
				return
			}
			// The gentle client is connected to the other socket's address:
			// an answer from anywhere else would not reach it.
			id, err := readAnswer(gentle)
			if !tc.swept {
				if err == nil {
					t.Fatalf("answered from the other socket (ID %d) by a reader that was not busy", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("query on the other socket not answered by the busy reader: %v", err)
			}
			if id != 4242 {
				t.Fatalf("answer ID %d, want 4242", id)
			}
		})
	}
}

// waitQueued spins until c has a datagram queued (at most 2 s).
func waitQueued(t *testing.T, c *net.UDPConn) {
	t.Helper()
	if !spinUntil(func() bool { return queued(t, c) }) {
		t.Fatal("no datagram queued after 2 s")
	}
}

// spinUntil spins until cond holds (at most 2 s); it never waits, so the
// scheduler gets no chance to poll the network meanwhile.
func spinUntil(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return true
		}
	}
	return false
}

// queued says whether c has a datagram waiting.
func queued(t *testing.T, c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func listenUDPLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(t *testing.T, to *net.UDPConn) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, to.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendQuery(t *testing.T, c *net.UDPConn, id uint16, name string) {
	t.Helper()
	q := rt.Question(name, dns.TypeA)
	q.Id = id
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
}

func readAnswer(c *net.UDPConn) (uint16, error) {
	buf := make([]byte, 1500)
	if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	n, err := c.Read(buf)
	if err != nil {
		return 0, err
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil {
		return 0, err
	}
	return m.Id, nil
}

// TestNetpollYieldLetsTheNetworkIn: on one processor, a goroutine that
// never waits but yields (netpollYield) lets a goroutine waiting for a
// datagram run once the datagram is there — runtime.Gosched would not,
// as the scheduler polls the network only when it has nothing queued.
func TestNetpollYieldLetsTheNetworkIn(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	y := newNetpollYield()
	if y == nil {
		t.Skip("no eventfd")
	}
	defer y.close()
	rx := listenUDPLoopback(t)
	tx := dialUDP(t, rx)
	for round := range 200 {
		var got atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 16)
			if _, err := rx.Read(buf); err == nil {
				got.Store(true)
			}
		}()
		time.Sleep(time.Millisecond) // the reader parks in the netpoller
		if _, err := tx.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		// Spinning, so the scheduler does not poll meanwhile; should Go's
		// 10-ms preemption let the reader in anyway, it has its datagram.
		if !spinUntil(func() bool { return got.Load() || queued(t, rx) }) {
			t.Fatal("the datagram was never queued")
		}
		// The poll queues what it found; once in 61 turns the scheduler
		// takes its global queue first, where the yielding goroutine went,
		// so the reader may run at the next yield rather than this one.
		for range 3 {
			if y.yield(); got.Load() {
				break
			}
		}
		if !got.Load() {
			t.Fatalf("round %d: the waiting reader did not run across three yields", round)
		}
		<-done
	}
}

// TestNetpollYieldNeverHangs: yields in a tight loop while other
// processors poll the network all the time (a busy UDP ping-pong) all
// return. A yield that made its event before parking could have it taken
// by another processor's poll in between and then wait for good.
func TestNetpollYieldNeverHangs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	y := newNetpollYield()
	if y == nil {
		t.Skip("no eventfd")
	}
	defer y.close()
	a, b := listenUDPLoopback(t), listenUDPLoopback(t)
	stop := make(chan struct{})
	defer close(stop)
	for _, c := range []*net.UDPConn{a, b} {
		go func() {
			buf := make([]byte, 16)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	if _, err := a.WriteToUDPAddrPort([]byte("ping"), b.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range 20000 {
			y.yield()
		}
	}()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("a yield never returned")
	}
}
