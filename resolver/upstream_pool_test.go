package resolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// answerA answers q with an A record of ip.
func answerA(q *dns.Msg, ip string) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	r.Answer = append(r.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.ParseIP(ip),
	})
	return r
}

func newTestPlainUpstream(t *testing.T, addr string) *PlainUpstream {
	t.Helper()
	spec, err := ParseUpstream(addr)
	if err != nil {
		t.Fatal(err)
	}
	u := NewPlainUpstream(spec)
	t.Cleanup(func() { u.Close() })
	return u
}

// ipFor is the address the tests' upstreams answer name i with.
func ipFor(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) }

// TestUDPMuxAnswersReachTheirQueries sends hundreds of exchanges at once
// over the shared sockets, answered out of order: each gets its own
// answer under its own ID, and the queries went out on a few ports, under
// IDs that are not the callers'.
func TestUDPMuxAnswersReachTheirQueries(t *testing.T) {
	var idsMu sync.Mutex
	wireIDs := map[uint16]int{}
	up := rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		idsMu.Lock()
		wireIDs[q.Id]++
		idsMu.Unlock()
		var i int
		fmt.Sscanf(q.Question[0].Name, "n%d.", &i)
		return time.Duration(rand.IntN(20)) * time.Millisecond, rt.Wire(answerA(q, ipFor(i)))
	})
	u := newTestPlainUpstream(t, up.Addr)
	// 600 exchanges, 100 at a time: more at once could overflow the test
	// upstream's socket buffer under the race detector.
	const n = 600
	var wg sync.WaitGroup
	errs := make(chan error, n)
	slots := make(chan struct{}, 100)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			m := new(dns.Msg)
			m.SetQuestion(fmt.Sprintf("n%d.mux.example.", i), dns.TypeA)
			m.Id = 4242 // the same for all: the multiplexer must not rely on it
			r, err := u.ExchangeBy(time.Now().Add(5*time.Second), m)
			switch {
			case err != nil:
				errs <- fmt.Errorf("query %d: %w", i, err)
			case r.Id != 4242:
				errs <- fmt.Errorf("query %d: reply ID %d, want the caller's 4242", i, r.Id)
			case len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != ipFor(i):
				errs <- fmt.Errorf("query %d got %v, want %s", i, r.Answer, ipFor(i))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ports := up.Ports(); len(ports) > muxSockets {
		t.Errorf("%d exchanges used %d source ports; want at most %d sockets", n, len(ports), muxSockets)
	}
	idsMu.Lock()
	defer idsMu.Unlock()
	if wireIDs[4242] > 2 || len(wireIDs) < n/2 {
		t.Errorf("IDs on the wire: %d distinct, the caller's %d times; want each query under an ID of its own drawing", len(wireIDs), wireIDs[4242])
	}
}

// TestUDPMuxRotatesPorts: a socket carries at most its quota of queries
// and is then replaced by one on a new port (RFC 5452: the ports in use
// keep changing).
func TestUDPMuxRotatesPorts(t *testing.T) {
	up := rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		return 0, rt.Wire(answerA(q, "192.0.2.1"))
	})
	u := newTestPlainUpstream(t, up.Addr)
	u.udp.uses = 8
	const queries = 400
	for i := range queries {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("r%d.mux.example.", i), dns.TypeA)
		if _, err := u.ExchangeBy(time.Now().Add(2*time.Second), m); err != nil {
			t.Fatal(err)
		}
	}
	ports := up.Ports()
	most := 0
	for _, n := range ports {
		most = max(most, n)
	}
	if most > 8 {
		t.Errorf("a source port carried %d queries, more than its quota of 8", most)
	}
	if len(ports) < queries/8 {
		t.Errorf("%d queries used %d ports; want at least %d (rotated every 8)", queries, len(ports), queries/8)
	}
}

// TestUDPMuxDropsWhatIsNotTheAnswer: a reply under the query's wire ID but
// to another question (what a spoofer who guessed the ID sends), and a
// late answer to a query that gave up, are both dropped; the query waiting
// keeps waiting for its own answer.
func TestUDPMuxDropsWhatIsNotTheAnswer(t *testing.T) {
	up := rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		switch q.Question[0].Name {
		case "slow.mux.example.":
			return 300 * time.Millisecond, rt.Wire(answerA(q, "192.0.2.66"))
		default:
			spoof := answerA(q, "192.0.2.66")
			spoof.Question[0].Name = "victim.example."
			spoof.Answer[0].Header().Name = "victim.example."
			return 0, rt.Wire(spoof, answerA(q, "192.0.2.1"))
		}
	})
	u := newTestPlainUpstream(t, up.Addr)
	m := new(dns.Msg)
	m.SetQuestion("slow.mux.example.", dns.TypeA)
	if _, err := u.ExchangeBy(time.Now().Add(100*time.Millisecond), m); !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow upstream: %v, want a timeout", err)
	}
	// While the slow answer arrives late, ask others on the same sockets.
	deadline := time.Now().Add(600 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("q%d.mux.example.", i), dns.TypeA)
		r, err := u.ExchangeBy(time.Now().Add(2*time.Second), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" || r.Question[0].Name != q.Question[0].Name {
			t.Fatalf("query %d got %v: not its own answer", i, r)
		}
	}
}

// TestUDPMuxRefusedFailsFast: an upstream port that answers with ICMP
// port unreachable fails the exchange at once, not at its deadline, so
// that the forwarder moves on.
func TestUDPMuxRefusedFailsFast(t *testing.T) {
	u := newTestPlainUpstream(t, rt.DeadAddr(t))
	m := new(dns.Msg)
	m.SetQuestion("refused.mux.example.", dns.TypeA)
	start := time.Now()
	_, err := u.ExchangeBy(time.Now().Add(3*time.Second), m)
	if err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("exchange with a closed port: %v, want a refusal", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusal took %v, want well before the 3 s deadline", took)
	}
	// The next exchange is refused too, not stuck on a dead socket.
	if _, err := u.ExchangeBy(time.Now().Add(3*time.Second), m); err == nil {
		t.Fatal("second exchange with a closed port succeeded")
	}
}

// TestUDPMuxClosesIdleSockets: a socket past its age closes by itself
// once idle, and a closed upstream takes no more exchanges but lets those
// in flight finish.
func TestUDPMuxClosesIdleSockets(t *testing.T) {
	release := make(chan struct{})
	up := rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		if q.Question[0].Name == "held.mux.example." {
			<-release
		}
		return 0, rt.Wire(answerA(q, "192.0.2.1"))
	})
	u := newTestPlainUpstream(t, up.Addr)
	u.udp.age = 200 * time.Millisecond
	m := new(dns.Msg)
	m.SetQuestion("idle.mux.example.", dns.TypeA)
	if _, err := u.ExchangeBy(time.Now().Add(2*time.Second), m); err != nil {
		t.Fatal(err)
	}
	open := func() (n int) {
		u.udp.mu.Lock()
		defer u.udp.mu.Unlock()
		for _, s := range u.udp.socks {
			if s != nil {
				n++
			}
		}
		return n
	}
	if open() != 1 {
		t.Fatalf("%d sockets after one exchange, want 1", open())
	}
	waitFor(t, 3*time.Second, func() bool { return open() == 0 }, "the idle socket to be retired")

	// An exchange in flight when the upstream is closed still finishes.
	u.udp.age = muxSocketAge
	done := make(chan error, 1)
	go func() {
		h := new(dns.Msg)
		h.SetQuestion("held.mux.example.", dns.TypeA)
		_, err := u.ExchangeBy(time.Now().Add(3*time.Second), h)
		done <- err
	}()
	waitFor(t, 2*time.Second, func() bool { return open() == 1 }, "the held exchange to be sent")
	u.Close()
	close(release)
	if err := <-done; err != nil {
		t.Errorf("exchange in flight at Close: %v, want its answer", err)
	}
	if _, err := u.Exchange(context.Background(), m); !errors.Is(err, net.ErrClosed) {
		t.Errorf("exchange after Close: %v, want net.ErrClosed", err)
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUDPMuxResendsALostQuery: an upstream that never sees the first copy
// of a query (dropped on the way) answers the second, sent after half the
// attempt's time, well before the deadline; a query the upstream never
// answers still times out at its deadline.
func TestUDPMuxResendsALostQuery(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	up := rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		key := q.Question[0].Name + "/" + strconv.Itoa(int(q.Id))
		mu.Lock()
		seen[key]++
		n := seen[key]
		mu.Unlock()
		if n == 1 || q.Question[0].Name == "never.mux.example." {
			return 0, nil // the first copy is "lost"
		}
		return 0, rt.Wire(answerA(q, "192.0.2.1"))
	})
	u := newTestPlainUpstream(t, up.Addr)
	m := new(dns.Msg)
	m.SetQuestion("lossy.mux.example.", dns.TypeA)
	start := time.Now()
	r, err := u.ExchangeBy(start.Add(2*time.Second), m)
	if err != nil {
		t.Fatalf("a query whose first copy was lost: %v, want the answer to the second", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("answered after %v, want about 1 s (half the 2-s attempt)", took)
	}
	if len(r.Answer) != 1 {
		t.Errorf("answer %v", r)
	}
	mu.Lock()
	copies := seen["lossy.mux.example./"+strconv.Itoa(int(firstWireID(seen, "lossy.mux.example.")))]
	mu.Unlock()
	if copies != 2 {
		t.Errorf("the upstream saw %d copies under one wire ID, want 2 (a retransmission, same ID)", copies)
	}
	m.SetQuestion("never.mux.example.", dns.TypeA)
	start = time.Now()
	if _, err := u.ExchangeBy(start.Add(400*time.Millisecond), m); !errors.Is(err, ErrTimeout) {
		t.Fatalf("unanswered query: %v, want a timeout", err)
	}
	if took := time.Since(start); took < 350*time.Millisecond || took > 900*time.Millisecond {
		t.Errorf("unanswered query ended after %v, want its 400-ms deadline", took)
	}
}

// firstWireID returns the wire ID the upstream saw name under (the test
// asks each name once).
func firstWireID(seen map[string]int, name string) int {
	for k := range seen {
		if strings.HasPrefix(k, name+"/") {
			id, _ := strconv.Atoi(strings.TrimPrefix(k, name+"/"))
			return id
		}
	}
	return -1
}
