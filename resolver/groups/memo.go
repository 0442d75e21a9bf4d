package groups

import "sync/atomic"

// memo is a small lock-free cache in front of a sync.Map: a fixed array
// of slots, each holding one entry or none, where a colliding entry takes
// the slot. A lookup is one atomic load and a compare, where a sync.Map
// would box the key in an interface and hash it through the type: on the
// blocked-answer path, which runs per query, that was a tenth of the time.
type memo[K comparable, V any] struct {
	slots [memoSlots]atomic.Pointer[memoEntry[K, V]]
}

const memoSlots = 256

type memoEntry[K comparable, V any] struct {
	k K
	v V
}

func (m *memo[K, V]) get(h uint64, k K) (V, bool) {
	if e := m.slots[h%memoSlots].Load(); e != nil && e.k == k {
		return e.v, true
	}
	var zero V
	return zero, false
}

func (m *memo[K, V]) put(h uint64, k K, v V) {
	m.slots[h%memoSlots].Store(&memoEntry[K, V]{k, v})
}

// maskHash spreads a group mask over the memo's slots (Fibonacci hashing).
func maskHash(mask uint64) uint64 { return (mask * 0x9E3779B97F4A7C15) >> 56 }
