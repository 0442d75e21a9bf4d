package resolver_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// testConfig gathers the sections a test Vigil is built from.
type testConfig struct {
	Server   resolver.ServerConfig
	Upstream resolver.UpstreamConfig
	Cache    resolver.CacheConfig
	Blocking resolver.BlockingConfig
	Lists    resolver.ListSource
	Clients  *resolver.Clients
	Recorder resolver.Recorder
	Limiter  *resolver.Limiter
	Pause    *resolver.Pauser
	Now      func() time.Time
	Forward  []resolver.ForwardConfig
	Network  resolver.NetworkConfig
}

type vigil struct {
	srv   *resolver.Server
	chain *resolver.Chain
	addr  string // same port for UDP and TCP
}

// startVigil runs a Vigil on 127.0.0.1:0 forwarding to upstreams.
func startVigil(t testing.TB, upstreams []string, mod func(*testConfig)) *vigil {
	t.Helper()
	cfg := testConfig{
		Server:   resolver.DefaultServerConfig(),
		Upstream: resolver.DefaultUpstreamConfig(),
		Cache:    resolver.DefaultCacheConfig(),
		Blocking: resolver.DefaultBlockingConfig(),
		Network:  resolver.DefaultNetworkConfig(),
	}
	cfg.Server.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	cfg.Server.MaxInflight = 64
	cfg.Upstream.Servers = resolver.MustParseUpstreams(upstreams...)
	cfg.Upstream.Strategy = resolver.StrategyFailover
	cfg.Upstream.Timeout = 500 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	for _, v := range []interface{ Validate() error }{&cfg.Server, &cfg.Upstream, &cfg.Cache, &cfg.Blocking, cfg.Network} {
		if err := v.Validate(); err != nil {
			t.Fatalf("config: %v", err)
		}
	}
	if err := resolver.ValidateForwards(cfg.Forward); err != nil {
		t.Fatalf("config: %v", err)
	}
	chain, err := resolver.NewChain(resolver.ChainConfig{
		Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking, Lists: cfg.Lists, Pause: cfg.Pause, Now: cfg.Now,
		Forward: cfg.Forward, Network: cfg.Network,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := resolver.NewServer(cfg.Server, resolver.ServerDeps{
		Chain: chain, Log: zaptest.NewLogger(t), Clients: cfg.Clients, Recorder: cfg.Recorder, Limiter: cfg.Limiter,
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &vigil{srv: srv, chain: chain, addr: srv.UDPAddrs()[0].String()}
}

func TestRoundTrip(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			q := rt.Question("Example.COM", dns.TypeA)
			r := rt.Exchange(t, network, v.addr, q)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("got rcode %s, %d answers; want NOERROR with one A", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			if a := r.Answer[0].(*dns.A); a.A.String() != "192.0.2.1" {
				t.Errorf("answer %s, want 192.0.2.1", a.A)
			}
			if r.Id != q.Id || r.Question[0].Name != "Example.COM." {
				t.Errorf("id %d question %q; want the request's id %d and spelling", r.Id, r.Question[0].Name, q.Id)
			}
			if !r.RecursionAvailable || !r.Response {
				t.Error("RA and QR must be set")
			}
		})
	}
}

func TestCacheHitSkipsUpstream(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	for i := range 3 {
		r := rt.Exchange(t, "udp", v.addr, rt.Question("cached.example", dns.TypeA))
		if len(r.Answer) != 1 {
			t.Fatalf("query %d: %d answers", i, len(r.Answer))
		}
	}
	if n := up.Queries(); n != 1 {
		t.Errorf("upstream saw %d queries, want 1 (the rest from cache)", n)
	}
	// Another type or the DO bit is another cache entry.
	q := rt.Question("cached.example", dns.TypeA)
	q.SetEdns0(1232, true)
	rt.Exchange(t, "udp", v.addr, q)
	if n := up.Queries(); n != 2 {
		t.Errorf("upstream saw %d queries, want 2: DO is part of the key", n)
	}
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestCacheTTLDecreasesAndExpires(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Now = clock.Now })
	ttl := func() uint32 {
		r := rt.Exchange(t, "udp", v.addr, rt.Question("ttl.example", dns.TypeA))
		return r.Answer[0].Header().Ttl
	}
	if got := ttl(); got != 60 {
		t.Fatalf("first answer TTL %d, want 60", got)
	}
	clock.Advance(25 * time.Second)
	if got := ttl(); got != 35 {
		t.Errorf("after 25s TTL %d, want 35", got)
	}
	clock.Advance(35 * time.Second)
	if got := ttl(); got != 60 {
		t.Errorf("after expiry TTL %d, want a fresh 60", got)
	}
	if n := up.Queries(); n != 2 {
		t.Errorf("upstream saw %d queries, want 2", n)
	}
}

func TestCacheTTLClamps(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 5))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Cache.MinTTL = 30 * time.Second })
	r := rt.Exchange(t, "udp", v.addr, rt.Question("short.example", dns.TypeA))
	if got := r.Answer[0].Header().Ttl; got != 30 {
		t.Errorf("TTL %d, want min_ttl 30", got)
	}
}

func TestNegativeAnswersCached(t *testing.T) {
	up := rt.NewUpstream(t, rt.NXDomain(120))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Now = clock.Now })
	for range 2 {
		r := rt.Exchange(t, "udp", v.addr, rt.Question("nope.example", dns.TypeA))
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Fatalf("rcode %s with %d authority records, want NXDOMAIN with SOA", dns.RcodeToString[r.Rcode], len(r.Ns))
		}
	}
	if n := up.Queries(); n != 1 {
		t.Errorf("upstream saw %d queries, want 1: NXDOMAIN with SOA is cached (RFC 2308)", n)
	}
	clock.Advance(121 * time.Second)
	rt.Exchange(t, "udp", v.addr, rt.Question("nope.example", dns.TypeA))
	if n := up.Queries(); n != 2 {
		t.Errorf("upstream saw %d queries, want 2 after the SOA minimum passed", n)
	}

	// Without an SOA the negative answer is not cached (RFC 2308 section 5).
	bare := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	v2 := startVigil(t, []string{bare.Addr}, nil)
	for range 2 {
		rt.Exchange(t, "udp", v2.addr, rt.Question("nope.example", dns.TypeA))
	}
	if n := bare.Queries(); n != 2 {
		t.Errorf("upstream saw %d queries, want 2: no SOA, no caching", n)
	}
}

func TestTruncatedUpstreamRetriedOverTCP(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
		} else {
			for i := range 40 {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(192, 0, 2, byte(i)),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	r := rt.Exchange(t, "tcp", v.addr, rt.Question("big.example", dns.TypeA))
	if len(r.Answer) != 40 || r.Truncated {
		t.Fatalf("got %d answers (TC=%v), want all 40 fetched over TCP", len(r.Answer), r.Truncated)
	}
	if up.UDP.Load() != 1 || up.TCP.Load() != 1 {
		t.Errorf("upstream saw %d UDP and %d TCP queries, want 1 and 1", up.UDP.Load(), up.TCP.Load())
	}
	// A plain UDP client without EDNS gets the answer cut to 512 bytes with TC set.
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	small, _, err := c.Exchange(rt.Question("big.example", dns.TypeA), v.addr)
	if err != nil {
		t.Fatal(err)
	}
	small.Compress = true
	if !small.Truncated || small.Len() > 512 {
		t.Errorf("UDP answer %d bytes TC=%v, want <= 512 bytes with TC", small.Len(), small.Truncated)
	}
}

// spoofingUpstream answers every query first with replies that do not
// match (wrong ID, wrong name, wrong type), then with the real answer.
func spoofingUpstream(t *testing.T) string {
	t.Helper()
	return rt.NewRawUDP(t, func(q *dns.Msg) (time.Duration, [][]byte) {
		answer := func(id uint16, name string, qtype uint16, ip string) *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Id = id
			m.Question[0].Name, m.Question[0].Qtype = name, qtype
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)}}
			return m
		}
		name := q.Question[0].Name
		out := rt.Wire(
			answer(q.Id+1, name, dns.TypeA, "203.0.113.66"),          // wrong ID
			answer(q.Id, "evil.example.", dns.TypeA, "203.0.113.66"), // wrong name
			answer(q.Id, name, dns.TypeAAAA, "203.0.113.66"),         // wrong type
		)
		out = append(out, []byte{byte(q.Id >> 8), byte(q.Id), 0x81}) // garbage
		return 0, append(out, rt.Wire(answer(q.Id, name, dns.TypeA, "192.0.2.7"))...)
	}).Addr
}

func TestMismatchedUpstreamReplyIgnored(t *testing.T) {
	v := startVigil(t, []string{spoofingUpstream(t)}, nil)
	r := rt.Exchange(t, "udp", v.addr, rt.Question("victim.example", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Fatalf("answer %v, want only the matching reply 192.0.2.7", r.Answer)
	}
}

func TestFailoverSkipsDeadUpstream(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	for name, dead := range map[string]string{"refused": rt.DeadAddr(t), "silent": rt.Blackhole(t)} {
		t.Run(name, func(t *testing.T) {
			v := startVigil(t, []string{dead, up.Addr}, func(c *testConfig) { c.Upstream.Timeout = 200 * time.Millisecond })
			for i := range 5 {
				r := rt.Exchange(t, "udp", v.addr, rt.Question("n"+string(rune('a'+i))+".example", dns.TypeA))
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					t.Fatalf("query %d: rcode %s, want an answer from the live upstream", i, dns.RcodeToString[r.Rcode])
				}
			}
		})
	}
}

func TestParallelStrategy(t *testing.T) {
	slow := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(300 * time.Millisecond)
		rt.A("192.0.2.2", 60)(w, r)
	})
	fast := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	v := startVigil(t, []string{slow.Addr, fast.Addr}, func(c *testConfig) {
		c.Upstream.Strategy = resolver.StrategyParallel
		c.Cache.Enabled = false
	})
	start := time.Now()
	r := rt.Exchange(t, "udp", v.addr, rt.Question("race.example", dns.TypeA))
	if got := r.Answer[0].(*dns.A).A.String(); got != "192.0.2.1" {
		t.Errorf("answer %s, want the fast upstream's 192.0.2.1", got)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("took %s: the race should not wait for the slow upstream", d)
	}
}

func TestAllUpstreamsDeadServfailWithinTimeout(t *testing.T) {
	v := startVigil(t, []string{rt.Blackhole(t), rt.Blackhole(t), rt.DeadAddr(t)}, func(c *testConfig) {
		c.Upstream.Timeout = 200 * time.Millisecond
		c.Server.QueryTimeout = time.Second
	})
	start := time.Now()
	q := rt.Question("down.example", dns.TypeA)
	q.SetEdns0(1232, false)
	r := rt.Exchange(t, "udp", v.addr, q)
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("SERVFAIL after %s, want within the 1s query timeout", d)
	}
	var ede *dns.EDNS0_EDE
	for _, o := range r.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			ede = e
		}
	}
	if ede == nil {
		t.Error("SERVFAIL without an Extended DNS Error")
	}
}

func TestAccessListRefuses(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) {
		c.Server.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	r := rt.Exchange(t, "udp", v.addr, rt.Question("example.com", dns.TypeA))
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("udp: rcode %s, want REFUSED for a client outside allow", dns.RcodeToString[r.Rcode])
	}
	// Over TCP the connection is closed at accept: it must not hold one of
	// the connection slots just to be refused.
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if r, _, err := c.Exchange(rt.Question("example.com", dns.TypeA), v.addr); err == nil {
		t.Errorf("tcp: answered (%s), want the connection closed for a client outside allow", dns.RcodeToString[r.Rcode])
	}
	if up.Queries() != 0 {
		t.Error("a refused query reached the upstream")
	}
}

func TestCoalescesIdenticalMisses(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		calls.Add(1)
		<-release
		rt.A("192.0.2.1", 60)(w, r)
	})
	v := startVigil(t, []string{up.Addr}, func(c *testConfig) { c.Upstream.Timeout = 3 * time.Second })
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rt.Exchange(t, "udp", v.addr, rt.Question("popular.example", dns.TypeA))
			if len(r.Answer) != 1 {
				t.Errorf("got %d answers", len(r.Answer))
			}
		}()
	}
	// Let the ten queries arrive and wait on the one upstream call.
	deadline := time.Now().Add(3 * time.Second)
	for v.chain.Cache.Stats().Coalesced < 9 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("upstream called %d times for 10 identical concurrent queries, want 1", n)
	}
}

// TestMalformedPackets sends hostile bytes and checks each gets the right
// kind of reply (or none), and that the server still answers afterwards.
func TestMalformedPackets(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	valid, _ := rt.Question("ok.example", dns.TypeA).Pack()
	withFlags := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	cases := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no reply expected
	}{
		{"empty", nil, -1},
		{"short header", []byte{1, 2, 3, 4, 5}, -1},
		{"response bit", withFlags(valid, func(b []byte) { b[2] |= 0x80 }), -1},
		{"opcode notify", withFlags(valid, func(b []byte) { b[2] = b[2]&^0x78 | 4<<3 }), dns.RcodeNotImplemented},
		{"header only", valid[:12], dns.RcodeFormatError},
		{"truncated question", valid[:len(valid)-3], dns.RcodeFormatError},
		{"two questions claimed", withFlags(valid, func(b []byte) { b[5] = 2 }), dns.RcodeFormatError},
		{"zero questions", withFlags(valid[:12], func(b []byte) { b[5] = 0 }), dns.RcodeFormatError},
		{"pointer loop", append(withFlags(valid[:12], func(b []byte) { b[5] = 1 }), 0xc0, 0x0c, 0, 1, 0, 1), dns.RcodeFormatError},
		{"label too long", append(withFlags(valid[:12], func(b []byte) { b[5] = 1 }), append([]byte{70}, make([]byte, 75)...)...), dns.RcodeFormatError},
	}
	conn, err := net.Dial("udp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Write(tc.pkt); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := conn.Read(buf)
			if tc.rcode < 0 {
				if err == nil {
					t.Fatalf("got a %d-byte reply, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if r.Rcode != tc.rcode || !r.Response {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
	r := rt.Exchange(t, "udp", v.addr, rt.Question("still.example", dns.TypeA))
	if len(r.Answer) != 1 {
		t.Error("server stopped answering after malformed packets")
	}
	if st := v.srv.Stats(); st.Panics != 0 {
		t.Errorf("%d panics recovered", st.Panics)
	}
}

func TestBadEDNSVersion(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	q := rt.Question("example.com", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	r := rt.Exchange(t, "udp", v.addr, q)
	if r.Rcode != dns.RcodeBadVers {
		t.Errorf("rcode %s, want BADVERS", dns.RcodeToString[r.Rcode])
	}
}

func TestTCPPipelining(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Name == "slow.example." {
			time.Sleep(200 * time.Millisecond)
		}
		rt.A("192.0.2.1", 60)(w, r)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	conn, err := dns.Dial("tcp", v.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	slow, fast := rt.Question("slow.example", dns.TypeA), rt.Question("fast.example", dns.TypeA)
	for _, m := range []*dns.Msg{slow, fast} {
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	first, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	second, err := conn.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if first.Id != fast.Id || second.Id != slow.Id {
		t.Errorf("answers in order %d, %d; want the fast one (%d) before the slow one (%d)", first.Id, second.Id, fast.Id, slow.Id)
	}
}

func TestGracefulShutdownFinishesInflight(t *testing.T) {
	up := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(300 * time.Millisecond)
		rt.A("192.0.2.1", 60)(w, r)
	})
	v := startVigil(t, []string{up.Addr}, nil)
	got := make(chan *dns.Msg, 1)
	go func() {
		c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
		r, _, _ := c.Exchange(rt.Question("inflight.example", dns.TypeA), v.addr)
		got <- r
	}()
	for up.Queries() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := v.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r == nil || len(r.Answer) != 1 {
		t.Fatalf("in-flight query got %v, want its answer", r)
	}
}

// A reload that changes the access list applies at the next query, also on
// a UDP reader that remembered the old list's answer for the client.
func TestAccessListReloadReachesEveryReader(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	v := startVigil(t, []string{up.Addr}, nil)
	for range 4 { // each reader answers 127.0.0.1 at least once, most likely
		if r := rt.Exchange(t, "udp", v.addr, rt.Question("example.com", dns.TypeA)); r.Rcode != dns.RcodeSuccess {
			t.Fatalf("rcode %s before the reload", dns.RcodeToString[r.Rcode])
		}
	}
	v.srv.Reconfigure([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, nil, nil, false)
	for i := range 4 {
		if r := rt.Exchange(t, "udp", v.addr, rt.Question("example.com", dns.TypeA)); r.Rcode != dns.RcodeRefused {
			t.Errorf("query %d after the reload: rcode %s, want REFUSED", i, dns.RcodeToString[r.Rcode])
		}
	}
	v.srv.Reconfigure([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil, nil, false)
	if r := rt.Exchange(t, "udp", v.addr, rt.Question("example.com", dns.TypeA)); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after allowing loopback again: rcode %s", dns.RcodeToString[r.Rcode])
	}
}
