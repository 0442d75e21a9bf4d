package resolver

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RateLimitConfig is the [ratelimit] section: a token bucket per client
// network.
type RateLimitConfig struct {
	// Enabled turns per-client rate limiting on.
	Enabled bool `toml:"enabled"`
	// QPS is the sustained rate allowed per client network.
	QPS int `toml:"qps"`
	// Burst is how many queries a quiet client may send at once.
	Burst int `toml:"burst"`
	// IPv4Prefix and IPv6Prefix group addresses into one client network
	// (32 and 64: one device; 24 and 56: one site).
	IPv4Prefix int `toml:"ipv4_prefix"`
	IPv6Prefix int `toml:"ipv6_prefix"`
	// Action is "drop" (no answer: nothing to reflect at a spoofed victim)
	// or "refused".
	Action string `toml:"action"`
	// Exempt are networks never limited (loopback by default; trusted
	// forwarders are exempt too, as they speak for many devices).
	Exempt []netip.Prefix `toml:"exempt"`
	// MaxClients bounds the client networks tracked at once, so a flood
	// from random spoofed sources cannot grow memory without bound.
	MaxClients int `toml:"max_clients"`
	// LogInterval is how often at most one client's limiting is logged.
	LogInterval time.Duration `toml:"log_interval"`
}

// DefaultRateLimitConfig returns the [ratelimit] defaults.
func DefaultRateLimitConfig() RateLimitConfig {
	return RateLimitConfig{
		Enabled: true, QPS: 200, Burst: 1000, IPv4Prefix: 32, IPv6Prefix: 64, Action: "drop",
		Exempt:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		MaxClients: 65536, LogInterval: time.Minute,
	}
}

// Validate checks the section.
func (c *RateLimitConfig) Validate() error {
	var errs []error
	errs = append(errs,
		checkRange("ratelimit.qps", c.QPS, 1, 1<<24),
		checkRange("ratelimit.burst", c.Burst, 1, 1<<24),
		checkRange("ratelimit.ipv4_prefix", c.IPv4Prefix, 8, 32),
		checkRange("ratelimit.ipv6_prefix", c.IPv6Prefix, 16, 128),
		checkRange("ratelimit.max_clients", c.MaxClients, 64, 1<<24),
		checkPositive("ratelimit.log_interval", c.LogInterval),
	)
	if c.Action != "drop" && c.Action != "refused" {
		errs = append(errs, fmt.Errorf("ratelimit.action: want \"drop\" or \"refused\", got %q", c.Action))
	}
	return errors.Join(errs...)
}

const limiterShards = 64

// Limiter is a token bucket per client network, in shards so that clients
// do not contend on one lock. It is safe for concurrent use.
type Limiter struct {
	cfg    RateLimitConfig
	seed   maphash.Seed
	exempt *AccessList
	rate   float64 // tokens per nanosecond
	shards [limiterShards]limiterShard

	limited atomic.Uint64
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
}

type bucket struct {
	tokens    float64
	last      int64 // unix nanos of the last refill
	lastLog   int64
	suppressd uint64 // limited since the last log line
}

// NewLimiter returns a limiter; extra networks (trusted forwarders) are
// exempt besides cfg.Exempt.
func NewLimiter(cfg RateLimitConfig, extraExempt []netip.Prefix) *Limiter {
	l := &Limiter{cfg: cfg, seed: maphash.MakeSeed(), rate: float64(cfg.QPS) / 1e9,
		exempt: NewAccessList(append(append([]netip.Prefix(nil), cfg.Exempt...), extraExempt...))}
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Prefix]*bucket)
	}
	return l
}

// Limited returns how many queries were limited so far.
func (l *Limiter) Limited() uint64 { return l.limited.Load() }

// Allow takes a token for addr's network at time now (unix nanos). When it
// refuses and a log line is due for that network, logNow is true and
// suppressed says how many were limited since the last line.
func (l *Limiter) Allow(addr netip.Addr, now int64) (ok, logNow bool, network netip.Prefix, suppressed uint64) {
	if l.exempt.Allowed(addr) {
		return true, false, network, 0
	}
	bits := l.cfg.IPv6Prefix
	if addr.Is4() {
		bits = l.cfg.IPv4Prefix
	}
	network, _ = addr.Prefix(bits)
	sh := &l.shards[maphash.Comparable(l.seed, network)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[network]
	if b == nil {
		if len(sh.buckets) >= l.cfg.MaxClients/limiterShards {
			l.sweep(sh, now)
		}
		b = &bucket{tokens: float64(l.cfg.Burst), last: now}
		sh.buckets[network] = b
	}
	b.tokens = min(float64(l.cfg.Burst), b.tokens+float64(now-b.last)*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, false, network, 0
	}
	l.limited.Add(1)
	b.suppressd++
	if now-b.lastLog >= int64(l.cfg.LogInterval) {
		b.lastLog = now
		n := b.suppressd
		b.suppressd = 0
		return false, true, network, n
	}
	return false, false, network, 0
}

// sweep forgets networks whose buckets have refilled (they carry no
// state worth keeping); if the shard is still full, it forgets arbitrary
// ones. Caller holds sh.mu.
func (l *Limiter) sweep(sh *limiterShard, now int64) {
	full := int64(float64(l.cfg.Burst) / l.rate)
	for k, b := range sh.buckets {
		if now-b.last >= full {
			delete(sh.buckets, k)
		}
	}
	for k := range sh.buckets {
		if len(sh.buckets) < l.cfg.MaxClients/limiterShards {
			break
		}
		delete(sh.buckets, k)
	}
}

// Tracked returns the number of client networks being tracked.
func (l *Limiter) Tracked() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
