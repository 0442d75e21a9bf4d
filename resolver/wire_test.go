package resolver

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// variedUpstream answers with a different shape of answer depending on the
// first label: several addresses, a CNAME chain, NXDOMAIN, NODATA, a big
// answer, authority and additional records.
func variedUpstream(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = strings.HasPrefix(r.Question[0].Name, "aa")
	m.AuthenticatedData = strings.HasPrefix(r.Question[0].Name, "ad")
	m.Zero = strings.HasPrefix(r.Question[0].Name, "zbit") // a non-conforming upstream
	q := r.Question[0]
	name := q.Name
	hdr := func(n string, t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: n, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	switch label := strings.ToLower(strings.SplitN(name, ".", 2)[0]); {
	case label == "nx":
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, rt.SOA("example.", 300))
	case label == "nodata":
		m.Ns = append(m.Ns, rt.SOA("example.", 120))
	case label == "cname":
		m.Answer = append(m.Answer,
			&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME, 600), Target: "Edge.CDN.example."},
			&dns.CNAME{Hdr: hdr("Edge.CDN.example.", dns.TypeCNAME, 60), Target: "a1.cdn.example."},
			&dns.A{Hdr: hdr("a1.cdn.example.", dns.TypeA, 30), A: net.IPv4(192, 0, 2, 9)})
	case label == "big":
		for i := range 100 {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA, 300), A: net.IPv4(198, 51, 100, byte(i))})
		}
	default:
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA, 3600), A: net.IPv4(192, 0, 2, 1)},
				&dns.A{Hdr: hdr(name, dns.TypeA, 1800), A: net.IPv4(192, 0, 2, 2)})
			m.Ns = append(m.Ns, &dns.NS{Hdr: hdr("example.", dns.TypeNS, 7200), Ns: "ns1.example."})
			m.Extra = append(m.Extra, &dns.A{Hdr: hdr("ns1.example.", dns.TypeA, 7200), A: net.IPv4(192, 0, 2, 53)})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, 900), AAAA: net.ParseIP("2001:db8::1")})
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(name, dns.TypeTXT, 90), Txt: []string{"v=spf1 -all", strings.Repeat("x", 200)}})
		}
	}
	_ = w.WriteMsg(m)
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// fastTestServer is a Server over the full chain with a cache on a test
// clock and a small list, not listening: tests drive answer and prepare.
func fastTestServer(t testing.TB) (*Server, *testClock) {
	up := rt.NewUpstream(t, variedUpstream)
	ucfg := DefaultUpstreamConfig()
	ucfg.Servers = MustParseUpstreams(up.Addr)
	ucfg.Strategy = StrategyFailover
	scfg := DefaultServerConfig()
	ccfg := DefaultCacheConfig()
	for _, v := range []interface{ Validate() error }{&ucfg, &scfg, &ccfg} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	b := blocklists.NewBuilder()
	idx, _ := b.AddList(blocklists.ListInfo{Name: "l", Vendor: "V"})
	b.Add(idx, blocklists.Rule{Name: "blocked.example", Suffix: true})
	b.Add(idx, blocklists.Rule{Name: "a1.cdn.example"})
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	lists := &fixedLists{set: &blocklists.Set{Matcher: m}}
	chain, err := NewChain(ChainConfig{Upstream: ucfg, Cache: ccfg, Blocking: DefaultBlockingConfig(), Lists: lists, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(scfg, ServerDeps{Chain: chain, Log: zap.NewNop()}), clock
}

type request struct {
	name      string
	qtype     uint16
	edns      bool
	do, cd    bool
	rd        bool
	ad        bool   // the AD bit in the request (RFC 6840 section 5.7)
	class     uint16 // the question's class; 0 means IN
	udpSize   uint16
	withOpt   bool // an EDNS option (a cookie) in the request
	wantFast  bool
	transport Proto
}

func (r request) pack(t testing.TB, id uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(r.name, r.qtype)
	m.Id = id
	m.RecursionDesired = r.rd
	m.CheckingDisabled = r.cd
	m.AuthenticatedData = r.ad
	if r.class != 0 {
		m.Question[0].Qclass = r.class
	}
	if r.edns {
		m.SetEdns0(r.udpSize, r.do)
		if r.withOpt {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpack(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m
}

// TestFastPathMatchesFullPath warms the cache with many shapes of answer,
// ages it, and checks that wherever the fast path answers, its reply is the
// full path's reply, field for field; and that it declines where it must.
func TestFastPathMatchesFullPath(t *testing.T) {
	s, clock := fastTestServer(t)
	client := netip.MustParseAddr("127.0.0.1")
	reqs := []request{
		{name: "www.example.", qtype: dns.TypeA, rd: true, wantFast: true},
		{name: "WwW.ExAmPlE.", qtype: dns.TypeA, rd: true, wantFast: true},
		{name: "www.example.", qtype: dns.TypeA, rd: false, wantFast: true},
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, rd: true, wantFast: true},
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 4096, do: true, rd: true, wantFast: true},
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, cd: true, rd: true, wantFast: true},
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, withOpt: true, rd: true, wantFast: true},
		{name: "www.example.", qtype: dns.TypeAAAA, rd: true, wantFast: true},
		{name: "txt.example.", qtype: dns.TypeTXT, rd: true, wantFast: true},
		{name: "aa.example.", qtype: dns.TypeA, rd: true, wantFast: true},
		{name: "ad.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, rd: true, wantFast: true},           // AD cached, not shown
		{name: "ad.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, ad: true, rd: true, wantFast: true}, // shown: asked with AD
		{name: "ad.example.", qtype: dns.TypeA, ad: true, rd: true, wantFast: true},
		{name: "ad.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, do: true, wantFast: true}, // shown: asked with DO
		{name: "x.blocked.example.", qtype: dns.TypeA, ad: true, rd: true, wantFast: true},           // a local answer: never AD
		{name: "www.example.", qtype: dns.TypeAXFR, rd: true, wantFast: false},                       // REFUSED by Local
		{name: "www.example.", qtype: dns.TypeA, class: dns.ClassCHAOS, rd: true, wantFast: false},   // REFUSED by Local
		{name: "version.bind.", qtype: dns.TypeTXT, class: dns.ClassCHAOS, wantFast: false},          // REFUSED by Local
		{name: "x.blocked.example.", qtype: dns.TypeA, class: dns.ClassANY, wantFast: false},         // NOTIMP by Local, not blocked
		{name: "nx.example.", qtype: dns.TypeA, rd: true, wantFast: true},
		{name: "nodata.example.", qtype: dns.TypeMX, rd: true, wantFast: true},
		{name: "big.example.", qtype: dns.TypeA, rd: true, wantFast: false},                                    // needs truncation
		{name: "big.example.", qtype: dns.TypeA, edns: true, udpSize: 4096, rd: true, wantFast: false},         // still over 1232
		{name: "big.example.", qtype: dns.TypeA, rd: true, transport: ProtoTCP, wantFast: true},                // no limit on TCP
		{name: "cname.example.", qtype: dns.TypeA, rd: true, wantFast: false},                                  // CNAME to a listed name
		{name: "x.blocked.example.", qtype: dns.TypeA, rd: true, wantFast: true},                               // listed: built from the request
		{name: "X.Blocked.Example.", qtype: dns.TypeAAAA, edns: true, udpSize: 1232, do: true, wantFast: true}, // with the EDE
		{name: "a1.cdn.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, cd: true, rd: true, wantFast: true},
		{name: "x.blocked.example.", qtype: dns.TypeTXT, rd: true, wantFast: false},                            // NODATA with an SOA: the full path
		{name: "under_score.example.", qtype: dns.TypeA, rd: true, wantFast: true},                             // legal in the fast path
		{name: `we\.ird.example.`, qtype: dns.TypeA, rd: true, wantFast: false},                                // an escaped dot
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 100, rd: true, wantFast: true},           // tiny EDNS size means 512
		{name: "nx.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, do: true, cd: true, wantFast: true}, // flags on a negative answer
	}
	rb := newReaderBufs(0, nil)
	out := make([]byte, 0, 4096)
	// Warm the cache through the full path.
	for i, r := range reqs {
		proto := r.transport
		if proto == 0 {
			proto = ProtoUDP
		}
		if s.answer(r.pack(t, uint16(i)), client, proto, nil, nil) == nil {
			t.Fatalf("%s: no answer", r.name)
		}
	}
	for _, age := range []time.Duration{0, 17 * time.Second, 25 * time.Minute} {
		clock.mu.Lock()
		clock.now = clock.now.Add(age)
		clock.mu.Unlock()
		for i, r := range reqs {
			proto := r.transport
			if proto == 0 {
				proto = ProtoUDP
			}
			pkt := r.pack(t, uint16(1000+i))
			var pre prepared
			fast, ok := s.prepare(pkt, client, proto, out, rb, &pre)
			if !ok && r.wantFast && age > 0 && !strings.Contains(strings.ToLower(r.name), "blocked") && !strings.HasPrefix(r.name, "a1.") {
				// Expired: the full path refreshes it, then it is fast again.
				s.answer(pkt, client, proto, nil, nil)
				fast, ok = s.prepare(pkt, client, proto, out, rb, &pre)
			}
			if ok != r.wantFast {
				t.Errorf("%s %s (age %s): fast path ok=%v, want %v", r.name, dns.TypeToString[r.qtype], age, ok, r.wantFast)
				continue
			}
			if !ok {
				// What prepare hands on must not change the chain's answer.
				withPre := unpack(t, s.answer(pkt, client, proto, nil, &pre))
				if want := unpack(t, s.answer(pkt, client, proto, nil, nil)); !sameAnswer(withPre, want) {
					t.Errorf("%s %s (age %s): with prepare's parse and verdict:\n%s\nunpacked:\n%s", r.name, dns.TypeToString[r.qtype], age, withPre, want)
				}
				continue
			}
			got := unpack(t, fast)
			want := unpack(t, s.answer(pkt, client, proto, nil, nil))
			if !sameAnswer(got, want) {
				t.Errorf("%s %s (age %s):\nfast:\n%s\nfull:\n%s", r.name, dns.TypeToString[r.qtype], age, got, want)
			}
		}
	}
}

// FuzzFastPath feeds arbitrary bytes to the packet path with a warm cache:
// it must never panic; whatever prepare answers packed must parse and equal
// the chain's answer; and what prepare hands to the chain must not change
// the chain's answer. It runs on a server whose cache was warmed while
// Local answered nothing and on one whose cache was restored from it, each
// before and after a reload turns Local's answers on, so a cached answer
// to a name Local now answers is caught.
func FuzzFastPath(f *testing.F) {
	s, _ := fastTestServer(f)
	client := netip.MustParseAddr("127.0.0.1")
	seeds := []request{
		{name: "www.example.", qtype: dns.TypeA, rd: true},
		{name: "www.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, do: true},
		{name: "nx.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, withOpt: true},
		{name: "txt.example.", qtype: dns.TypeTXT},
		{name: "ad.example.", qtype: dns.TypeA},
		{name: "ad.example.", qtype: dns.TypeA, ad: true, edns: true, udpSize: 1232},
		{name: "www.example.", qtype: dns.TypeIXFR},
		{name: "version.bind.", qtype: dns.TypeTXT, class: dns.ClassCHAOS},
		{name: "x.blocked.example.", qtype: dns.TypeA, class: dns.ClassHESIOD, edns: true, udpSize: 1232},
		{name: "X.blocked.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, do: true},
		{name: "a1.cdn.example.", qtype: dns.TypeAAAA},
		{name: "mask.icloud.com.", qtype: dns.TypeA, rd: true},
		{name: "Health.Vigil.", qtype: dns.TypeA, edns: true, udpSize: 1232},
		{name: "_dns.resolver.arpa.", qtype: dns.TypeA},
	}
	none := LocalConfig{}
	all := LocalConfig{BlockBypass: true, HealthName: "health.vigil.", ChaosIdentity: "vigil"}
	s.local.Reconfigure(none)
	for i, r := range seeds {
		pkt := r.pack(f, uint16(i))
		s.answer(pkt, client, ProtoUDP, nil, nil)
		f.Add(pkt)
	}
	restored, _ := fastTestServer(f)
	if _, err := restored.cache.Restore(s.cache.Snapshot()); err != nil {
		f.Fatal(err)
	}
	rb := newReaderBufs(0, nil)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, srv := range []*Server{s, restored} {
			for _, lc := range []LocalConfig{none, all} {
				srv.local.Reconfigure(lc)
				checkPacketPath(t, srv, pkt, client, rb)
			}
		}
	})
}

// checkPacketPath holds prepare's packed answer, or the chain's answer
// with what prepare handed on, to the chain's answer from the unpacked
// request.
func checkPacketPath(t *testing.T, s *Server, pkt []byte, client netip.Addr, rb *readerBufs) {
	t.Helper()
	var pre prepared
	fast, ok := s.prepare(pkt, client, ProtoUDP, nil, rb, &pre)
	if !ok {
		if !pre.parsed && !pre.judged {
			return
		}
		fast = s.answer(pkt, client, ProtoUDP, nil, &pre)
	}
	if fast == nil {
		t.Fatal("no answer to a query prepare parsed")
	}
	got := unpack(t, fast)
	full := s.answer(pkt, client, ProtoUDP, nil, nil)
	if full == nil {
		t.Fatal("answered what the chain drops")
	}
	if want := unpack(t, full); !sameAnswer(got, want) {
		t.Fatalf("packed=%v:\n%s\nchain:\n%s", ok, got, want)
	}
}

// TestWireMsgMatchesUnpack checks that the request message built from
// parseWire's reading is the one miekg/dns unpacks, options aside.
func TestWireMsgMatchesUnpack(t *testing.T) {
	for i, r := range []request{
		{name: "www.example.", qtype: dns.TypeA, rd: true},
		{name: "WwW.ExAmPlE.", qtype: dns.TypeAAAA, cd: true},
		{name: "a_b-c.example.", qtype: dns.TypeTXT, edns: true, udpSize: 4096, do: true, withOpt: true},
		{name: ".", qtype: dns.TypeNS, edns: true, udpSize: 512},
	} {
		pkt := r.pack(t, uint16(i))
		var wq wireQuery
		_, ok := parseWire(pkt, make([]byte, 256), &wq)
		if !ok {
			t.Fatalf("%s: parseWire declined", r.name)
		}
		assertWireMsg(t, pkt, wq.msg(pkt))
	}
}

func assertWireMsg(t *testing.T, pkt []byte, got *dns.Msg) {
	t.Helper()
	want := new(dns.Msg)
	if err := want.Unpack(pkt); err != nil {
		t.Fatal(err)
	}
	if o := want.IsEdns0(); o != nil {
		o.Option = nil
		o.Hdr.Rdlength = 0
	}
	if got.String() != want.String() || got.MsgHdr != want.MsgHdr {
		t.Fatalf("built:\n%s\nunpacked:\n%s", got, want)
	}
}

// FuzzWireMsg: for whatever parseWire accepts, the built message is the
// unpacked one.
func FuzzWireMsg(f *testing.F) {
	f.Add(request{name: "x.example.", qtype: dns.TypeA, edns: true, udpSize: 1232, do: true, withOpt: true}.pack(f, 1))
	name := make([]byte, 256)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var wq wireQuery
		if _, ok := parseWire(pkt, name, &wq); ok {
			assertWireMsg(t, pkt, wq.msg(pkt))
		}
	})
}

// sameAnswer compares two replies field for field, except that record owner
// names are compared case-insensitively (RFC 4343): the cached bytes
// compress answer names against the question, so they take the client's
// spelling of it, where the full path repeats the spelling it cached.
func sameAnswer(a, b *dns.Msg) bool {
	if a.MsgHdr != b.MsgHdr || len(a.Question) != 1 || len(b.Question) != 1 || a.Question[0] != b.Question[0] {
		return false
	}
	sec := func(m *dns.Msg) string {
		var sb strings.Builder
		for _, rrs := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range rrs {
				sb.WriteString(strings.ToLower(rr.String()))
				sb.WriteByte('\n')
			}
			sb.WriteString("--\n")
		}
		return sb.String()
	}
	return sec(a) == sec(b)
}

// TestCacheSnapshotRestore saves a warm cache, restores it into a new one
// later, and checks answers come back with their TTLs counted down and
// expired entries gone, without asking upstream.
func TestCacheSnapshotRestore(t *testing.T) {
	s, clock := fastTestServer(t)
	client := netip.MustParseAddr("127.0.0.1")
	for i, r := range []request{{name: "www.example.", qtype: dns.TypeA, rd: true}, {name: "txt.example.", qtype: dns.TypeTXT, rd: true}} {
		s.answer(r.pack(t, uint16(i)), client, ProtoUDP, nil, nil)
	}
	snap := s.cache.Snapshot()

	s2, clock2 := fastTestServer(t)
	clock2.now = clock.now.Add(100 * time.Second) // TXT (TTL 90) has expired meanwhile
	n, err := s2.cache.Restore(snap)
	if err != nil || n != 1 {
		t.Fatalf("restored %d entries, %v; want 1 (the expired one skipped)", n, err)
	}
	pkt := request{name: "www.example.", qtype: dns.TypeA, rd: true}.pack(t, 7)
	out, ok := s2.prepare(pkt, client, ProtoUDP, nil, newReaderBufs(0, nil), new(prepared))
	if !ok {
		t.Fatal("restored entry not answered from the cache")
	}
	if got := unpack(t, out).Answer[0].Header().Ttl; got != 3600-100 {
		t.Errorf("TTL %d after restore, want %d", got, 3600-100)
	}
	if _, err := s2.cache.Restore([]byte("garbage")); err == nil {
		t.Error("garbage snapshot accepted")
	}
	// A clock that went back since the snapshot (a router booting without
	// a real-time clock): the entries look stored in the future, and would
	// look fresh for as long as the clock is behind. None is restored.
	s3, clock3 := fastTestServer(t)
	clock3.now = clock.now.Add(-24 * time.Hour)
	if n, err := s3.cache.Restore(snap); err != nil || n != 0 {
		t.Errorf("restored %d entries, %v, with the clock a day behind the snapshot; want none", n, err)
	}
}

// A UDP reader's batch time answers the batch's cache hits: the answer's
// TTL is aged to it, not to a clock read per query.
func TestPackedHitAtBatchTime(t *testing.T) {
	s, _ := fastTestServer(t)
	client := netip.MustParseAddr("127.0.0.1")
	pkt := request{name: "www.example.", qtype: dns.TypeA, rd: true}.pack(t, 1)
	s.answer(pkt, client, ProtoUDP, nil, nil)
	rb := newReaderBufs(0, nil)
	rb.batchAt = time.Now() // a test clock ignores it: entries stay on the test's clock
	out, ok := s.prepare(pkt, client, ProtoUDP, nil, rb, new(prepared))
	if !ok || unpack(t, out).Answer[0].Header().Ttl != 3600 {
		t.Fatalf("packed hit with a batch time on a test clock: %v", ok)
	}
	// On the real clock, the batch time is the answer's time.
	c := NewCache(DefaultCacheConfig(), nil)
	base := time.Now()
	if got, want := c.nowAt(base.Add(90*time.Second))-c.nowAt(base), int64(90*time.Second); got != want {
		t.Errorf("nowAt moves %d ns for 90 s, want %d", got, want)
	}
	if d := c.now() - time.Now().UnixNano(); d < -int64(time.Second) || d > int64(time.Second) {
		t.Errorf("the cache's clock is %d ns off the wall clock at start", d)
	}
}

// TestZeroBitCleared: an upstream that sets the header's Z bit does not
// pass it on, from the chain or from packed bytes (RFC 1035 section
// 4.1.1: zero in all responses).
func TestZeroBitCleared(t *testing.T) {
	s, _ := fastTestServer(t)
	client := netip.MustParseAddr("127.0.0.1")
	pkt := request{name: "zbit.example.", qtype: dns.TypeA, rd: true}.pack(t, 1)
	if full := unpack(t, s.answer(pkt, client, ProtoUDP, nil, nil)); full.Zero {
		t.Error("the chain's answer has Z set")
	}
	out, ok := s.prepare(pkt, client, ProtoUDP, nil, newReaderBufs(0, nil), new(prepared))
	if !ok {
		t.Fatal("no packed answer for a cached name")
	}
	if unpack(t, out).Zero {
		t.Error("the packed answer has Z set")
	}
}
