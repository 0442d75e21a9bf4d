package resolver

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cache.max_bytes must count what the entries really hold: fill a cache
// whose budget nothing reaches with 20,000 answers and compare the heap's
// growth with what the cache says it holds. (Counting only the wire bytes
// and name, it said 8.4 MB for 13.8 MB of heap.)
func TestCacheBytesMatchTheHeap(t *testing.T) {
	cfg := DefaultCacheConfig()
	cfg.MaxBytes = 256 << 20
	c := NewCache(cfg, nil)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	now := time.Now().UnixNano()
	// Build the answers first: only what the cache keeps may grow the heap.
	msgs := make([]*dns.Msg, 20_000)
	keys := make([]cacheKey, len(msgs))
	for i := range msgs {
		name := "host-" + strconv.Itoa(i) + ".example.com."
		m := answerOfA(name)
		if i%4 == 0 { // some answers behind a CNAME
			cn, _ := dns.NewRR(name + " 300 IN CNAME edge-" + strconv.Itoa(i) + ".cdn.example.net.")
			m.Answer = []dns.RR{cn, m.Answer[0]}
		}
		msgs[i], keys[i] = m, cacheKey{name: name, qtype: dns.TypeA, cls: dns.ClassINET}
	}
	before := heap()
	for i, m := range msgs {
		h := c.hashKey(keys[i])
		c.store(c.shardOf(h), h, keys[i], m, now)
	}
	grown := float64(heap() - before)
	st := c.Stats()
	if st.Entries != len(msgs) {
		t.Fatalf("%d entries cached, want %d", st.Entries, len(msgs))
	}
	ratio := grown / float64(st.Bytes)
	t.Logf("heap grew %.0f bytes, cache counts %d (%.0f per entry): ratio %.2f", grown, st.Bytes, float64(st.Bytes)/float64(st.Entries), ratio)
	if ratio < 0.75 || ratio > 1.25 {
		t.Errorf("the heap grew %.2f times what the cache counts", ratio)
	}
	runtime.KeepAlive(msgs)
}

// answerOfA is an upstream's answer for name: one A record, 192.0.2.1,
// 300 s.
func answerOfA(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response = true
	rr, _ := dns.NewRR(name + " 300 IN A 192.0.2.1")
	m.Answer = []dns.RR{rr}
	return m
}
