package resolver

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func newTestShard() *cacheShard {
	sh := &cacheShard{flights: map[uint64]*flight{}, budget: 1 << 30}
	sh.table.Store(newEntryTable(8))
	return sh
}

// The lock-free table against a map, through inserts, replacements,
// removals and the rehashes they cause. Hashes share their low bits in
// groups, so probe sequences run into each other and over tombstones.
func TestEntryTableAgainstMap(t *testing.T) {
	sh := newTestShard()
	ref := map[uint64]*cacheEntry{}
	rng := rand.New(rand.NewPCG(1, 2))
	hashOf := func() uint64 { return uint64(rng.IntN(64))<<32 | uint64(rng.IntN(4)) }
	for step := range 20_000 {
		switch op := rng.IntN(10); {
		case op < 6: // insert or replace
			e := &cacheEntry{hash: hashOf(), key: cacheKey{name: strconv.Itoa(step)}}
			old := sh.put(e)
			if old != ref[e.hash] {
				t.Fatalf("step %d: put %x replaced %v, want %v", step, e.hash, old, ref[e.hash])
			}
			ref[e.hash] = e
		default: // remove one at random, as evict does
			tab := sh.table.Load()
			i := rng.Uint64() & tab.mask
			if e := tab.slots[i].Load(); e != nil && e != tombstone {
				sh.remove(tab, i)
				delete(ref, e.hash)
			}
		}
		if sh.live != len(ref) {
			t.Fatalf("step %d: %d live, want %d", step, sh.live, len(ref))
		}
		if step%100 == 0 {
			for h := range uint64(64) {
				for lo := range uint64(4) {
					k := h<<32 | lo
					if got := sh.get(k); got != ref[k] {
						t.Fatalf("step %d: get(%x) = %v, want %v", step, k, got, ref[k])
					}
				}
			}
		}
	}
	n := 0
	sh.each(func(e *cacheEntry) {
		n++
		if ref[e.hash] != e {
			t.Errorf("each gave %x, not in the reference", e.hash)
		}
	})
	if n != len(ref) {
		t.Errorf("each gave %d entries, want %d", n, len(ref))
	}
}

// Readers without a lock, while a writer inserts, evicts and rehashes:
// a reader gets either nothing or an entry stored under the hash it asked
// for, never another (run with -race).
func TestEntryTableConcurrentReaders(t *testing.T) {
	sh := newTestShard()
	sh.budget = 300 * (&cacheEntry{key: cacheKey{name: "1000"}}).size() // some 300 entries: evictions all the time
	stop := make(chan struct{})
	var reads, found atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := rng.Uint64N(2000)
				if e := sh.get(h); e != nil {
					if e.hash != h || e.key.name != strconv.FormatUint(h, 10) {
						t.Errorf("get(%d) returned the entry of %d (%q)", h, e.hash, e.key.name)
						return
					}
					found.Add(1)
				}
				reads.Add(1)
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		h := uint64(i*7919) % 2000
		e := &cacheEntry{hash: h, key: cacheKey{name: strconv.FormatUint(h, 10)}, expires: int64(i)}
		sh.mu.Lock()
		if sh.bytes+e.size() > sh.budget {
			sh.evict(e.size(), int64(i))
		}
		if old := sh.put(e); old != nil {
			sh.bytes -= old.size()
		}
		sh.bytes += e.size()
		sh.mu.Unlock()
	}
	close(stop)
	wg.Wait()
	if reads.Load() == 0 || found.Load() == 0 {
		t.Fatalf("%d reads, %d found: the test did not exercise the table", reads.Load(), found.Load())
	}
	t.Logf("%d reads, %d found", reads.Load(), found.Load())
}

// TestCacheProbesStayShort fills a cache through its real hash and
// sharding and measures how far each entry sits from the slot its hash
// starts at. When the shard and the slot were both chosen by the hash's
// low bits, every entry of a shard started at the same slot and a lookup
// walked the whole shard (mean distance ~20 with 10,000 entries).
func TestCacheProbesStayShort(t *testing.T) {
	cfg := DefaultCacheConfig()
	cfg.MaxBytes = 256 << 20
	c := NewCache(cfg, nil)
	now := time.Now().UnixNano()
	const n = 10_000
	for i := range n {
		name := "probe-" + strconv.Itoa(i) + ".example."
		m := answerOfA(name)
		k := cacheKey{name: name, qtype: dns.TypeA, cls: dns.ClassINET}
		h := c.hashKey(k)
		c.store(c.shardOf(h), h, k, m, now)
	}
	total, most, entries := 0, 0, 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		tab := sh.table.Load()
		for j := range tab.slots {
			e := tab.slots[j].Load()
			if e == nil || e == tombstone {
				continue
			}
			d := int((uint64(j) - e.hash) & tab.mask)
			total += d
			most = max(most, d)
			entries++
		}
		sh.mu.Unlock()
	}
	if entries != n {
		t.Fatalf("%d entries in the tables, want %d", entries, n)
	}
	if mean := float64(total) / float64(entries); mean > 1.5 || most > 32 {
		t.Errorf("entries sit %.2f slots from their start on average, %d at most; want under 1.5 and 32", mean, most)
	}
}
