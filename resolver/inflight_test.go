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
// slow upstream) run at most server.max_inflight at once; the rest wait
// for a slot, and are answered once the upstream answers.
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
	for now.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a fourth, were the bound broken
	if p := peak.Load(); p != 3 {
		t.Errorf("%d queries at the upstream at once, want max_inflight = 3", p)
	}

	open()
	answered := 0
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for answered < 10 {
		if _, err := conn.Read(buf); err != nil {
			break
		}
		answered++
	}
	if answered != 10 {
		t.Errorf("%d of 10 queries answered once the upstream answered", answered)
	}
}
