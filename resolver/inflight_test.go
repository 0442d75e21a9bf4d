package resolver_test

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// Over UDP, queries off the fast path (here: cache misses waiting on a
// slow upstream) run at most server.max_inflight at once. Past that they
// are dropped and counted, and the readers go on answering what they can
// themselves: a cache hit is answered at once while every slot waits.
func TestUDPInflightBound(t *testing.T) {
	var now, peak atomic.Int32
	release := make(chan struct{})
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Name != "warm.example." {
			n := now.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			now.Add(-1)
		}
		rt.A("192.0.2.1", 300)(w, r)
	})
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.MaxInflight = 3
		c.Upstream.Timeout = 5 * time.Second
	})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	if r := rt.Exchange(t, "udp", v.addr, rt.Question("warm.example.", dns.TypeA)); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("warm-up: %v", dns.RcodeToString[r.Rcode])
	}
	// The warm-up's goroutine gives its slot back just after answering.
	time.Sleep(100 * time.Millisecond)

	conn, err := net.Dial("udp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 10 {
		m := rt.Question(fmt.Sprintf("slow%d.example.", i), dns.TypeA)
		p, _ := m.Pack()
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for (now.Load() < 3 || v.srv.Stats().Shed < 7) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a fourth, were the bound broken
	if p := peak.Load(); p != 3 {
		t.Errorf("%d queries at the upstream at once, want max_inflight = 3", p)
	}
	if n := v.srv.Stats().Shed; n != 7 {
		t.Errorf("%d queries shed, want the 7 past max_inflight", n)
	}

	// Every slot is waiting: a cache hit must not wait with them.
	start := time.Now()
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	if r, _, err := c.Exchange(rt.Question("warm.example.", dns.TypeA), v.addr); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("cache hit while every slot waits: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("cache hit took %s while every slot waited", d)
	}

	open()
	answered := 0
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
		answered++
	}
	if answered != 3 {
		t.Errorf("%d queries answered once the upstream answered, want the 3 in flight", answered)
	}
}
