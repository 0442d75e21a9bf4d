package resolver

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// TestUDPSocketsReusedAndRotated checks the upstream socket pool: a run of
// queries shares a few sockets (not one per query, which cost a quarter of
// a forwarded query's CPU), each used at most udpSocketUses times, so the
// source ports keep changing (RFC 5452); a socket whose exchange timed out
// is never used again, so its late answer cannot meet another query.
func TestUDPSocketsReusedAndRotated(t *testing.T) {
	var mu sync.Mutex
	ports := map[string]int{}
	var slow atomic.Bool
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		ports[w.RemoteAddr().String()]++
		mu.Unlock()
		if slow.Load() {
			time.Sleep(300 * time.Millisecond) // answers after the client gave up
		}
		rt.A("192.0.2.1", 60)(w, r)
	})
	spec, err := ParseUpstream(up.Addr)
	if err != nil {
		t.Fatal(err)
	}
	u := NewPlainUpstream(spec)
	defer u.Close()
	ask := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		m := new(dns.Msg)
		m.SetQuestion("pool.example.", dns.TypeA)
		r, err := u.Exchange(ctx, m)
		if err == nil && len(r.Answer) != 1 {
			t.Fatalf("answer %v", r)
		}
		return err
	}
	const queries = 4*udpSocketUses + 10
	for range queries {
		if err := ask(2 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	distinct, most := len(ports), 0
	for _, n := range ports {
		most = max(most, n)
	}
	mu.Unlock()
	if distinct < queries/udpSocketUses || distinct > queries/udpSocketUses+1 {
		t.Errorf("%d queries one after another used %d source ports; want %d to %d (reused, and rotated every %d)",
			queries, distinct, queries/udpSocketUses, queries/udpSocketUses+1, udpSocketUses)
	}
	if most > udpSocketUses {
		t.Errorf("a source port served %d queries, more than udpSocketUses (%d)", most, udpSocketUses)
	}

	// A timed-out exchange's socket is closed, not pooled.
	slow.Store(true)
	if err := ask(100 * time.Millisecond); err == nil {
		t.Fatal("the slow upstream answered within 100 ms")
	}
	slow.Store(false)
	u.mu.Lock()
	idle := len(u.idle)
	u.mu.Unlock()
	if err := ask(2 * time.Second); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
	u.mu.Lock()
	after := len(u.idle)
	u.mu.Unlock()
	if idle != 0 || after != 1 {
		t.Errorf("idle sockets after the timeout %d (want 0: it must not be reused), after the next query %d (want 1)", idle, after)
	}
}
