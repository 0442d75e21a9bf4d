package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store/querylog"
)

// benchServer builds a Server around the full chain (cache + forwarder to a
// stub upstream on 127.0.0.1) without listening: the benchmarks drive its
// packet path, answer, directly, which is what every UDP worker runs.
func benchServer(b *testing.B, cache bool) *Server {
	b.Helper()
	up := rt.NewUpstream(b, rt.A("192.0.2.1", 3600))
	ucfg := DefaultUpstreamConfig()
	ucfg.Servers = MustParseUpstreams(up.Addr)
	ucfg.Strategy = StrategyFailover
	ccfg := DefaultCacheConfig()
	ccfg.Enabled = cache
	scfg := DefaultServerConfig()
	for _, v := range []interface{ Validate() error }{&ucfg, &ccfg, &scfg} {
		if err := v.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	chain, err := NewChain(ChainConfig{Upstream: ucfg, Cache: ccfg})
	if err != nil {
		b.Fatal(err)
	}
	return NewServer(scfg, ServerDeps{Chain: chain, Log: zap.NewNop()})
}

func packQuery(b *testing.B, name string) []byte {
	m := rt.Question(name, dns.TypeA)
	m.SetEdns0(1232, false)
	p, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkAnswerCacheHit is one cached query through the whole packet
// path: parse, access list, chain (cache hit), pack.
func BenchmarkAnswerCacheHit(b *testing.B) {
	s := benchServer(b, true)
	client := netip.MustParseAddr("127.0.0.1")
	pkt := packQuery(b, "www.example.com")
	out := make([]byte, 0, 2048)
	if r := s.answer(pkt, client, ProtoUDP, out, nil); r == nil {
		b.Fatal("no answer")
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.answer(pkt, client, ProtoUDP, out, nil)
		}
	})
	b.Run("fast", func(b *testing.B) {
		rb := newReaderBufs(0, nil)
		var pre prepared
		if _, ok := s.prepare(pkt, client, ProtoUDP, out, rb, &pre); !ok {
			b.Fatal("fast path declined a plain cache hit")
		}
		b.ReportAllocs()
		for b.Loop() {
			s.prepare(pkt, client, ProtoUDP, out, rb, &pre)
		}
	})
}

// BenchmarkAnswerCacheMiss is one uncached query through the whole path a
// UDP query takes (prepare, then the chain), including the UDP round trip
// to a stub upstream on loopback.
func BenchmarkAnswerCacheMiss(b *testing.B) {
	s := benchServer(b, true)
	client := netip.MustParseAddr("127.0.0.1")
	pkts := make([][]byte, 0, 1<<16)
	for i := range cap(pkts) {
		pkts = append(pkts, packQuery(b, "n"+strconv.Itoa(i)+".example.com"))
	}
	out := make([]byte, 0, 2048)
	rb := newReaderBufs(0, nil)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			// Start over with a cold cache so every query stays a miss.
			b.StopTimer()
			s = benchServer(b, true)
			i = 0
			b.StartTimer()
		}
		s.respond(pkts[i], client, ProtoUDP, out, rb)
		i++
	}
}

// BenchmarkCacheHitParallel measures cache-hit scaling across cores: the
// shards' read locks are the only shared state.
func BenchmarkCacheHitParallel(b *testing.B) {
	s := benchServer(b, true)
	client := netip.MustParseAddr("127.0.0.1")
	var pkts [][]byte
	for i := range 1024 {
		p := packQuery(b, "h"+strconv.Itoa(i)+".example.com")
		s.answer(p, client, ProtoUDP, nil, nil)
		pkts = append(pkts, p)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]byte, 0, 2048)
		i := 0
		for pb.Next() {
			s.answer(pkts[i&1023], client, ProtoUDP, out, nil)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "qps")
}

// blockingServer is benchServer with a blocklist in front and, when
// recorder is non-nil, the per-client log recording every blocked lookup.
func blockingServer(b *testing.B, recorder Recorder) *Server {
	b.Helper()
	s := benchServer(b, true)
	bl := blocklists.NewBuilder()
	idx, _ := bl.AddList(blocklists.ListInfo{Name: "xiaomi", Vendor: "Xiaomi"})
	bl.Add(idx, blocklists.Rule{Name: "xiaomi.example", Suffix: true})
	m, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	lists := &fixedLists{set: &blocklists.Set{Matcher: m}}
	s.blocker = NewBlocker(lists, DefaultBlockingConfig(), nil, s.handler)
	s.handler = s.blocker
	s.recorder = recorder
	return s
}

type fixedLists struct{ set *blocklists.Set }

func (f *fixedLists) Current() *blocklists.Set { return f.set }

// BenchmarkAnswerBlocked measures a blocked query through the whole packet
// path, without and with the per-client log (a real Badger store with its
// writer running): the difference is what logging costs per query.
func BenchmarkAnswerBlocked(b *testing.B) {
	client := netip.MustParseAddr("127.0.0.1")
	pkt := packQuery(b, "telemetry.xiaomi.example")
	for _, logging := range []bool{false, true} {
		name := "log=off"
		if logging {
			name = "log=on"
		}
		b.Run(name, func(b *testing.B) {
			var rec Recorder
			if logging {
				qcfg := querylog.DefaultConfig()
				qcfg.LogLines = false
				q, err := querylog.Open(b.TempDir(), qcfg, zap.NewNop())
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				go q.Run(ctx)
				b.Cleanup(func() {
					cancel()
					<-q.Done()
					b.ReportMetric(float64(q.Stats().Dropped)/float64(b.N), "dropped/op")
					q.Close()
				})
				rec = q
			}
			s := blockingServer(b, rec)
			out := make([]byte, 0, 2048)
			b.ReportAllocs()
			for b.Loop() {
				s.answer(pkt, client, ProtoUDP, out, nil)
			}
		})
	}
}

// BenchmarkFastPathParallel is the scaling figure: the path the UDP
// readers run for cache hits and blocked names, on every core at once.
// Run with -cpu 1,2 (or more): with no shared lock on the path, qps grows
// with the cores.
func BenchmarkFastPathParallel(b *testing.B) {
	benchFastPath(b, blockingServer(b, nil))
}

// BenchmarkFastPathLocalLoaded is BenchmarkFastPathParallel with 10,000
// local records (and their PTRs) and 5,000 learned devices (the client is
// one no [[clients]] entry names, so every query asks them): what a big
// household or office network's identity and local names cost per query.
func BenchmarkFastPathLocalLoaded(b *testing.B) {
	s := blockingServer(b, nil)
	var recs []string
	for i := range 10000 {
		recs = append(recs, "host"+strconv.Itoa(i)+".lan. 300 IN A 10.0."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256))
	}
	t, err := NewRecordSources(NetworkConfig{Records: recs, SynthesizePTR: true}).Load()
	if err != nil {
		b.Fatal(err)
	}
	s.local.SetRecords(t)
	var leases strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&leases, "%d 02:00:00:00:%02x:%02x 192.168.%d.%d device-%d *\n", time.Now().Add(time.Hour).Unix(), i/256, i%256, i/256, i%256, i)
	}
	path := filepath.Join(b.TempDir(), "leases")
	if err := os.WriteFile(path, []byte(leases.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	w := neighbors.NewWatcher(neighbors.Config{LeaseFiles: []string{path}}, zap.NewNop())
	w.Refresh()
	if name, _ := w.Lookup(netip.MustParseAddr("192.168.19.135")); name != "device-4999" {
		b.Fatalf("the lease table did not load: %q", name)
	}
	s.Reconfigure(DefaultServerConfig().Allow, NewClients(nil, IdentifyConfig{}).Learning(w), nil, false)
	benchFastPath(b, s)
}

func benchFastPath(b *testing.B, s *Server) {
	client := netip.MustParseAddr("127.0.0.1")
	var hits, blocked, hits16k [][]byte
	for i := range 1024 {
		p := packQuery(b, "h"+strconv.Itoa(i)+".example.com")
		s.answer(p, client, ProtoUDP, nil, nil)
		hits = append(hits, p)
		blocked = append(blocked, packQuery(b, "t"+strconv.Itoa(i)+".xiaomi.example"))
	}
	// A cache of 16,384 names: 64 per shard, where the shards' tables
	// show how far a lookup probes.
	for i := range 16384 {
		p := packQuery(b, "k"+strconv.Itoa(i)+".example.com")
		s.answer(p, client, ProtoUDP, nil, nil)
		hits16k = append(hits16k, p)
	}
	for _, bc := range []struct {
		name  string
		pkts  [][]byte
		batch int // queries per reader batch (one clock read each); 0: a clock read per query
	}{{"hit", hits, 0}, {"blocked", blocked, 0}, {"hit-batch16", hits, 16}, {"blocked-batch16", blocked, 16}, {"hit16k-batch16", hits16k, 16}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			var stripes atomic.Int32
			b.RunParallel(func(pb *testing.PB) {
				out := make([]byte, 0, 2048)
				// A stripe per goroutine, as each UDP reader has, and
				// each its own place in the names: different clients ask
				// different names at once.
				stripe := int(stripes.Add(1))
				rb := newReaderBufs(stripe, nil)
				var pre prepared
				i := stripe * 331
				for pb.Next() {
					if bc.batch > 0 && i%bc.batch == 0 {
						rb.batchAt = time.Now() // as the UDP reader does per recvmmsg
					}
					if _, ok := s.prepare(bc.pkts[i&(len(bc.pkts)-1)], client, ProtoUDP, out, rb, &pre); !ok {
						b.Error("fast path declined")
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "qps")
		})
	}
}

// BenchmarkFastPathGroups is BenchmarkFastPathParallel with [[groups]]:
// sixteen lists (the blocked names in one of them), a named client, and
// no, one or sixteen groups, the client a member of several by address,
// prefix and name. A blocked name then costs its groups' list set; a
// cached one, whose name no rule hits, costs nothing more.
func BenchmarkFastPathGroups(b *testing.B) {
	for _, n := range []int{0, 1, 16} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			s := benchServer(b, true)
			bl := blocklists.NewBuilder()
			var names []string
			for i := range 16 {
				name := fmt.Sprintf("list%d", i)
				idx, _ := bl.AddList(blocklists.ListInfo{Name: name, Vendor: "V"})
				names = append(names, name)
				bl.Add(idx, blocklists.Rule{Name: fmt.Sprintf("vendor%d.example", i), Suffix: true})
				if i == 7 {
					bl.Add(idx, blocklists.Rule{Name: "xiaomi.example", Suffix: true})
				}
			}
			m, err := bl.Build()
			if err != nil {
				b.Fatal(err)
			}
			s.blocker = NewBlocker(&fixedLists{set: &blocklists.Set{Matcher: m}}, DefaultBlockingConfig(), nil, s.handler)
			s.handler = s.blocker
			var cfgs []groups.Config
			for i := range n {
				c := groups.Config{Name: fmt.Sprintf("g%d", i), Lists: names[i%16 : i%16+1]}
				switch i % 4 {
				case 0:
					c.Clients = []string{"127.0.0.1"}
				case 1:
					c.Clients = []string{"127.0.0.0/8"}
				case 2:
					c.Clients = []string{"host:bench"}
				default:
					c.Clients = []string{"10.0.0.0/8"}
				}
				if i == 0 {
					c.Lists = names[7:8] // the group that blocks the names asked
				}
				cfgs = append(cfgs, c)
			}
			if err := groups.Validate(cfgs, groups.Known{Lists: names}); err != nil {
				b.Fatal(err)
			}
			s.blocker.SetGroups(groups.New(cfgs, nil))
			s.Reconfigure(DefaultServerConfig().Allow, NewClients([]ClientConfig{{Name: "bench", Addresses: MustParseAddrOrPrefixes("127.0.0.1")}}, IdentifyConfig{}), nil, false)
			benchFastPath(b, s)
		})
	}
}
