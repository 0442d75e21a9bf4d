// Package resolvertest provides in-process DNS servers on 127.0.0.1 to act
// as upstreams in tests, and small helpers to build their answers.
package resolvertest

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Upstream is a stub DNS server listening on the same 127.0.0.1 port over
// UDP and TCP. It is closed when the test ends.
type Upstream struct {
	// Addr is "127.0.0.1:port", valid for UDP and TCP.
	Addr string
	// UDP and TCP count the queries received over each transport.
	UDP, TCP atomic.Int64
}

// Queries returns the number of queries received over both transports.
func (u *Upstream) Queries() int64 { return u.UDP.Load() + u.TCP.Load() }

// NewUpstream starts a stub server that answers with h.
func NewUpstream(t testing.TB, h dns.HandlerFunc) *Upstream {
	t.Helper()
	u := &Upstream{}
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("stub upstream: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatalf("stub upstream: no port free for both udp and tcp: %v", err)
		}
	}
	u.Addr = pc.LocalAddr().String()
	count := func(c *atomic.Int64) dns.HandlerFunc {
		return func(w dns.ResponseWriter, r *dns.Msg) {
			c.Add(1)
			h(w, r)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: count(&u.UDP)}
	tcp := &dns.Server{Listener: ln, Handler: count(&u.TCP)}
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("stub upstream did not start")
		}
	}
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return u
}

// Blackhole returns the address of a UDP socket on 127.0.0.1 that reads
// queries and never answers, closed when the test ends: an upstream that
// is up but unresponsive.
func Blackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("blackhole: %v", err)
	}
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// DeadAddr returns an address on 127.0.0.1 with nothing listening: queries
// sent there are refused by the kernel.
func DeadAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dead addr: %v", err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// A returns a handler answering every A question with ip and ttl, and
// every other type with an empty NOERROR.
func A(ip string, ttl uint32) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.ParseIP(ip),
			})
		}
		_ = w.WriteMsg(m)
	}
}

// NXDomain returns a handler answering NXDOMAIN with an SOA whose TTL and
// minimum are soaTTL, as an authoritative server would (RFC 2308).
func NXDomain(soaTTL uint32) dns.HandlerFunc {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		m.Ns = append(m.Ns, SOA("example.", soaTTL))
		_ = w.WriteMsg(m)
	}
}

// SOA returns an SOA record for zone with the given TTL and minimum.
func SOA(zone string, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl,
	}
}

// Exchange sends m to addr over net ("udp" or "tcp") and returns the reply,
// failing the test on any error.
func Exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 4096}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %s %s: %v", network, addr, m.Question[0].Name, err)
	}
	return r
}

// Question returns a query for name and qtype with RD set.
func Question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}

// Port returns the port of an "ip:port" address.
func Port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// RawUDP is a UDP-only upstream a test drives datagram by datagram: for
// each query it sends whatever replies returns — none, several, wrong or
// garbage ones, after a delay — from a goroutine of its own, so that a
// delayed reply holds up no other query. It records the source ports the
// queries came from. It is closed when the test ends.
type RawUDP struct {
	// Addr is "127.0.0.1:port".
	Addr  string
	mu    sync.Mutex
	ports map[int]int
}

// NewRawUDP starts a RawUDP answering each query with replies(q).
func NewRawUDP(t testing.TB, replies func(q *dns.Msg) (delay time.Duration, out [][]byte)) *RawUDP {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("raw upstream: %v", err)
	}
	u := &RawUDP{Addr: pc.LocalAddr().String(), ports: map[int]int{}}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			u.mu.Lock()
			u.ports[from.(*net.UDPAddr).Port]++
			u.mu.Unlock()
			go func() {
				delay, out := replies(q)
				time.Sleep(delay)
				for _, b := range out {
					_, _ = pc.WriteTo(b, from)
				}
			}()
		}
	}()
	return u
}

// Ports returns how many queries came from each source port.
func (u *RawUDP) Ports() map[int]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[int]int, len(u.ports))
	for p, n := range u.ports {
		out[p] = n
	}
	return out
}

// Wire packs msgs for a RawUDP's replies; one that does not pack is left
// out.
func Wire(msgs ...*dns.Msg) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		if b, err := m.Pack(); err == nil {
			out = append(out, b)
		}
	}
	return out
}
