package resolver_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

func TestANYAnsweredMinimally(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	r := rt.Exchange(t, "udp", v.addr, rt.Question("example.com", dns.TypeANY))
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v", r.Answer)
	}
	if h, ok := r.Answer[0].(*dns.HINFO); !ok || h.Cpu != "RFC8482" {
		t.Errorf("answer %v, want HINFO RFC8482 (RFC 8482 section 4.2)", r.Answer[0])
	}
	if up.Queries() != 0 {
		t.Error("an ANY query was forwarded")
	}
}

// sendFrom returns a client bound to a loopback source address.
func sendFrom(src string, timeout time.Duration) *dns.Client {
	return &dns.Client{Net: "udp", Timeout: timeout,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}, Timeout: timeout}}
}

// TestFloodedClientDoesNotStarveOthers has one client send far above its
// rate limit while another keeps being answered.
func TestFloodedClientDoesNotStarveOthers(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	limit := resolver.DefaultRateLimitConfig()
	limit.QPS, limit.Burst, limit.Exempt = 50, 50, nil
	if err := limit.Validate(); err != nil {
		t.Fatal(err)
	}
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Limiter = resolver.NewLimiter(limit, nil) })

	// The flood: 127.0.0.2 fires 3000 queries without waiting for answers.
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(v.addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var answered atomic.Int64
	go func() {
		buf := make([]byte, 512)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(buf); err != nil {
				return
			}
			answered.Add(1)
		}
	}()
	pkt, _ := rt.Question("flood.example", dns.TypeA).Pack()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 3000 {
			_, _ = conn.Write(pkt)
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let the socket buffer drain a little
			}
		}
	}()
	// Meanwhile another client is served normally.
	c := sendFrom("127.0.0.3", 2*time.Second)
	for i := range 20 {
		r, _, err := c.Exchange(rt.Question("other"+strconv.Itoa(i)+".example", dns.TypeA), v.addr)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("the well-behaved client was not answered during the flood: %v", err)
		}
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	st := v.srv.Stats()
	// 50 burst + 50/s over well under 2 s of flood.
	if st.Limited < 1000 || answered.Load() > 200 {
		t.Errorf("flooding client: %d answered, %d limited; want at most ~150 answered and the rest limited", answered.Load(), st.Limited)
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	cfg := resolver.DefaultRateLimitConfig()
	cfg.MaxClients, cfg.Exempt = 1024, nil
	l := resolver.NewLimiter(cfg, nil)
	now := time.Now().UnixNano()
	for i := range 200_000 { // spoofed random sources
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(a, now)
	}
	if n := l.Tracked(); n > 1024 {
		t.Errorf("tracking %d client networks, want at most max_clients 1024", n)
	}
}

// TestRandomNameFloodMemoryBounded sprays unique names (each a cache miss)
// and checks the heap stays bounded by the cache budget.
func TestRandomNameFloodMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 20,000 queries")
	}
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 3600))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Cache.MaxBytes = 1 << 20 })
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			for i := range 2500 {
				_, _, _ = c.Exchange(rt.Question("r"+strconv.Itoa(w)+"-"+strconv.Itoa(i)+".random.example", dns.TypeA), v.addr)
			}
		}()
	}
	wg.Wait()
	after := heap()
	st := v.chain.Cache.Stats()
	t.Logf("heap %d -> %d bytes; cache %d entries, %d bytes", before, after, st.Entries, st.Bytes)
	if st.Bytes > 1<<20 {
		t.Errorf("cache holds %d bytes, over its 1 MiB budget", st.Bytes)
	}
	if after > before+16<<20 {
		t.Errorf("heap grew by %d bytes after 20,000 random names", after-before)
	}
}

func TestTCPConnectionsPerClientCapped(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Server.MaxTCPConnsPerClient = 4 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", v.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(2 * time.Second)
	for v.srv.Stats().TCPConns < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// A fifth idle connection from the same address is closed at once.
	c, err := net.Dial("tcp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("fifth connection: %v; want it closed by the server", err)
	}
	// Another address is still served.
	d := &dns.Client{Net: "tcp", Timeout: 2 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 2 * time.Second}}
	if r, _, err := d.Exchange(rt.Question("ok.example", dns.TypeA), v.addr); err != nil || len(r.Answer) != 1 {
		t.Errorf("another client over TCP: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSlowlorisClosedByTimeouts opens connections that send half a query
// and stall: they are closed by the read timeout, and the server answers
// others meanwhile.
func TestSlowlorisClosedByTimeouts(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.TCPReadTimeout = 200 * time.Millisecond
		c.Server.TCPIdleTimeout = 300 * time.Millisecond
	})
	c, err := net.Dial("tcp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte{0, 40, 1, 2, 3}) // promises 40 bytes, sends 3
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err == nil || isTimeout(err) || time.Since(start) > 2*time.Second {
		t.Errorf("stalled connection: %v after %s; want closed by the server's read timeout", err, time.Since(start))
	}
	r := rt.Exchange(t, "tcp", v.addr, rt.Question("fine.example", dns.TypeA))
	if len(r.Answer) != 1 {
		t.Error("server not answering")
	}
}

func TestServeStale(t *testing.T) {
	var down atomic.Bool
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if down.Load() {
			return // no answer: an outage
		}
		rt.A("192.0.2.1", 60)(w, r)
	})
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Now = clock.Now
		c.Upstream.Timeout = 200 * time.Millisecond
		c.Server.QueryTimeout = 500 * time.Millisecond
	})
	q := func() *dns.Msg {
		m := rt.Question("stale.example", dns.TypeA)
		m.SetEdns0(1232, false)
		return rt.Exchange(t, "udp", v.addr, m)
	}
	q()
	down.Store(true)
	clock.Advance(10 * time.Minute) // expired, within stale_ttl
	r := q()
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("during the outage: %v; want the stale answer with TTL 30", r.Answer)
	}
	if e := edeOf(r); e == nil || e.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("EDE %v, want Stale Answer", e)
	}
	clock.Advance(2 * time.Hour) // beyond stale_ttl
	if r := q(); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("beyond stale_ttl: rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

// TestOutOfBailiwickScrubbed has an upstream add poison to its answer and
// checks none of it is returned or cached.
func TestOutOfBailiwickScrubbed(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		name := r.Question[0].Name
		hdr := func(n string, t uint16) dns.RR_Header {
			return dns.RR_Header{Name: n, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
		}
		m.Answer = []dns.RR{
			&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: "cdn.example.net."},
			&dns.A{Hdr: hdr("cdn.example.net.", dns.TypeA), A: net.IPv4(192, 0, 2, 1)},
			&dns.A{Hdr: hdr("bank.example.", dns.TypeA), A: net.IPv4(203, 0, 113, 66)}, // poison
		}
		m.Ns = []dns.RR{
			&dns.NS{Hdr: hdr("example.com.", dns.TypeNS), Ns: "ns.example.com."},
			&dns.NS{Hdr: hdr("bank.example.", dns.TypeNS), Ns: "evil.example."}, // poison
		}
		m.Extra = []dns.RR{
			&dns.A{Hdr: hdr("ns.example.com.", dns.TypeA), A: net.IPv4(192, 0, 2, 53)},
			&dns.A{Hdr: hdr("evil.example.", dns.TypeA), A: net.IPv4(203, 0, 113, 66)},  // glue for poison
			&dns.A{Hdr: hdr("www.other.org.", dns.TypeA), A: net.IPv4(203, 0, 113, 66)}, // unrelated
		}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	for range 2 { // the second from the cache
		r := rt.Exchange(t, "udp", v.addr, rt.Question("www.example.com", dns.TypeA))
		for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
			for _, rr := range sec {
				if a, ok := rr.(*dns.A); ok && a.A.Equal(net.IPv4(203, 0, 113, 66)) {
					t.Errorf("poison returned: %v", rr)
				}
				if ns, ok := rr.(*dns.NS); ok && ns.Hdr.Name == "bank.example." {
					t.Errorf("poison returned: %v", rr)
				}
			}
		}
		if len(r.Answer) != 2 || len(r.Ns) != 1 || len(r.Extra) != 1 {
			t.Errorf("kept %d/%d/%d records, want the chain (2), its NS (1) and glue (1)", len(r.Answer), len(r.Ns), len(r.Extra))
		}
	}
	if v.chain.Forwarder.Scrubbed() != 4 {
		t.Errorf("scrubbed %d records, want 4", v.chain.Forwarder.Scrubbed())
	}
}

// TestUpstreamFaults covers upstreams that answer badly rather than not at
// all: each must make Vigil move on to a healthy upstream.
func TestUpstreamFaults(t *testing.T) {
	healthy := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	servfail := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		_ = w.WriteMsg(m)
	})
	refused := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		_ = w.WriteMsg(m)
	})
	garbage := garbageUpstream(t)
	for name, bad := range map[string]string{"servfail": servfail.Addr, "refused": refused.Addr, "garbage": garbage} {
		t.Run(name, func(t *testing.T) {
			v := startVigil(t, []string{bad, healthy.Addr}, func(c *testConfig) { c.Upstream.Timeout = 200 * time.Millisecond })
			r := rt.Exchange(t, "udp", v.addr, rt.Question(name+".example", dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Errorf("rcode %s, %d answers; want the healthy upstream's answer", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
}

// garbageUpstream answers every query with random bytes carrying its ID.
func garbageUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil || n < 2 {
				return
			}
			_, _ = pc.WriteTo([]byte{buf[0], buf[1], 0x81, 0x80, 0xff, 0xff, 0, 7, 1, 2, 3}, from)
		}
	}()
	return pc.LocalAddr().String()
}

// TestFailingUpstreamBackedOff checks that an upstream failing repeatedly
// is tried last for a while, so queries stop paying its timeout, and is
// tried again once it recovers.
func TestFailingUpstreamBackedOff(t *testing.T) {
	var flaky atomic.Bool
	flaky.Store(true)
	var flakyHits atomic.Int64
	first := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		flakyHits.Add(1)
		if flaky.Load() {
			return // silent
		}
		rt.A("192.0.2.7", 300)(w, r)
	})
	second := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{first.Addr, second.Addr}, func(c *testConfig) {
		c.Upstream.Timeout = 100 * time.Millisecond
		c.Cache.Enabled = false
	})
	for i := range 10 {
		start := time.Now()
		rt.Exchange(t, "udp", v.addr, rt.Question("q"+strconv.Itoa(i)+".example", dns.TypeA))
		if i >= 3 && time.Since(start) > 80*time.Millisecond {
			t.Errorf("query %d took %s: the failing upstream should be backed off by now", i, time.Since(start))
		}
	}
	if n := flakyHits.Load(); n > 4 {
		t.Errorf("the failing upstream was asked %d times in 10 queries; want it backed off after 3", n)
	}
	flaky.Store(false)
	time.Sleep(1100 * time.Millisecond) // the first backoff is one second
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := rt.Exchange(t, "udp", v.addr, rt.Question("back"+strconv.Itoa(int(time.Now().UnixNano()))+".example", dns.TypeA))
		if len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "192.0.2.7" {
			break // the recovered upstream, first in failover order, answers again
		}
		if time.Now().After(deadline) {
			t.Fatal("the recovered upstream was never tried again")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBypassCanariesAndHealthName(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		n     int // answers
	}{
		{"use-application-dns.net", dns.TypeA, dns.RcodeNameError, 0},
		{"mask.icloud.com", dns.TypeAAAA, dns.RcodeNameError, 0},
		{"mask-h2.icloud.com", dns.TypeA, dns.RcodeNameError, 0},
		{"_dns.resolver.arpa", dns.TypeSVCB, dns.RcodeSuccess, 0},
		{"resolver.arpa", dns.TypeA, dns.RcodeSuccess, 0},
		{"health.vigil", dns.TypeA, dns.RcodeSuccess, 1},
		{"HEALTH.vigil", dns.TypeTXT, dns.RcodeSuccess, 1},
	}
	for _, tc := range cases {
		r := rt.Exchange(t, "udp", v.addr, rt.Question(tc.name, tc.qtype))
		if r.Rcode != tc.rcode || len(r.Answer) != tc.n {
			t.Errorf("%s %s: rcode %s, %d answers; want %s, %d", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode], tc.n)
		}
	}
	if up.Queries() != 0 {
		t.Errorf("%d of these reached the upstream", up.Queries())
	}
}

func TestPauseBlocking(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	lists := newStaticLists(t, []string{"||tracker.example^"}, nil)
	pause := resolver.NewPauser()
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		withLists(lists, nil)(c)
		c.Pause = pause
	})
	answer := func(src string) string {
		r, _, err := sendFrom(src, 2*time.Second).Exchange(rt.Question("a.tracker.example", dns.TypeA), v.addr)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("query from %s: %v", src, err)
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	if got := answer("127.0.0.1"); got != "0.0.0.0" {
		t.Fatalf("before pausing: %s", got)
	}
	pause.Pause("127.0.0.2", time.Hour)
	if got := answer("127.0.0.2"); got != "192.0.2.1" {
		t.Errorf("paused client: %s, want the real answer", got)
	}
	if got := answer("127.0.0.1"); got != "0.0.0.0" {
		t.Errorf("other client during a per-client pause: %s, want blocked", got)
	}
	pause.Pause("", 300*time.Millisecond)
	if got := answer("127.0.0.1"); got != "192.0.2.1" {
		t.Errorf("during a global pause: %s", got)
	}
	time.Sleep(400 * time.Millisecond)
	if got := answer("127.0.0.1"); got != "0.0.0.0" {
		t.Errorf("after the pause expired: %s, want blocked again", got)
	}
	pause.Resume("127.0.0.2")
	if got := answer("127.0.0.2"); got != "0.0.0.0" {
		t.Errorf("after resume: %s, want blocked", got)
	}
	if st := pause.Status(); !st.All.IsZero() || len(st.Clients) != 0 {
		t.Errorf("status after everything ended: %+v", st)
	}
}

// TestReloadMakesCachedNamesLocal is the regression test for the packed
// answers diverging from the chain: a name answered from upstream and
// cached (mask.icloud.com, the health name) must be answered by Vigil
// itself as soon as a reload turns block_bypass on or sets health_name,
// over every transport and also from a cache restored after a restart.
func TestReloadMakesCachedNamesLocal(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 3600))
	off := func(c *testConfig) { c.Blocking.BlockBypass = false; c.Blocking.HealthName = "" }
	v := startVigil(t, []string{up.Addr}, off)
	names := []string{"mask.icloud.com", "health.vigil", "_dns.resolver.arpa"}
	for _, n := range names {
		for _, net := range []string{"udp", "tcp"} {
			if r := rt.Exchange(t, net, v.addr, rt.Question(n, dns.TypeA)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("%s over %s before the reload: %s", n, net, r)
			}
		}
	}
	asked := up.Queries()
	restored := startVigil(t, []string{up.Addr}, nil) // a restart with the new configuration
	if n, err := restored.chain.Cache.Restore(v.chain.Cache.Snapshot()); err != nil || n != len(names) {
		t.Fatalf("restored %d entries (%v), want %d", n, err, len(names))
	}

	ccfg := resolver.ChainConfig{Upstream: resolver.DefaultUpstreamConfig(), Blocking: resolver.DefaultBlockingConfig()}
	ccfg.Upstream.Servers = resolver.MustParseUpstreams(up.Addr)
	if err := ccfg.Upstream.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := v.chain.Reconfigure(ccfg); err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*vigil{v, restored} {
		for _, net := range []string{"udp", "tcp"} {
			mask := rt.Exchange(t, net, srv.addr, rt.Question("mask.icloud.com", dns.TypeA))
			if mask.Rcode != dns.RcodeNameError || len(mask.Answer) != 0 {
				t.Errorf("mask.icloud.com over %s after the reload: %s; want NXDOMAIN", net, mask)
			}
			health := rt.Exchange(t, net, srv.addr, rt.Question("health.vigil", dns.TypeA))
			if len(health.Answer) != 1 || health.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
				t.Errorf("health.vigil over %s after the reload: %s; want 127.0.0.1", net, health)
			}
			disc := rt.Exchange(t, net, srv.addr, rt.Question("_dns.resolver.arpa", dns.TypeA))
			if disc.Rcode != dns.RcodeSuccess || len(disc.Answer) != 0 {
				t.Errorf("_dns.resolver.arpa over %s after the reload: %s; want NODATA", net, disc)
			}
		}
	}
	if up.Queries() != asked {
		t.Errorf("%d queries reached the upstream after the reload", up.Queries()-asked)
	}
}

// TestStaleAnsweredOnTime black-holes the upstream while 300 expired names
// are asked at once (RFC 8767 section 5): every one is answered stale
// within the client response timer, none is shed for want of a slot, and
// once the upstream is known to be failing they are answered at once. An
// upstream that answers within the timer still gets its fresh answer used.
func TestStaleAnsweredOnTime(t *testing.T) {
	var delay atomic.Int64 // nanoseconds; <0: never answer
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		switch d := time.Duration(delay.Load()); {
		case d < 0:
			return // black-holed
		case d > 0:
			time.Sleep(d)
		}
		rt.A("192.0.2.1", 60)(w, r)
	})
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	const timer = time.Second
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Now = clock.Now
		c.Upstream.Timeout = 2 * time.Second // as shipped
		c.Cache.StaleAnswerTimeout = timer
	})
	const names = 300
	ask := func(i int) (*dns.Msg, time.Duration, error) {
		m := rt.Question(fmt.Sprintf("n%d.stale.example", i), dns.TypeA)
		start := time.Now()
		r, _, err := (&dns.Client{Timeout: 4 * time.Second}).Exchange(m, v.addr)
		return r, time.Since(start), err
	}
	for i := range names {
		if _, _, err := ask(i); err != nil {
			t.Fatal(err)
		}
	}
	askAll := func(phase string, within time.Duration) {
		t.Helper()
		var wg sync.WaitGroup
		var slow, failed atomic.Int64
		var worst atomic.Int64
		for i := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, took, err := ask(i)
				if err != nil || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
					failed.Add(1)
					return
				}
				if took > within {
					slow.Add(1)
				}
				for w := worst.Load(); int64(took) > w && !worst.CompareAndSwap(w, int64(took)); w = worst.Load() {
				}
			}()
		}
		wg.Wait()
		t.Logf("%s: %d of %d not answered stale, %d slower than %s, slowest %s", phase, failed.Load(), names, slow.Load(), within, time.Duration(worst.Load()))
		if failed.Load() > 0 || slow.Load() > 0 {
			t.Errorf("%s: %d not answered stale, %d slower than %s", phase, failed.Load(), slow.Load(), within)
		}
	}
	delay.Store(-1)
	clock.Advance(10 * time.Minute)
	askAll("black-holed upstream", timer+700*time.Millisecond)
	if shed := v.srv.Stats().Shed; shed != 0 {
		t.Errorf("%d queries shed", shed)
	}
	if !v.chain.Forwarder.AllFailing() {
		// The refreshes time out after Upstream.Timeout and mark the
		// upstream failing; wait for that.
		deadline := time.Now().Add(5 * time.Second)
		for !v.chain.Forwarder.AllFailing() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	askAll("upstream known failing", timer*9/10) // at once: before the timer could have fired, even on a busy machine

	// A slow upstream that answers within the timer: the fresh answer.
	delay.Store(int64(50 * time.Millisecond))
	clock.Advance(30 * time.Minute) // past the upstream's backoff
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _, err := ask(0)
		if err == nil && len(r.Answer) == 1 && r.Answer[0].Header().Ttl == 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh answer from a slow upstream within the timer: %v %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTCPCrowdCannotHoardSlots fills every TCP slot with idle connections
// from 16 addresses (32 each, the per-client cap; each asked one query
// and went quiet): a new client still gets its TCP answer within 100 ms,
// because the longest-idle connection is closed to make room. A client
// outside the access list is closed at accept and holds no slot.
func TestTCPCrowdCannotHoardSlots(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/25"), netip.MustParsePrefix("127.0.1.0/24")}
	})
	cfg := resolver.DefaultServerConfig()
	const addrs = 16
	perAddr := cfg.MaxTCPConnsPerClient
	if addrs*perAddr != cfg.MaxTCPConns {
		t.Fatalf("the test assumes %d addresses × %d = max_tcp_conns (%d)", addrs, perAddr, cfg.MaxTCPConns)
	}
	var crowd []*dns.Conn
	t.Cleanup(func() {
		for _, c := range crowd {
			c.Close()
		}
	})
	for a := range addrs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(a+1)).To4()}, Timeout: 2 * time.Second}
		for range perAddr {
			nc, err := d.Dial("tcp", v.addr)
			if err != nil {
				t.Fatal(err)
			}
			c := &dns.Conn{Conn: nc}
			crowd = append(crowd, c)
			if err := c.WriteMsg(rt.Question("crowd.example", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadMsg(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := v.srv.Stats().TCPConns; got != int64(cfg.MaxTCPConns) {
		t.Fatalf("%d TCP connections open, want every slot (%d) taken", got, cfg.MaxTCPConns)
	}

	// Outside the access list: closed at once, no slot taken.
	out := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 200).To4()}, Timeout: 2 * time.Second}
	if nc, err := out.Dial("tcp", v.addr); err == nil {
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("a client outside server.allow: %v; want its connection closed at accept", err)
		}
		nc.Close()
	}

	for i, src := range []string{"127.0.0.100", "127.0.0.1"} {
		d := &dns.Client{Net: "tcp", Timeout: 2 * time.Second,
			Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}}
		start := time.Now()
		r, _, err := d.Exchange(rt.Question("newcomer.example", dns.TypeA), v.addr)
		took := time.Since(start)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("newcomer %d (%s) over TCP with every slot held: %v", i, src, err)
		}
		if took > 100*time.Millisecond {
			t.Errorf("newcomer %d (%s) answered in %s, want within 100 ms", i, src, took)
		}
	}
	if st := v.srv.Stats(); st.TCPEvicted < 1 {
		t.Errorf("%d idle connections evicted, want at least one", st.TCPEvicted)
	}
}

// Under pressure (more than three quarters of the TCP slots taken) an idle
// connection gets a second, not tcp_idle_timeout (RFC 7766 section 6.2.3);
// below it, the configured idle timeout holds.
func TestTCPIdleTimeoutShortensUnderPressure(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.MaxTCPConns = 8
		c.Server.MaxTCPConnsPerClient = 8
		c.Server.TCPIdleTimeout = 20 * time.Second
	})
	open := func(n int) []*dns.Conn {
		var conns []*dns.Conn
		for range n {
			nc, err := net.DialTimeout("tcp", v.addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c := &dns.Conn{Conn: nc}
			t.Cleanup(func() { c.Close() })
			if err := c.WriteMsg(rt.Question("idle.example", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadMsg(); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		return conns
	}
	// closedWithin reports whether the server closes c within d.
	closedWithin := func(c *dns.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	calm := open(2) // 2 of 8: no pressure
	if closedWithin(calm[0], 2500*time.Millisecond) {
		t.Fatal("an idle connection was closed within 2.5 s with 2 of 8 slots taken; want tcp_idle_timeout (20 s)")
	}
	busy := open(5) // 7 of 8
	start := time.Now()
	if !closedWithin(busy[4], 5*time.Second) {
		t.Fatalf("with 7 of 8 slots taken an idle connection was not closed within 5 s")
	}
	t.Logf("idle connection closed after %s under pressure", time.Since(start).Round(time.Millisecond))
}

// TestShutdownUnderFlood shuts the server down while its UDP socket is
// flooded, its readers answering batch after batch: every reader must
// still see the shutdown (the read deadline Shutdown sets) and return. A
// reader that set and cleared the socket's deadline for its own purposes
// once undid Shutdown's and left the other reader waiting for ever.
func TestShutdownUnderFlood(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 3600))
	for round := range 5 {
		v := startVigil(t, []string{up.Addr}, nil)
		pkt, err := rt.Question("flood.example", dns.TypeA).Pack()
		if err != nil {
			t.Fatal(err)
		}
		rt.Exchange(t, "udp", v.addr, rt.Question("flood.example", dns.TypeA)) // cached from now on
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				c, err := net.Dial("udp", v.addr)
				if err != nil {
					return
				}
				defer c.Close()
				go func() { // drain the answers so that the sender is never blocked
					buf := make([]byte, 512)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				}()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = c.Write(pkt)
				}
			})
		}
		time.Sleep(200 * time.Millisecond)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- v.srv.Shutdown(ctx)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: shutdown: %v", round, err)
			}
		case <-time.After(10 * time.Second):
			// Not t.Fatal, nor a panic: either runs the cleanup, whose
			// Shutdown would wait for this one for ever. The dump shows
			// who is stuck.
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "FAIL: TestShutdownUnderFlood round %d: shutdown under a flood did not return in 10 s\n%s", round, buf[:runtime.Stack(buf, true)])
			os.Exit(1)
		}
		close(stop)
		wg.Wait()
	}
}
