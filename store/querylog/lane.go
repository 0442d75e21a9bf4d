package querylog

import (
	"math"
	"sync"
)

// Lanes. A UDP reader records for its whole life from one goroutine, so
// it gets a lane of its own: the lane encodes each entry at once into its
// own buffer, in the form a block body keeps it (appendRecord), and hands
// the buffer to the writer every laneSize entries, in one channel
// operation.
//
// Why: with one channel operation per entry, each copying a Entry of
// some 230 bytes (plus a copy of its strings) through a shared ring that
// the writer then read and encoded, logging every blocked lookup cost the
// query path 15-20 % of its throughput at a few hundred thousand lookups a
// second. An encoded entry is about 100 bytes with no pointers, written
// into memory the reader reuses while it is still in the cache, and the
// entry's strings can be views of the reader's buffers, since they are
// copied before Add returns.
const (
	laneSize = 128
	// laneBytes is the buffer's size; a lane hands it over early when
	// long names fill it first.
	laneBytes = 16 << 10
)

// A Lane is one goroutine's private way into the log. The writer takes
// what a lane holds every flush interval, so an entry waits no longer
// than one given to Record. The mutex is the lane's own: its owner takes
// it once per entry and the writer once per flush, so on the query path
// it is never contended.
type Lane struct {
	q   *Log
	mu  sync.Mutex
	buf []byte // encoded entries not yet handed over
	n   int    // how many
}

// NewLane returns a lane for one goroutine's entries. A lane lives as
// long as the log; what it holds counts towards the crash loss bound.
func (q *Log) NewLane() *Lane {
	l := &Lane{q: q, buf: q.laneBuf()}
	q.lanesMu.Lock()
	q.lanes = append(q.lanes, l)
	q.lanesMu.Unlock()
	return l
}

// Add records e. It never blocks: when the writer is too far behind, the
// lane's entries are dropped and counted. e and its strings are not kept:
// they may be views of buffers the caller reuses.
func (l *Lane) Add(e *Entry) {
	l.mu.Lock()
	l.buf = appendRecord(l.buf, e, l.q.cfg.TruncateAddresses)
	l.n++
	if l.n >= l.q.laneCap || len(l.buf) >= laneBytes {
		l.handOff()
	}
	l.mu.Unlock()
}

// handOff queues the lane's entries for the writer. l.mu is held.
func (l *Lane) handOff() {
	q := l.q
	if !q.reserve(l.n) {
		q.dropped.Add(uint64(l.n))
		l.buf, l.n = l.buf[:0], 0
		return
	}
	q.queue <- queued{buf: l.buf, n: l.n, lane: true} // cannot block: reserve bounds what is queued
	l.buf, l.n = q.laneBuf(), 0
}

// drain appends the lane's entries to the writer's pending batch, after
// whatever the queue holds: the lane's earlier entries may be there, and
// they must go first. Holding the lane's lock while taking the queue
// makes sure of that; the owner waits for it once per flush at most.
func (l *Lane) drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return
	}
	q := l.q
	q.gather(math.MaxInt)
	q.pending.arena = append(q.pending.arena, l.buf...)
	q.pending.n += l.n
	l.buf, l.n = l.buf[:0], 0
}

// queued is what waits for the writer: n encoded entries, from a lane or
// from one Record.
type queued struct {
	buf  []byte
	n    int
	lane bool // buf goes back to the lanes afterwards
}

// laneBuf returns an empty lane buffer, one the writer gave back if any.
func (q *Log) laneBuf() []byte {
	select {
	case b := <-q.free:
		return b
	default:
		return make([]byte, 0, laneBytes+1024) // room for the entry that crosses laneBytes
	}
}

// recycle gives a lane buffer the writer has copied back to the lanes. A
// few are kept; the rest, left over from a burst, go to the collector.
func (q *Log) recycle(b []byte) {
	select {
	case q.free <- b[:0]:
	default:
	}
}

// reserve counts n entries into the queue if they fit in queue_size.
func (q *Log) reserve(n int) bool {
	if q.queued.Add(int64(n)) > int64(q.cfg.QueueSize) {
		q.queued.Add(-int64(n))
		return false
	}
	return true
}
