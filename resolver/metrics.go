package resolver

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Query results counted per protocol, for metrics.
const (
	ResultBlocked = iota
	ResultCached
	ResultForwarded
	ResultLocal
	ResultRefused
	ResultServfail
	ResultLimited
	numResults
)

// ResultNames names the results, in order.
var ResultNames = [numResults]string{"blocked", "cached", "forwarded", "local", "refused", "servfail", "limited"}

// countedTypes are the query types counted by name; the rest are "other".
var countedTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeCNAME, dns.TypeMX,
	dns.TypeTXT, dns.TypePTR, dns.TypeSRV, dns.TypeSOA, dns.TypeNS, dns.TypeANY, dns.TypeDS, dns.TypeDNSKEY}

// counters are the server's per-query counters: fixed arrays of striped
// counters (striped.go), no lock on the query path.
type counters struct {
	byResult [numProtos][numResults]stripedUint64 // [proto][result]; proto 0 unused
	byType   [len(countedTypes) + 1]stripedUint64

	// blocked is replaced, never changed, when a new key appears (rare:
	// keys are bounded by lists and named clients): lookups take no lock.
	blocked   atomic.Pointer[map[BlockedKey]*stripedUint64]
	blockedMu sync.Mutex // serialises replacements
}

// BlockedKey labels blocked lookups: the list, its vendor, the client
// (its name for named clients; "" otherwise, so the label set stays
// bounded by configuration, not by traffic) and its groups (joined with
// ","; "" without [[groups]]).
type BlockedKey struct{ List, Vendor, Client, Group string }

func typeIndex(t uint16) int {
	for i, ct := range countedTypes {
		if ct == t {
			return i
		}
	}
	return len(countedTypes)
}

func (c *counters) count(stripe int, proto Proto, result int, qtype uint16) {
	c.byResult[proto%numProtos][result].Add(stripe, 1)
	c.byType[typeIndex(qtype)].Add(stripe, 1)
}

func (c *counters) countBlocked(stripe int, k BlockedKey) {
	c.blockedCounter(k).Add(stripe, 1)
}

// countBlockedFrom is countBlocked for a UDP reader, which remembers the
// last key it counted and its counter: a reader's blocked lookups come in
// runs of one list, vendor and client, and comparing four strings that
// are mostly the same pointers is cheaper than hashing them into the map
// (an eighth of a packed blocked answer's cost). Counters are never
// removed from the map, so a remembered one stays the map's.
func (c *counters) countBlockedFrom(rb *readerBufs, k BlockedKey) {
	if rb.blockedCount == nil || rb.blockedKey != k {
		rb.blockedKey, rb.blockedCount = k, c.blockedCounter(k)
	}
	rb.blockedCount.Add(rb.stripe, 1)
}

// blockedCounter returns k's counter, adding it when new.
func (c *counters) blockedCounter(k BlockedKey) *stripedUint64 {
	if m := c.blocked.Load(); m != nil {
		if n := (*m)[k]; n != nil {
			return n
		}
	}
	c.blockedMu.Lock()
	old := c.blocked.Load()
	var n *stripedUint64
	if old != nil {
		n = (*old)[k]
	}
	if n == nil {
		m := make(map[BlockedKey]*stripedUint64, 1)
		if old != nil {
			maps.Copy(m, *old)
		}
		n = new(stripedUint64)
		m[k] = n
		c.blocked.Store(&m)
	}
	c.blockedMu.Unlock()
	return n
}

// QueryMetrics is a snapshot of the per-query counters.
type QueryMetrics struct {
	// ByResult maps protocol ("udp", "tcp") and result name to a count.
	ByResult map[string]map[string]uint64
	// ByType maps a query type name ("A", "other") to a count.
	ByType map[string]uint64
	// Blocked counts blocked lookups by list, vendor and named client.
	Blocked map[BlockedKey]uint64
}

// Metrics returns a snapshot of the per-query counters.
func (s *Server) Metrics() QueryMetrics {
	c := &s.metrics
	out := QueryMetrics{ByResult: map[string]map[string]uint64{}, ByType: map[string]uint64{}, Blocked: map[BlockedKey]uint64{}}
	for _, p := range []Proto{ProtoUDP, ProtoTCP, ProtoDoT, ProtoDoH} {
		m := map[string]uint64{}
		for r, name := range ResultNames {
			m[name] = c.byResult[p][r].Load()
		}
		out.ByResult[p.String()] = m
	}
	for i := range c.byType {
		name := "other"
		if i < len(countedTypes) {
			name = dns.TypeToString[countedTypes[i]]
		}
		out.ByType[name] = c.byType[i].Load()
	}
	if m := c.blocked.Load(); m != nil {
		for k, n := range *m {
			out.Blocked[k] = n.Load()
		}
	}
	return out
}

// LatencyBuckets are the upper bounds of the upstream latency histogram.
var LatencyBuckets = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// latency is a lock-free histogram of upstream round trips.
type latency struct {
	buckets [len(LatencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNs   atomic.Uint64
	errors  atomic.Uint64
}

func (l *latency) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	l.buckets[i].Add(1)
	l.sumNs.Add(uint64(d))
}

// UpstreamMetrics is one upstream's latency histogram and error count.
type UpstreamMetrics struct {
	Upstream string
	// Buckets are counts per LatencyBuckets bound (not cumulative), then
	// the count above the last bound.
	Buckets []uint64
	Sum     time.Duration
	Errors  uint64
}

// Metrics returns every upstream's latency and errors.
func (f *Forwarder) Metrics() []UpstreamMetrics {
	var out []UpstreamMetrics
	for _, u := range f.state.Load().upstreams {
		m := UpstreamMetrics{Upstream: u.up.String(), Sum: time.Duration(u.lat.sumNs.Load()), Errors: u.lat.errors.Load()}
		for i := range u.lat.buckets {
			m.Buckets = append(m.Buckets, u.lat.buckets[i].Load())
		}
		out = append(out, m)
	}
	return out
}
