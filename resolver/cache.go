package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

const (
	// cacheShards is how many shards the cache has; a key's shard is
	// the top cacheShardBits of its hash (shardOf).
	cacheShardBits = 8
	cacheShards    = 1 << cacheShardBits
	// entryOverhead is what an entry costs besides its buffers: the
	// struct itself and its share of the shard's table (an 8-byte slot
	// at a load between 1/4 and 3/4).
	entryOverhead = int64(unsafe.Sizeof(cacheEntry{})) + 16
)

// Cache is the answer cache stage. Answers are stored packed, with their
// absolute expiry, in 256 shards each with its own byte budget. A hit
// takes no lock and writes nothing shared (cache_table.go); inserts and
// evictions take the shard's mutex. Identical misses in flight at the same
// time are coalesced into one call to the next stage.
type Cache struct {
	next Handler
	cfg  CacheConfig
	seed maphash.Seed
	// now is the time in Unix nanoseconds (monoClock, or a test's
	// clock): entries' stored and expiry times are on it. nowAt is the
	// same clock's reading for a time the caller read already (a UDP
	// reader's batch): a test's clock ignores it.
	now    func() int64
	nowAt  func(time.Time) int64
	shards [cacheShards]cacheShard

	// health, when the next stage reports it, says the upstreams are
	// failing; nil otherwise.
	health upstreamHealth
	// refreshes holds a token per background refresh (maxRefreshes).
	refreshes chan struct{}

	hits                     stripedUint64 // bumped by packed answers on every core
	misses, coalesced, stale atomic.Uint64
}

var _ Handler = (*Cache)(nil)

type cacheShard struct {
	// table is read by lookups without a lock (cache_table.go).
	table atomic.Pointer[entryTable]
	// mu guards the rest, and writes to table.
	mu         sync.Mutex
	flights    map[uint64]*flight
	live, used int // entries, and slots taken by entries or tombstones
	bytes      int64
	budget     int64
	// Shards sit side by side: keep one shard's writes off the next
	// one's table pointer, which every lookup reads.
	_ [64]byte
}

// cacheKey is what makes two questions share an answer.
type cacheKey struct {
	name       string
	qtype, cls uint16
	do, cd     bool
	// view is whose upstreams answered (Query.view): a group with
	// upstreams of its own gets answers of its own.
	view uint16
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	hash    uint64 // of key: the shard's table is keyed by it
	key     cacheKey
	wire    []byte   // packed answer, ID 0, no OPT record
	ttls    []uint16 // offsets of every record's TTL in wire, for PackedHit; nil: it can't be served packed
	cnames  []string // lowercased CNAME targets in the answer, for the blocking check
	stored  int64    // unix nanos
	expires int64    // unix nanos
}

// size is the memory the entry holds, as the allocator rounds it: what
// cache.max_bytes counts. (Measured with a full 8 MiB cache of forwarded
// answers: the heap held 1.65 times the budget when only the bytes of the
// wire form and name were counted.)
func (e *cacheEntry) size() int64 {
	n := allocSize(len(e.wire)+len(e.key.name)) + allocSize(2*len(e.ttls))
	if len(e.cnames) > 0 {
		n += allocSize(16 * cap(e.cnames))
		for _, c := range e.cnames {
			n += allocSize(len(c))
		}
	}
	return n + entryOverhead
}

// allocSize rounds n up as Go's allocator does for small objects (16-byte
// steps; the larger classes are close enough for an estimate).
func allocSize(n int) int64 { return int64(n+15) &^ 15 }

// newCacheEntry returns an entry for the packed answer wire (ID 0) to the
// question k, whose parsed form is m. The wire form and the name share
// one allocation of their exact size: Pack's buffer has slack, and an
// allocation each cost more than the bytes themselves. err is set when
// wire's records cannot be walked for PackedHit; the entry is still
// good for the full path.
func newCacheEntry(k cacheKey, wire []byte, m *dns.Msg, stored, expires int64) (*cacheEntry, error) {
	buf := make([]byte, len(wire)+len(k.name))
	copy(buf, wire)
	if n := copy(buf[len(wire):], k.name); n > 0 {
		k.name = unsafe.String(&buf[len(wire)], n) // the entry is immutable: never written again
	}
	e := &cacheEntry{key: k, wire: buf[:len(wire):len(wire)], stored: stored, expires: expires}
	var err error
	e.ttls, err = ttlOffsets(e.wire)
	for _, rr := range m.Answer {
		if cn, ok := rr.(*dns.CNAME); ok {
			e.cnames = append(e.cnames, strings.ToLower(cn.Target))
		}
	}
	return e, err
}

// flight is one upstream call that identical misses wait on.
type flight struct {
	key     cacheKey
	done    chan struct{}
	waiters int      // guarded by the shard lock
	msg     *dns.Msg // a pristine copy for waiters, read-only once done is closed
	err     error
}

// CacheStats is a snapshot of the cache's counters.
type CacheStats struct {
	Entries                        int
	Bytes                          int64
	Hits, Misses, Coalesced, Stale uint64
}

// NewCache returns a cache stage in front of next.
func NewCache(cfg CacheConfig, next Handler) *Cache {
	c := &Cache{next: next, cfg: cfg, seed: maphash.MakeSeed(), refreshes: make(chan struct{}, maxRefreshes)}
	c.now, c.nowAt = monoClock()
	c.health, _ = next.(upstreamHealth)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.flights = make(map[uint64]*flight)
		sh.budget = max(cfg.MaxBytes/cacheShards, 4096)
		sh.table.Store(newEntryTable(8))
	}
	return c
}

func (c *Cache) key(q *Query) (cacheKey, uint64) {
	k := cacheKey{name: q.Name, qtype: q.Type, cls: q.Class, do: q.DO, cd: q.CD, view: q.view}
	return k, c.hashKey(k)
}

// entry returns the entry stored for k (hashed as h), fresh or not; nil
// when there is none. It takes no lock.
func (c *Cache) entry(k cacheKey, h uint64) *cacheEntry {
	if e := c.shardOf(h).get(h); e != nil && e.key == k {
		return e
	}
	return nil
}

// PackedHit appends to out the cached answer to the query in req (parsed
// as wq, its lowercased name), for a client whose upstreams are view's
// (Query.view), straight from the stored bytes: ID, flags,
// the client's spelling of the question and the aged TTLs are patched in,
// Vigil's OPT record appended; nothing is unpacked or allocated. It is the
// packed form of a hit in Resolve, for the Server's readers. accept, when
// not nil, sees the entry's CNAME targets first and may refuse it (the
// blocking stage's check). ok is false when there is no fresh entry, it was
// refused, or it must be truncated; Resolve then answers.
func (c *Cache) PackedHit(out, req []byte, wq *wireQuery, name string, view uint16, proto Proto, maxUDP, stripe int, at time.Time, accept func(cnames []string) bool) ([]byte, bool) {
	k := cacheKey{name: name, qtype: wq.qtype, cls: wq.qclass, do: wq.do, cd: cd(req), view: view}
	var now int64
	if at.IsZero() {
		now = c.now()
	} else {
		now = c.nowAt(at)
	}
	e := c.entry(k, c.hashKey(k))
	if e == nil || now >= e.expires || e.ttls == nil || accept != nil && !accept(e.cnames) {
		return out, false
	}
	size := len(e.wire)
	if wq.edns {
		size += optLen
	}
	if size > replyLimit(proto, wq.edns, wq.udpSize, maxUDP) {
		return out, false // needs truncating: Resolve and the Server's pack do that
	}
	out = append(out[:0], e.wire...)
	out[0], out[1] = req[0], req[1]
	out[2] = 0x80 | out[2]&0x04 | req[2]&0x01 // QR, AA as cached, RD as asked
	ad := out[3] & 0x20
	if !showAD(req[3]&0x20 != 0, wq.do) {
		ad = 0
	}
	out[3] = 0x80 | out[3]&0x0F | ad | req[3]&0x10 // RA, Z clear (RFC 1035 4.1.1), rcode as cached, AD as cached if shown, CD as asked
	copy(out[headerLen:wq.nameEnd], req[headerLen:wq.nameEnd])
	age := e.age(now)
	for _, off := range e.ttls {
		ttl := binary.BigEndian.Uint32(out[off:])
		binary.BigEndian.PutUint32(out[off:], ttl-min(age, ttl))
	}
	if wq.edns {
		out = appendOPT(out, maxUDP, wq.do)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	c.hits.Add(stripe, 1)
	return out, true
}

// hashKey is the hash of a cache key.
func (c *Cache) hashKey(k cacheKey) uint64 {
	h := maphash.String(c.seed, k.name)
	flags := uint64(k.qtype)<<48 | uint64(k.cls)<<32 | uint64(k.view)<<16
	if k.do {
		flags |= 1
	}
	if k.cd {
		flags |= 2
	}
	// Mix the fixed-size fields in with a multiply so they spread over
	// the shard bits too.
	return h ^ (flags+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
}

// shardOf returns the shard that holds hash h: chosen by the hash's top
// bits, since a shard's table places entries by its low bits. Both by the
// low bits put every entry of a shard at the same starting slot, and each
// lookup walked the shard's entries one by one (two thirds of a cached
// answer's own CPU went to that walk).
func (c *Cache) shardOf(h uint64) *cacheShard { return &c.shards[h>>(64-cacheShardBits)] }

// Resolve implements Handler.
func (c *Cache) Resolve(ctx context.Context, q *Query) (*Response, error) {
	k, h := c.key(q)
	sh := c.shardOf(h)
	now := c.now()

	var stale *cacheEntry
	if e := c.entry(k, h); e != nil {
		if now < e.expires {
			if m := e.answer(now); m != nil {
				c.hits.Add(0, 1)
				return &Response{Msg: m, Source: SourceCached}, nil
			}
		} else if c.cfg.ServeStale && now < e.expires+int64(c.cfg.StaleTTL) {
			stale = e
		}
	}
	c.misses.Add(1)
	switch {
	case q.noWait && stale != nil:
		c.refreshInBackground(ctx, q, sh, h, k, now)
		if resp := c.staleResponse(stale, now, "answered at once: the resolver is busy"); resp != nil {
			return resp, nil
		}
		return nil, errNoWait
	case q.noWait:
		return nil, errNoWait
	case stale != nil:
		return c.resolveStale(ctx, q, sh, h, k, now, stale)
	}
	return c.fetch(ctx, q, sh, h, k, now)
}

// errNoWait means a query that may not wait (Query.noWait) has no answer
// in the cache, fresh or stale.
var errNoWait = errors.New("no cached answer, and no slot to wait for one")

// refreshInBackground refreshes an expired entry in a goroutine of its own
// if one of the maxRefreshes tokens is free; else a later query will.
func (c *Cache) refreshInBackground(ctx context.Context, q *Query, sh *cacheShard, h uint64, k cacheKey, now int64) {
	select {
	case c.refreshes <- struct{}{}:
		go func() {
			defer func() { <-c.refreshes }()
			_, _ = c.fetch(ctx, q, sh, h, k, now)
		}()
	default:
	}
}

// maxRefreshes bounds the refreshes of expired entries running in the
// background at once; past it, an expired entry is answered stale at once
// and refreshed by a later query.
const maxRefreshes = 256

// upstreamHealth is what the cache asks of the stage after it (the
// Router, or a Forwarder) to know the upstreams are failing.
type upstreamHealth interface {
	// AllFailingFor reports whether every upstream that would be asked
	// for name is backed off after repeated failures.
	AllFailingFor(name string) bool
}

// resolveStale answers a question whose entry has expired but may still be
// served stale (RFC 8767 section 5): the refresh runs in a goroutine of
// its own; its answer is returned if it comes within StaleAnswerTimeout,
// else the stale answer is, and the refresh goes on to fill the cache.
// While every upstream is failing the stale answer goes at once. So a
// client never waits out an upstream timeout for a name Vigil can answer,
// and the query's forwarding slot is never held longer than the timer.
func (c *Cache) resolveStale(ctx context.Context, q *Query, sh *cacheShard, h uint64, k cacheKey, now int64, stale *cacheEntry) (*Response, error) {
	type result struct {
		resp *Response
		err  error
	}
	done := make(chan result, 1)
	refreshing := false
	select {
	case c.refreshes <- struct{}{}:
		refreshing = true
		go func() {
			defer func() { <-c.refreshes }()
			// q stays valid after the answer is written: nothing reuses
			// a Query or its message.
			resp, err := c.fetch(ctx, q, sh, h, k, now)
			done <- result{resp, err}
		}()
	default:
	}
	var why string
	switch {
	case !refreshing:
		why = "refreshes saturated"
	case c.health != nil && c.health.AllFailingFor(q.Name):
		why = "upstreams failing"
	default:
		t := time.NewTimer(c.cfg.StaleAnswerTimeout)
		defer t.Stop()
		select {
		case r := <-done:
			if r.err == nil {
				return r.resp, nil
			}
			why = "no upstream answered: " + r.err.Error()
		case <-t.C:
			why = "upstream answer overdue"
		case <-ctx.Done():
			why = "shutting down"
		}
	}
	if resp := c.staleResponse(stale, now, why); resp != nil {
		return resp, nil
	}
	r := <-done // a damaged entry: wait for the refresh after all
	return r.resp, r.err
}

// staleResponse is the stale answer from e, nil if e is damaged.
func (c *Cache) staleResponse(e *cacheEntry, now int64, why string) *Response {
	m := e.answer(now)
	if m == nil {
		return nil
	}
	// RFC 8767 section 4: a stale answer carries a short TTL (30 s) so
	// clients come back soon.
	for _, sec := range [3][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			rr.Header().Ttl = staleAnswerTTL
		}
	}
	c.stale.Add(1)
	return &Response{Msg: m, Source: SourceCached, ExtendedError: &dns.EDNS0_EDE{
		InfoCode: dns.ExtendedErrorCodeStaleAnswer, ExtraText: why,
	}}
}

// staleAnswerTTL is the TTL of served-stale records (RFC 8767 section 4).
const staleAnswerTTL = 30

// fetch resolves a miss through next, sharing the call with identical
// misses already in flight, and caches the answer.
func (c *Cache) fetch(ctx context.Context, q *Query, sh *cacheShard, h uint64, k cacheKey, now int64) (*Response, error) {

	sh.mu.Lock()
	if fl := sh.flights[h]; fl != nil && fl.key == k {
		fl.waiters++
		sh.mu.Unlock()
		c.coalesced.Add(1)
		select {
		case <-fl.done:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if fl.err != nil {
			return nil, fl.err
		}
		return &Response{Msg: fl.msg.Copy(), Source: SourceUpstream}, nil
	}
	fl := &flight{key: k, done: make(chan struct{})}
	if sh.flights[h] == nil {
		sh.flights[h] = fl
	} // else: a hash collision with another name's flight; just don't share.
	sh.mu.Unlock()

	resp, err := c.next.Resolve(ctx, q)
	if err == nil {
		c.store(sh, h, k, resp.Msg, now)
	}

	sh.mu.Lock()
	if sh.flights[h] == fl {
		delete(sh.flights, h)
	}
	waiters := fl.waiters
	sh.mu.Unlock()
	if waiters > 0 {
		if err == nil {
			fl.msg = resp.Msg.Copy() // resp.Msg belongs to our caller, who will modify it
		}
		fl.err = err
	}
	close(fl.done)
	return resp, err
}

// answer unpacks the entry and ages its TTLs; nil if the entry is damaged.
func (e *cacheEntry) answer(now int64) *dns.Msg {
	m := new(dns.Msg)
	if err := m.Unpack(e.wire); err != nil {
		return nil
	}
	age := e.age(now)
	for _, sec := range [3][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			h.Ttl = h.Ttl - min(age, h.Ttl)
		}
	}
	return m
}

// age is how many whole seconds the entry has been stored: what every TTL
// in it is counted down by.
func (e *cacheEntry) age(now int64) uint32 { return uint32((now - e.stored) / int64(time.Second)) }

// store caches m if it is cacheable, clamping its TTLs in place first so the
// answer returned now and the ones served later agree.
func (c *Cache) store(sh *cacheShard, h uint64, k cacheKey, m *dns.Msg, now int64) {
	ttl, ok := c.cacheTTL(m)
	if !ok {
		return
	}
	cp := *m // shallow: share the (already clamped) records, not the header
	cp.Id = 0
	cp.Compress = true
	wire, err := cp.Pack()
	if err != nil {
		return
	}
	// ttls nil when the records cannot be walked: PackedHit is off
	// for this entry, the full path answers it.
	e, _ := newCacheEntry(k, wire, m, now, now+int64(ttl)*int64(time.Second))
	e.hash = h
	c.insert(sh, e, now)
}

// insert puts e into sh, evicting to stay within the shard's budget.
func (c *Cache) insert(sh *cacheShard, e *cacheEntry, now int64) {
	size := e.size()
	if size > sh.budget {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.bytes+size > sh.budget {
		sh.evict(size, now)
	}
	if old := sh.put(e); old != nil {
		sh.bytes -= old.size()
	}
	sh.bytes += size
}

// cacheTTL clamps m's TTLs and says for how many seconds m may be cached.
// Positive answers live as long as their shortest record; negative answers
// (NXDOMAIN, or NOERROR without answers) as long as the SOA's TTL or
// minimum, whichever is lower (RFC 2308 section 5). Negative answers without
// an SOA, truncated answers and errors are not cached.
func (c *Cache) cacheTTL(m *dns.Msg) (uint32, bool) {
	if m.Truncated {
		return 0, false
	}
	minTTL := uint32(c.cfg.MinTTL / time.Second)
	maxTTL := uint32(c.cfg.MaxTTL / time.Second)
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl := maxTTL
		for _, sec := range [3][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range sec {
				hdr := rr.Header()
				hdr.Ttl = min(max(hdr.Ttl, minTTL), maxTTL)
				ttl = min(ttl, hdr.Ttl)
			}
		}
		return ttl, ttl > 0
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		var soa *dns.SOA
		for _, rr := range m.Ns {
			if s, ok := rr.(*dns.SOA); ok {
				soa = s
				break
			}
		}
		if soa == nil {
			return 0, false
		}
		ttl := min(soa.Hdr.Ttl, soa.Minttl, uint32(c.cfg.MaxNegativeTTL/time.Second))
		ttl = max(ttl, minTTL)
		for _, rr := range m.Ns {
			rr.Header().Ttl = min(rr.Header().Ttl, ttl)
		}
		return ttl, ttl > 0
	default:
		return 0, false
	}
}

// Stats returns a snapshot of the cache's counters. It locks every shard in
// turn, so it is for the API and metrics, not the query path.
func (c *Cache) Stats() CacheStats {
	s := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Coalesced: c.coalesced.Load(), Stale: c.stale.Load()}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		s.Entries += sh.live
		s.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	return s
}

// monoClock returns a clock of Unix nanoseconds that reads the monotonic
// clock alone: the wall time at its creation carried on by the time
// elapsed since. time.Now reads the wall and the monotonic clocks, and on
// a packed cache hit that second read was a sixth of the query's cost. A
// cache needs durations, not dates: an entry's TTL runs the same whatever
// the wall clock does meanwhile (a router setting its clock from NTP after
// boot), and Restore drops entries stored "in the future" of it.
func monoClock() (now func() int64, at func(time.Time) int64) {
	base := time.Now()
	wall := base.UnixNano()
	return func() int64 { return wall + int64(time.Since(base)) },
		func(t time.Time) int64 { return wall + int64(t.Sub(base)) }
}

// useClock puts the cache on a test's clock.
func (c *Cache) useClock(now func() time.Time) {
	c.now = func() int64 { return now().UnixNano() }
	c.nowAt = func(time.Time) int64 { return c.now() }
}
