package resolver

import "sync/atomic"

// Counters bumped on every fast-path answer would be one cache line that
// every core writes: on two cores the fast path ran no faster than on one
// (go test -bench FastPathParallel -cpu 1,2). They are striped instead:
// each UDP reader adds to its own stripe, and reads sum the stripes.

// numStripes is how many stripes a counter has; readers beyond it share.
const numStripes = 16

// stripedUint64 is a counter split into cache-line-sized stripes.
type stripedUint64 struct {
	stripes [numStripes]struct {
		n atomic.Uint64
		_ [56]byte // one stripe per cache line
	}
}

// Add adds n to the stripe (any int: it is reduced modulo numStripes).
func (c *stripedUint64) Add(stripe int, n uint64) {
	c.stripes[uint(stripe)%numStripes].n.Add(n)
}

// Load returns the sum of the stripes.
func (c *stripedUint64) Load() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
