package resolver

import (
	"math/rand/v2"
	"sync/atomic"
)

// entryTable holds a cache shard's answers by key hash: open addressing
// (linear probing) over atomic pointers, so that a lookup only loads
// memory and never writes it. With a read-write mutex per shard every
// cache hit wrote the lock's reader count, and that cache line moved
// between cores on most hits: the fast path scaled 1.5x from one core to
// two for hits against 2.0x for blocked names, which touch nothing
// shared. Writers (insert, evict, rehash) hold the shard's mutex; readers
// hold nothing. Entries are immutable, so a reader that loaded one keeps
// a valid answer whatever writers do next, and a reader still probing a
// table a rehash replaced sees at worst a miss.
type entryTable struct {
	slots []atomic.Pointer[cacheEntry]
	mask  uint64
}

// tombstone marks a slot whose entry was removed, so that probes for
// entries past it go on. It is never modified.
var tombstone = &cacheEntry{}

func newEntryTable(size int) *entryTable {
	return &entryTable{slots: make([]atomic.Pointer[cacheEntry], size), mask: uint64(size - 1)}
}

// get returns the entry stored under h, or nil.
func (sh *cacheShard) get(h uint64) *cacheEntry {
	t := sh.table.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		e := t.slots[i].Load()
		if e == nil {
			return nil
		}
		if e != tombstone && e.hash == h {
			return e
		}
	}
}

// put stores e under e.hash and returns the entry it replaced, if any.
// Caller holds sh.mu.
func (sh *cacheShard) put(e *cacheEntry) (old *cacheEntry) {
	t := sh.table.Load()
	// Keep at least a quarter of the slots empty, so probes stay short
	// and always end: tombstones count as used until a rehash drops them.
	if (sh.used+1)*4 > len(t.slots)*3 {
		t = sh.rehash()
	}
	free := -1
	for i := e.hash & t.mask; ; i = (i + 1) & t.mask {
		cur := t.slots[i].Load()
		switch {
		case cur == nil:
			if free < 0 {
				free = int(i)
				sh.used++
			}
			t.slots[free].Store(e)
			sh.live++
			return nil
		case cur == tombstone:
			if free < 0 {
				free = int(i) // reuse it, unless h is stored further on
			}
		case cur.hash == e.hash:
			t.slots[i].Store(e)
			return cur
		}
	}
}

// remove empties slot i of the current table. Caller holds sh.mu.
func (sh *cacheShard) remove(t *entryTable, i uint64) {
	t.slots[i].Store(tombstone)
	sh.live--
}

// rehash replaces the table with one sized for the live entries (at most
// half full), without tombstones, and returns it. Readers of the old one
// finish undisturbed. Caller holds sh.mu.
func (sh *cacheShard) rehash() *entryTable {
	old := sh.table.Load()
	size := 8
	for size < 2*(sh.live+1) {
		size *= 2
	}
	t := newEntryTable(size)
	for i := range old.slots {
		e := old.slots[i].Load()
		if e == nil || e == tombstone {
			continue
		}
		for j := e.hash & t.mask; ; j = (j + 1) & t.mask {
			if t.slots[j].Load() == nil {
				t.slots[j].Store(e)
				break
			}
		}
	}
	sh.used = sh.live
	sh.table.Store(t)
	return t
}

// each calls fn for every entry. Caller holds sh.mu.
func (sh *cacheShard) each(fn func(e *cacheEntry)) {
	t := sh.table.Load()
	for i := range t.slots {
		if e := t.slots[i].Load(); e != nil && e != tombstone {
			fn(e)
		}
	}
}

// evict frees room for need bytes: from a random slot on, expired
// entries met among the first few examined go first, then whatever comes
// next, so the work per insert stays constant however full the shard is
// (random eviction: no bookkeeping on hits, unlike LRU). Caller holds
// sh.mu.
func (sh *cacheShard) evict(need, now int64) {
	const sample = 16
	t := sh.table.Load()
	examined := 0
	i := rand.Uint64() & t.mask
	for range 2 * len(t.slots) {
		if sh.bytes+need <= sh.budget || sh.live == 0 {
			return
		}
		e := t.slots[i].Load()
		if e != nil && e != tombstone {
			if examined >= sample || now >= e.expires {
				sh.bytes -= e.size()
				sh.remove(t, i)
			}
			examined++
		}
		i = (i + 1) & t.mask
	}
}
