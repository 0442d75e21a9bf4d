package resolver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

// ServerConfig is the [server] section: listeners, access and limits.
type ServerConfig struct {
	// Listen is every address served over both UDP and TCP.
	Listen []netip.AddrPort `toml:"listen"`
	// DoTListen are addresses for DNS over TLS (RFC 7858; port 853).
	DoTListen []netip.AddrPort `toml:"dot_listen"`
	// DoHListen are addresses for DNS over HTTPS (RFC 8484; port 443).
	DoHListen []netip.AddrPort `toml:"doh_listen"`
	// DoHPath is the DoH endpoint's path.
	DoHPath string `toml:"doh_path"`
	// DoHTrustedProxies are reverse proxies whose X-Forwarded-For names
	// the DoH client.
	DoHTrustedProxies []netip.Prefix `toml:"doh_trusted_proxies"`
	// CertFile and KeyFile are the PEM certificate chain and key for DoT
	// and DoH; they are reloaded when the files change.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Allow is the client access list; everyone else gets REFUSED.
	Allow []netip.Prefix `toml:"allow"`
	// UDPSockets is how many SO_REUSEPORT sockets each UDP address gets;
	// 0 means one per CPU.
	UDPSockets int `toml:"udp_sockets"`
	// MaxInflight bounds the UDP queries being answered through the chain
	// (each may wait for an upstream) at once, and the TCP queries at once.
	MaxInflight int `toml:"max_inflight"`
	// MaxTCPConns bounds open TCP connections; more are closed at accept.
	MaxTCPConns int `toml:"max_tcp_conns"`
	// MaxTCPConnsPerClient bounds open TCP connections from one address.
	MaxTCPConnsPerClient int `toml:"max_tcp_conns_per_client"`
	// MaxTCPPipeline bounds the queries answered at once on one TCP
	// connection.
	MaxTCPPipeline int `toml:"max_tcp_pipeline"`
	// TCPIdleTimeout is how long a TCP connection may wait between queries.
	TCPIdleTimeout time.Duration `toml:"tcp_idle_timeout"`
	// TCPReadTimeout is how long reading one query (or writing one answer)
	// on TCP may take once it has started.
	TCPReadTimeout time.Duration `toml:"tcp_read_timeout"`
	// QueryTimeout bounds the time from receiving a query to answering it.
	QueryTimeout time.Duration `toml:"query_timeout"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for queries
	// in flight before cancelling them.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`
	// MemoryLimit is a soft limit for the Go runtime's memory in bytes
	// (runtime/debug.SetMemoryLimit); 0 leaves it to GOMEMLIMIT. A limit
	// keeps the resident size near it at the cost of more collection.
	MemoryLimit int64 `toml:"memory_limit"`
	// GCPercent is the Go collector's GOGC: the heap grows this many
	// percent past what is live before a collection. 0 leaves it to the
	// GOGC variable (100 when unset); GOGC, when set, wins. The default is
	// 50: answering from the cache or a list allocates nothing, so
	// collecting more often costs little (measured: 2-3 % of forwarded
	// throughput) and keeps some 3 MiB (blocked load) to 6 MiB (cache
	// filled by forwarded load) less resident.
	GCPercent int `toml:"gc_percent"`
	// MaxUDPSize caps the UDP answer size Vigil offers a client, whatever
	// the client's EDNS buffer says (1232: DNS flag day 2020).
	MaxUDPSize int `toml:"max_udp_size"`
	// UDPReadBuffer is each UDP socket's receive buffer in bytes (the
	// kernel caps it at net.core.rmem_max); 0 keeps the system default.
	// A deep buffer lets a burst wait instead of being dropped, and lets
	// each batched read take many queries at once (measured: +15 % cached
	// and +40 % blocked answers per CPU-second at 4 MiB, bench/peers.sh
	// with a CPU quota).
	UDPReadBuffer int `toml:"udp_read_buffer"`
}

// DefaultServerConfig returns the [server] defaults.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:53"), netip.MustParseAddrPort("[::]:53")},
		Allow: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
			netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
			netip.MustParsePrefix("fe80::/10"),
		},
		DoTListen:            []netip.AddrPort{},
		DoHListen:            []netip.AddrPort{},
		DoHPath:              "/dns-query",
		DoHTrustedProxies:    []netip.Prefix{},
		MaxInflight:          1024,
		MaxTCPConns:          512,
		MaxTCPConnsPerClient: 32,
		MaxTCPPipeline:       32,
		TCPIdleTimeout:       10 * time.Second,
		TCPReadTimeout:       2 * time.Second,
		QueryTimeout:         5 * time.Second,
		ShutdownTimeout:      10 * time.Second,
		MaxUDPSize:           1232,
		UDPReadBuffer:        4 << 20,
		GCPercent:            50,
	}
}

// Validate checks the section; errors name the key and what was expected.
func (c *ServerConfig) Validate() error {
	var errs []error
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("server.listen: want at least one address such as \"0.0.0.0:53\""))
	}
	for i, ap := range c.Listen {
		if !ap.IsValid() {
			errs = append(errs, fmt.Errorf("server.listen[%d]: want ip:port, got %q", i, ap))
		}
	}
	if (len(c.DoTListen) > 0 || len(c.DoHListen) > 0) && (c.CertFile == "" || c.KeyFile == "") {
		errs = append(errs, errors.New("server.cert_file and server.key_file: want PEM files when dot_listen or doh_listen is set"))
	}
	if !strings.HasPrefix(c.DoHPath, "/") {
		errs = append(errs, fmt.Errorf("server.doh_path: want a path starting with /, got %q", c.DoHPath))
	}
	for i, p := range c.Allow {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("server.allow[%d]: want a prefix such as \"192.168.0.0/16\"", i))
		}
	}
	errs = append(errs,
		checkRange("server.udp_sockets", c.UDPSockets, 0, 256),
		checkRange("server.max_inflight", c.MaxInflight, 1, 1<<20),
		checkRange("server.max_tcp_conns", c.MaxTCPConns, 1, 1<<20),
		checkRange("server.max_tcp_conns_per_client", c.MaxTCPConnsPerClient, 1, 1<<20),
		checkRange("server.max_tcp_pipeline", c.MaxTCPPipeline, 1, 1<<16),
		checkRange("server.max_udp_size", c.MaxUDPSize, 512, 65535),
		checkRange("server.udp_read_buffer", c.UDPReadBuffer, 0, 1<<30),
		checkPositive("server.tcp_idle_timeout", c.TCPIdleTimeout),
		checkPositive("server.tcp_read_timeout", c.TCPReadTimeout),
		checkPositive("server.query_timeout", c.QueryTimeout),
		checkPositive("server.shutdown_timeout", c.ShutdownTimeout),
	)
	if c.GCPercent != 0 && (c.GCPercent < 10 || c.GCPercent > 1000) {
		errs = append(errs, fmt.Errorf("server.gc_percent: want 0 (GOGC) or 10 to 1000, got %d", c.GCPercent))
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 32<<20 {
		errs = append(errs, fmt.Errorf("server.memory_limit: want 0 (none) or at least 33554432 bytes, got %d", c.MemoryLimit))
	}
	return errors.Join(errs...)
}

// sockets returns the number of UDP sockets per address.
func (c *ServerConfig) sockets() int {
	if !haveReusePort {
		return 1
	}
	if c.UDPSockets > 0 {
		return c.UDPSockets
	}
	return runtime.GOMAXPROCS(0)
}

// Strategy is how the Forwarder picks upstreams.
type Strategy string

// Forwarding strategies.
const (
	// StrategyFailover tries upstreams in the configured order, skipping
	// those that failed recently.
	StrategyFailover Strategy = "failover"
	// StrategyParallel races the two best upstreams (fastest recently
	// answering) and takes the first valid answer.
	StrategyParallel Strategy = "parallel"
)

// UpstreamConfig is the [upstream] section.
type UpstreamConfig struct {
	// Servers are the upstreams, decoded from their configuration form
	// (see ParseUpstream).
	Servers []UpstreamSpec `toml:"servers"`
	// Strategy is "failover" or "parallel".
	Strategy Strategy `toml:"strategy"`
	// Timeout bounds one attempt at one upstream.
	Timeout time.Duration `toml:"timeout"`
	// Bootstrap are plain DNS servers ("ip:port", "udp://" or "tcp://")
	// used only to resolve the host names of tls:// and https:// upstreams,
	// so Vigil never needs itself to start.
	Bootstrap []UpstreamSpec `toml:"bootstrap"`
	// CAFile adds PEM certificates trusted for encrypted upstreams (a
	// private resolver's CA); the system's roots are always trusted.
	CAFile string `toml:"ca_file"`
}

// DefaultUpstreamConfig returns the [upstream] defaults.
func DefaultUpstreamConfig() UpstreamConfig {
	return UpstreamConfig{
		Servers:   MustParseUpstreams("9.9.9.9:53", "1.1.1.1:53"),
		Strategy:  StrategyParallel,
		Timeout:   2 * time.Second,
		Bootstrap: MustParseUpstreams("9.9.9.9:53", "1.1.1.1:53"),
	}
}

// UpstreamSpec is one upstream address. It decodes itself from the
// configuration form (UnmarshalText, through ParseUpstream) and encodes
// itself back (MarshalText, String); its zero value is not a valid
// upstream.
type UpstreamSpec struct {
	// Net is "udp" (with TCP fallback on truncation), "tcp", "tls" (DNS
	// over TLS) or "https" (DNS over HTTPS).
	Net string
	// Addr is the server's address, when given as an IP.
	Addr netip.AddrPort
	// Host is the server's host name (tls, https), resolved through the
	// bootstrap servers, and the name its certificate must carry.
	Host string
	// Port is the port for a Host.
	Port uint16
	// URL is the DoH endpoint (https).
	URL string
}

// String returns the upstream in its configuration form. A bare "ip:port"
// comes back as "udp://ip:port", which means the same.
func (s UpstreamSpec) String() string {
	switch {
	case s.Net == "https":
		return s.URL
	case s.Host != "":
		return s.Net + "://" + net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
	}
	return s.Net + "://" + s.Addr.String()
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (s UpstreamSpec) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseUpstream.
func (s *UpstreamSpec) UnmarshalText(text []byte) error {
	spec, err := ParseUpstream(string(text))
	if err != nil {
		return err
	}
	*s = spec
	return nil
}

// MustParseUpstreams parses upstream addresses as ParseUpstream does and
// panics on an error; for defaults and tests.
func MustParseUpstreams(addrs ...string) []UpstreamSpec {
	specs := make([]UpstreamSpec, 0, len(addrs))
	for _, a := range addrs {
		spec, err := ParseUpstream(a)
		if err != nil {
			panic(fmt.Sprintf("resolver.MustParseUpstreams(%q): %v", a, err))
		}
		specs = append(specs, spec)
	}
	return specs
}

// check reports whether s is an upstream ParseUpstream could have
// returned: the zero value and hand-built values missing their address
// are not.
func (s UpstreamSpec) check() error {
	switch s.Net {
	case "udp", "tcp":
		if !s.Addr.IsValid() || s.Addr.Port() == 0 || s.Host != "" {
			return fmt.Errorf("want ip:port such as \"9.9.9.9:53\", got %q", s)
		}
	case "tls":
		if s.Host == "" && (!s.Addr.IsValid() || s.Addr.Port() == 0) || s.Host != "" && s.Port == 0 {
			return fmt.Errorf("want tls://host:port such as \"tls://dns.quad9.net:853\", got %q", s)
		}
	case "https":
		if s.URL == "" || s.Host == "" || s.Port == 0 {
			return fmt.Errorf("want a DoH URL such as \"https://dns.quad9.net/dns-query\", got %q", s)
		}
	default:
		return fmt.Errorf("want an upstream such as \"9.9.9.9:53\", got one without a transport (%q)", s.Net)
	}
	return nil
}

// ParseUpstream parses an upstream address as written in the configuration:
// "ip:port" or "udp://ip:port" (UDP, TCP when truncated), "tcp://ip:port",
// "tls://host:853" (DNS over TLS; host a name or an IP) or
// "https://host/dns-query" (DNS over HTTPS).
func ParseUpstream(s string) (UpstreamSpec, error) {
	spec := UpstreamSpec{Net: "udp"}
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		switch scheme {
		case "udp", "tcp", "tls":
			spec.Net = scheme
		case "https":
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				return spec, fmt.Errorf("want a DoH URL such as \"https://dns.quad9.net/dns-query\", got %q", s)
			}
			spec.Net, spec.URL, spec.Host = "https", s, u.Hostname()
			port := u.Port()
			if port == "" {
				port = "443"
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil || p == 0 {
				return spec, fmt.Errorf("want a valid port in %q", s)
			}
			spec.Port = uint16(p)
			if a, err := netip.ParseAddr(spec.Host); err == nil {
				spec.Addr = netip.AddrPortFrom(a.Unmap(), spec.Port)
			}
			return spec, nil
		default:
			return spec, fmt.Errorf("want udp://, tcp://, tls://, https:// or a bare ip:port, got scheme %q", scheme)
		}
		rest = after
	}
	defaultPort := uint16(53)
	if spec.Net == "tls" {
		defaultPort = 853
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		// A bare address without a port means the standard one.
		if a, aerr := netip.ParseAddr(strings.Trim(rest, "[]")); aerr == nil {
			ap = netip.AddrPortFrom(a, defaultPort)
		} else if host, port, herr := net.SplitHostPort(rest); spec.Net == "tls" && herr == nil {
			p, perr := strconv.ParseUint(port, 10, 16)
			if _, nerr := blocklists.NormalizeName(host); nerr != nil || perr != nil || p == 0 {
				return spec, fmt.Errorf("want tls://host:port such as \"tls://dns.quad9.net:853\", got %q", s)
			}
			spec.Host, spec.Port = host, uint16(p)
			return spec, nil
		} else if _, nerr := blocklists.NormalizeName(rest); spec.Net == "tls" && nerr == nil {
			spec.Host, spec.Port = rest, defaultPort
			return spec, nil
		} else {
			return spec, fmt.Errorf("want ip:port such as \"9.9.9.9:53\" or \"[2620:fe::fe]:53\", got %q", s)
		}
	}
	if ap.Port() == 0 {
		return spec, fmt.Errorf("want a non-zero port, got %q", s)
	}
	spec.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return spec, nil
}

// Validate checks the section; it does not change it.
func (c *UpstreamConfig) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("upstream.servers: want at least one server such as \"9.9.9.9:53\""))
	}
	for i, spec := range c.Servers {
		if err := spec.check(); err != nil {
			errs = append(errs, fmt.Errorf("upstream.servers[%d]: %w", i, err))
			continue
		}
		if spec.Host != "" && !spec.Addr.IsValid() && len(c.Bootstrap) == 0 {
			errs = append(errs, fmt.Errorf("upstream.servers[%d]: %q names a host: want upstream.bootstrap servers to resolve it", i, spec))
		}
	}
	for i, b := range c.Bootstrap {
		if b.check() != nil || (b.Net != "udp" && b.Net != "tcp") {
			errs = append(errs, fmt.Errorf("upstream.bootstrap[%d]: want a plain DNS server ip:port, got %q", i, b))
		}
	}
	switch c.Strategy {
	case StrategyFailover, StrategyParallel:
	default:
		errs = append(errs, fmt.Errorf("upstream.strategy: want \"failover\" or \"parallel\", got %q", c.Strategy))
	}
	errs = append(errs, checkPositive("upstream.timeout", c.Timeout))
	return errors.Join(errs...)
}

// CacheConfig is the [cache] section.
type CacheConfig struct {
	// Enabled turns the answer cache on.
	Enabled bool `toml:"enabled"`
	// MaxBytes bounds the memory held by cached answers, as the heap
	// holds them (cacheEntry.size).
	MaxBytes int64 `toml:"max_bytes"`
	// MinTTL raises shorter TTLs of cached answers.
	MinTTL time.Duration `toml:"min_ttl"`
	// MaxTTL lowers longer TTLs of cached answers.
	MaxTTL time.Duration `toml:"max_ttl"`
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA answers are cached
	// (RFC 2308 section 5 suggests at most a few hours).
	MaxNegativeTTL time.Duration `toml:"max_negative_ttl"`
	// ServeStale answers from an expired entry, for up to StaleTTL past its
	// expiry, when no upstream answers (RFC 8767), so a short outage does
	// not take the network down.
	ServeStale bool `toml:"serve_stale"`
	// StaleTTL is how long past expiry an entry may still be served stale.
	StaleTTL time.Duration `toml:"stale_ttl"`
	// StaleAnswerTimeout is RFC 8767's client response timer: when an
	// expired entry exists and no upstream has answered this long after
	// the query, the stale answer is sent and the refresh goes on in the
	// background. When every upstream is known to be failing, the stale
	// answer is sent at once.
	StaleAnswerTimeout time.Duration `toml:"stale_answer_timeout"`
	// Persist saves the cache into the store on shutdown and every
	// PersistInterval, and restores it at start with the remaining TTLs.
	Persist bool `toml:"persist"`
	// PersistInterval is how often the cache is saved while running.
	PersistInterval time.Duration `toml:"persist_interval"`
}

// DefaultCacheConfig returns the [cache] defaults.
func DefaultCacheConfig() CacheConfig {
	return CacheConfig{
		Enabled:            true,
		MaxBytes:           6 << 20,
		MinTTL:             0,
		MaxTTL:             24 * time.Hour,
		MaxNegativeTTL:     time.Hour,
		ServeStale:         true,
		StaleTTL:           time.Hour,
		StaleAnswerTimeout: 1800 * time.Millisecond,
		Persist:            true,
		PersistInterval:    10 * time.Minute,
	}
}

// Validate checks the section.
func (c *CacheConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("cache.max_bytes: want at least 65536, got %d", c.MaxBytes))
	}
	if c.MinTTL < 0 {
		errs = append(errs, fmt.Errorf("cache.min_ttl: want a duration >= 0, got %s", c.MinTTL))
	}
	errs = append(errs, checkPositive("cache.max_ttl", c.MaxTTL), checkPositive("cache.max_negative_ttl", c.MaxNegativeTTL))
	if c.ServeStale && c.StaleTTL <= 0 {
		errs = append(errs, fmt.Errorf("cache.stale_ttl: want a positive duration such as \"1h\", got %q", c.StaleTTL.String()))
	}
	if c.ServeStale && (c.StaleAnswerTimeout <= 0 || c.StaleAnswerTimeout > time.Minute) {
		errs = append(errs, fmt.Errorf("cache.stale_answer_timeout: want a duration from \"1ms\" to \"1m\" such as \"1.8s\" (RFC 8767), got %q", c.StaleAnswerTimeout.String()))
	}
	if c.Persist && c.PersistInterval < time.Minute {
		errs = append(errs, fmt.Errorf("cache.persist_interval: want at least \"1m\", got %q", c.PersistInterval.String()))
	}
	if c.MaxTTL > 0 && c.MinTTL > c.MaxTTL {
		errs = append(errs, fmt.Errorf("cache.min_ttl: want at most cache.max_ttl (%s), got %s", c.MaxTTL, c.MinTTL))
	}
	return errors.Join(errs...)
}

func checkRange(key string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s: want an integer from %d to %d, got %d", key, lo, hi, v)
	}
	return nil
}

func checkPositive(key string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: want a positive duration such as \"2s\", got %q", key, d.String())
	}
	return nil
}
