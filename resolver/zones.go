package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// ForwardConfig is one [[forward]] section: split DNS, or conditional
// forwarding. Names in Zones (and below them) go to Servers instead of the
// [upstream] servers: a router's own zone ("lan", "home.arpa"), an Active
// Directory domain, the reverse zones of the local network. The longest
// zone wins. The answers take the same path as any other (cache,
// blocking, the per-client log) but for the rebinding guard: private
// addresses are what internal zones are for.
type ForwardConfig struct {
	Zones   []string       `toml:"zones"`
	Servers []UpstreamSpec `toml:"servers"`
}

// NetworkConfig is the [local] section: what Vigil keeps inside the
// network.
type NetworkConfig struct {
	// RebindProtection drops private, loopback and link-local addresses
	// from the answers of the public upstreams, as dnsmasq's
	// stop-dns-rebind and Unbound's private-address do: a web page whose
	// name resolves to 192.168.1.1 could otherwise reach the router's
	// admin page from the user's browser. Forward zones are exempt.
	RebindProtection bool `toml:"rebind_protection"`
	// RebindAllow are zones whose public answers may hold private
	// addresses (services that hand out names for LAN devices, such as
	// plex.direct).
	RebindAllow []string `toml:"rebind_allow"`
	// Records are answered by Vigil itself, authoritatively: zone-file
	// lines of type A, AAAA, CNAME, PTR, TXT, SRV or MX.
	Records []string `toml:"records"`
	// HostsFiles are /etc/hosts-style files whose names Vigil answers,
	// read again when they change.
	HostsFiles []string `toml:"hosts_files"`
	// SynthesizePTR answers the reverse names of the A and AAAA records
	// of Records and HostsFiles with their names.
	SynthesizePTR bool `toml:"synthesize_ptr"`
	// Router, when set, is the home or office router's DNS: the zones a
	// router names its devices in (RouterZones) and the reverse zones of
	// private addresses go to it, as if a [[forward]] section said so
	// (an explicit one for the same zone wins). With it, devices are
	// named by the router's DNS (ptr_names) with nothing else configured.
	Router RouterSpec `toml:"router"`
}

// RouterSpec is local.router: a server as upstream.servers takes it, or
// "" for none.
type RouterSpec struct{ UpstreamSpec }

// IsSet reports whether a router is configured.
func (r RouterSpec) IsSet() bool { return r.UpstreamSpec != (UpstreamSpec{}) }

// MarshalText implements encoding.TextMarshaler ("" for none).
func (r RouterSpec) MarshalText() ([]byte, error) {
	if !r.IsSet() {
		return []byte{}, nil
	}
	return r.UpstreamSpec.MarshalText()
}

// UnmarshalText implements encoding.TextUnmarshaler: "" is none.
func (r *RouterSpec) UnmarshalText(text []byte) error {
	if strings.TrimSpace(string(text)) == "" {
		*r = RouterSpec{}
		return nil
	}
	return r.UpstreamSpec.UnmarshalText(text)
}

// RouterZones are the zones local.router answers: the names routers give
// their network (none is delegated in public DNS) and the reverse zones
// of private IPv4 and ULA IPv6 addresses.
func RouterZones() []string {
	zs := []string{"lan", "home", "home.arpa", "internal", "localdomain",
		"10.in-addr.arpa", "168.192.in-addr.arpa", "d.f.ip6.arpa"}
	for i := 16; i <= 31; i++ {
		zs = append(zs, strconv.Itoa(i)+".172.in-addr.arpa")
	}
	return zs
}

// withRouter returns the forward sections with local.router's added
// after them (so an explicit section's zone wins).
func withRouter(fs []ForwardConfig, n NetworkConfig) []ForwardConfig {
	if !n.Router.IsSet() {
		return fs
	}
	claimed := map[string]bool{}
	for _, f := range fs {
		for _, z := range f.Zones {
			if c, err := canonicalZone(z); err == nil {
				claimed[c] = true
			}
		}
	}
	var zones []string
	for _, z := range RouterZones() {
		if c, _ := canonicalZone(z); !claimed[c] {
			zones = append(zones, z)
		}
	}
	if len(zones) == 0 {
		return fs
	}
	return append(slices.Clone(fs), ForwardConfig{Zones: zones, Servers: []UpstreamSpec{n.Router.UpstreamSpec}})
}

// DefaultNetworkConfig returns the [local] defaults.
func DefaultNetworkConfig() NetworkConfig {
	return NetworkConfig{RebindProtection: true, RebindAllow: []string{}, Records: []string{}, HostsFiles: []string{}, SynthesizePTR: true}
}

// Validate checks the section; it changes nothing.
func (c NetworkConfig) Validate() error {
	var errs []error
	for i, z := range c.RebindAllow {
		if _, err := canonicalZone(z); err != nil {
			errs = append(errs, fmt.Errorf("local.rebind_allow[%d]: %w", i, err))
		}
	}
	if c.Router.IsSet() {
		if err := c.Router.check(); err != nil {
			errs = append(errs, fmt.Errorf("local.router: %w", err))
		} else if !c.Router.Addr.IsValid() {
			errs = append(errs, fmt.Errorf("local.router: want the router's IP address, such as \"192.168.1.1\", got %q", c.Router))
		}
	}
	for i, r := range c.Records {
		if _, err := ParseLocalRecord(r); err != nil {
			errs = append(errs, fmt.Errorf("local.records[%d]: %w", i, err))
		}
	}
	for i, f := range c.HostsFiles {
		if fi, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("local.hosts_files[%d]: want a readable hosts file: %w", i, err))
		} else if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("local.hosts_files[%d]: want a file, got %q", i, f))
		}
	}
	return errors.Join(errs...)
}

// ValidateForwards checks the [[forward]] sections: each has zones and
// servers, and no zone is claimed twice.
func ValidateForwards(fs []ForwardConfig) error {
	var errs []error
	seen := map[string]int{}
	for i, f := range fs {
		if len(f.Zones) == 0 {
			errs = append(errs, fmt.Errorf("forward[%d].zones: want at least one zone such as \"lan\" or \"168.192.in-addr.arpa\"", i))
		}
		for j, z := range f.Zones {
			c, err := canonicalZone(z)
			if err != nil {
				errs = append(errs, fmt.Errorf("forward[%d].zones[%d]: %w", i, j, err))
				continue
			}
			if prev, ok := seen[c]; ok && prev != i {
				errs = append(errs, fmt.Errorf("forward[%d].zones[%d]: %q is also in forward[%d]", i, j, z, prev))
			}
			seen[c] = i
		}
		if len(f.Servers) == 0 {
			errs = append(errs, fmt.Errorf("forward[%d].servers: want at least one server such as \"192.168.1.1:53\"", i))
		}
		for j, s := range f.Servers {
			if err := s.check(); err != nil {
				errs = append(errs, fmt.Errorf("forward[%d].servers[%d]: %w", i, j, err))
			} else if s.Host != "" && !s.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("forward[%d].servers[%d]: want an IP address, got the host name in %q (an internal server must not need a lookup to be found)", i, j, s))
			}
		}
	}
	return errors.Join(errs...)
}

// canonicalZone returns z lowercased and fully qualified, or why it is
// not a zone name.
func canonicalZone(z string) (string, error) {
	c := strings.ToLower(dns.Fqdn(strings.TrimSpace(z)))
	if c == "." {
		return "", fmt.Errorf("want a zone such as \"lan\", got %q (the root: every name)", z)
	}
	if _, ok := dns.IsDomainName(c); !ok {
		return "", fmt.Errorf("want a zone name such as \"lan\", got %q", z)
	}
	return c, nil
}

// zoneSet finds the longest zone of a set that holds a name.
type zoneSet[T any] map[string]T

// find walks name (lowercase, fully qualified) from itself to its top
// label: the first zone met is the longest.
func (zs zoneSet[T]) find(name string) (T, string, bool) {
	var zero T
	if len(zs) == 0 {
		return zero, "", false
	}
	for s := name; s != "" && s != "."; {
		if v, ok := zs[s]; ok {
			return v, s, true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	return zero, "", false
}

// Router is the chain's last stage: it sends a question to the forwarder
// of the longest [[forward]] zone that holds it, or else to the default
// forwarder (the [upstream] servers), whose answers pass the rebinding
// guard.
type Router struct {
	def    *Forwarder
	routes atomic.Pointer[routes] // replaced whole by a reload
	// rebindDropped counts addresses the rebinding guard removed.
	rebindDropped atomic.Uint64
}

type routes struct {
	zones       zoneSet[*Forwarder]
	rebind      bool
	rebindAllow zoneSet[struct{}]
	// views are the forwarders of the groups with upstreams of their own,
	// by Query.view - 1.
	views []*Forwarder
}

var _ Handler = (*Router)(nil)

// RebindDropped returns how many private addresses the rebinding guard
// removed from public answers.
func (r *Router) RebindDropped() uint64 { return r.rebindDropped.Load() }

// Resolve implements Handler.
func (r *Router) Resolve(ctx context.Context, q *Query) (*Response, error) {
	rt := r.routes.Load()
	if f, _, ok := rt.zones.find(q.Name); ok {
		return f.Resolve(ctx, q)
	}
	f := r.def
	if q.view > 0 && int(q.view) <= len(rt.views) {
		f = rt.views[q.view-1]
	}
	resp, err := f.Resolve(ctx, q)
	if err != nil || !rt.rebind {
		return resp, err
	}
	if _, _, ok := rt.rebindAllow.find(q.Name); !ok {
		if n := dropPrivate(resp.Msg); n > 0 {
			r.rebindDropped.Add(uint64(n))
		}
	}
	return resp, nil
}

// configure builds a forwarder per [[forward]] section (sharing the
// [upstream] strategy, timeout, bootstrap and CA file) and swaps them in;
// the previous ones let go of their idle connections.
func (r *Router) configure(cfg ChainConfig) error {
	rt := &routes{zones: zoneSet[*Forwarder]{}, rebind: cfg.Network.RebindProtection, rebindAllow: zoneSet[struct{}]{}}
	for _, z := range cfg.Network.RebindAllow {
		if c, err := canonicalZone(z); err == nil {
			rt.rebindAllow[c] = struct{}{}
		}
	}
	for i, fc := range withRouter(cfg.Forward, cfg.Network) {
		up := cfg.Upstream
		up.Servers = fc.Servers
		ups, err := buildUpstreams(up)
		if err != nil {
			return fmt.Errorf("forward[%d]: %w", i, err)
		}
		f, err := NewForwarder(ups, up.Strategy, up.Timeout)
		if err != nil {
			return fmt.Errorf("forward[%d]: %w", i, err)
		}
		if r.def != nil {
			f.now = r.def.now
		}
		for _, z := range fc.Zones {
			if c, err := canonicalZone(z); err == nil {
				rt.zones[c] = f
			}
		}
	}
	for i, servers := range cfg.Groups.Views() {
		up := cfg.Upstream
		up.Servers = nil
		for _, s := range servers {
			spec, err := ParseUpstream(s)
			if err != nil {
				return fmt.Errorf("a group's upstreams: %w", err)
			}
			up.Servers = append(up.Servers, spec)
		}
		ups, err := buildUpstreams(up)
		if err != nil {
			return fmt.Errorf("the upstreams of group %d with its own: %w", i+1, err)
		}
		f, err := NewForwarder(ups, up.Strategy, up.Timeout)
		if err != nil {
			return fmt.Errorf("the upstreams of group %d with its own: %w", i+1, err)
		}
		if r.def != nil {
			f.now = r.def.now
		}
		rt.views = append(rt.views, f)
	}
	if old := r.routes.Swap(rt); old != nil {
		closed := map[*Forwarder]bool{}
		for _, f := range old.zones {
			if !closed[f] {
				closed[f] = true
				f.Close()
			}
		}
		for _, f := range old.views {
			f.Close()
		}
	}
	return nil
}

// Metrics returns the latency and errors of every upstream: the
// [upstream] servers', then each forward zone's.
func (r *Router) Metrics() []UpstreamMetrics {
	out := r.def.Metrics()
	for _, f := range r.zoneForwarders() {
		out = append(out, f.Metrics()...)
	}
	return out
}

// Scrubbed returns the out-of-bailiwick records dropped from every
// forwarder's answers.
func (r *Router) Scrubbed() uint64 {
	n := r.def.Scrubbed()
	for _, f := range r.zoneForwarders() {
		n += f.Scrubbed()
	}
	return n
}

// zoneForwarders returns each forward section's forwarder once, then the
// groups' own.
func (r *Router) zoneForwarders() []*Forwarder {
	var out []*Forwarder
	seen := map[*Forwarder]bool{}
	rt := r.routes.Load()
	for _, f := range rt.zones {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return append(out, rt.views...)
}

// AllFailingFor reports whether every upstream of the forwarder that
// would be asked for name is failing (the cache then answers stale at
// once).
func (r *Router) AllFailingFor(name string) bool {
	if f, _, ok := r.routes.Load().zones.find(name); ok {
		return f.AllFailing()
	}
	return r.def.AllFailing()
}

// forwarded reports whether a [[forward]] zone holds name.
func (r *Router) forwarded(name string) bool {
	_, _, ok := r.routes.Load().zones.find(name)
	return ok
}

// dropPrivate removes from m's answer section the A and AAAA records
// whose address belongs to the local network or the machine (RFC 1918
// and RFC 4193 private, loopback, link-local, unspecified; IPv4-mapped
// forms too) and returns how many went. What is left of a CNAME chain
// stays: the answer becomes NODATA for the address, as with Unbound's
// private-address.
func dropPrivate(m *dns.Msg) int {
	kept, n := m.Answer[:0], 0
	for _, rr := range m.Answer {
		var a netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(rr.A)
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA)
		}
		if a.IsValid() && isInternal(a.Unmap()) {
			n++
			continue
		}
		kept = append(kept, rr)
	}
	for i := len(kept); i < len(m.Answer); i++ {
		m.Answer[i] = nil
	}
	m.Answer = kept
	return n
}

// isInternal reports whether a is an address public DNS has no business
// handing out.
func isInternal(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		(a.Is4() && a.As4()[0] == 0) // 0.0.0.0/8, "this network" (RFC 1122)
}
