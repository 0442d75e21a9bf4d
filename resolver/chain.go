package resolver

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver/groups"
)

// ChainConfig is what NewChain needs to assemble the query path.
type ChainConfig struct {
	Upstream UpstreamConfig // validated
	Cache    CacheConfig    // validated
	Blocking BlockingConfig // validated
	// Forward are the [[forward]] zones (validated); Network the rebinding
	// guard's settings (validated).
	Forward []ForwardConfig
	Network NetworkConfig
	// Lists feeds the blocking stage; nil leaves it out.
	Lists ListSource
	// Pause, when set, lets blocking be paused (for everyone, a client or
	// a group).
	Pause *Pauser
	// Groups are the compiled [[groups]]; nil means none (every client
	// gets every list).
	Groups *groups.Groups
	// Now replaces the clock in tests; nil means time.Now.
	Now func() time.Time
}

// Chain is the assembled query path, with handles on the stages that
// report statistics.
type Chain struct {
	Handler   Handler
	Cache     *Cache     // nil when the cache is disabled
	Blocker   *Blocker   // nil without lists
	Forwarder *Forwarder // the [upstream] servers'
	Router    *Router    // the last stage: [[forward]] zones, else Forwarder

	local *Local // never nil; the Server asks it before packed answers
}

// NewChain assembles the query path. The order is fixed here, in one place,
// with the reason for each slot:
//
//  0. Local answers (ANY per RFC 8482, resolver-bypass canaries, the
//     health name, locally-served zones and special-use names unless a
//     forward zone claims them; zone transfers, CHAOS and other classes
//     than IN refused): first, so nothing Vigil answers itself is
//     forwarded, cached or blocked.
//  1. Blocking (filled by the blocklists stage): before the cache, so a blocked name
//     never reaches the cache or an upstream, and so its CNAME check sees
//     every answer, cached or not, and a list change applies at once.
//  2. Cache: before the forwarder so hits never leave the process; it also
//     coalesces identical misses into one upstream query.
//  3. Router: terminal; asks the forwarder of the longest [[forward]]
//     zone holding the name, else the [upstream] Forwarder, whose answers
//     pass the rebinding guard (after the cache, so the guarded answer is
//     what is cached; internal zones are not guarded).
//
// Client identification and the access list run before the chain, in the
// Server, because every stage and the log need their result. The Server's
// packed answers (packet.go) ask the same stages in the same order through
// their own methods (Local.Handles, Blocker.judge, Cache.PackedHit), so the
// order written here is the order everywhere.
func NewChain(cfg ChainConfig) (*Chain, error) {
	ups, err := buildUpstreams(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	fwd, err := NewForwarder(ups, cfg.Upstream.Strategy, cfg.Upstream.Timeout)
	if err != nil {
		return nil, fmt.Errorf("building the forwarder: %w", err)
	}
	if cfg.Now != nil {
		fwd.now = cfg.Now
	}
	router := &Router{def: fwd}
	if err := router.configure(cfg); err != nil {
		return nil, err
	}
	ch := &Chain{Handler: router, Forwarder: fwd, Router: router}
	if cfg.Cache.Enabled {
		ch.Cache = NewCache(cfg.Cache, router)
		if cfg.Now != nil {
			ch.Cache.useClock(cfg.Now)
		}
		ch.Handler = ch.Cache
	}
	if cfg.Lists != nil {
		ch.Blocker = NewBlocker(cfg.Lists, cfg.Blocking, cfg.Pause, ch.Handler)
		ch.Blocker.SetGroups(cfg.Groups)
		ch.Handler = ch.Blocker
	}
	ch.local = NewLocal(ch.localConfig(cfg.Blocking), ch.Handler)
	ch.Handler = ch.local
	return ch, nil
}

// Reconfigure applies a new configuration to the running chain: the
// upstreams and strategy, how blocked names are answered, and the local
// answers. The cache and its contents stay; the lists are the Manager's
// business.
func (ch *Chain) Reconfigure(cfg ChainConfig) error {
	ups, err := buildUpstreams(cfg.Upstream)
	if err != nil {
		return err
	}
	if err := ch.Forwarder.Reconfigure(ups, cfg.Upstream.Strategy, cfg.Upstream.Timeout); err != nil {
		return err
	}
	if err := ch.Router.configure(cfg); err != nil {
		return err
	}
	if ch.Blocker != nil {
		ch.Blocker.Reconfigure(cfg.Blocking)
		ch.Blocker.SetGroups(cfg.Groups)
	}
	ch.local.Reconfigure(ch.localConfig(cfg.Blocking))
	return nil
}

// LookupPTR returns the name the network's DNS gives addr (its PTR
// record, without the final dot), asked through the chain (so cached),
// and only when a [[forward]] zone holds the reverse name: the router's
// DNS knows its devices, and public DNS must not learn their addresses.
// "" when there is no such zone or no record.
func (ch *Chain) LookupPTR(ctx context.Context, addr netip.Addr) (string, error) {
	rev, err := dns.ReverseAddr(addr.String())
	if err != nil || !ch.Router.forwarded(rev) {
		return "", nil
	}
	m := new(dns.Msg)
	m.SetQuestion(rev, dns.TypePTR)
	now := time.Now()
	q := &Query{Msg: m, Name: rev, Type: dns.TypePTR, Class: dns.ClassINET, Proto: ProtoUDP, Start: now, Deadline: now.Add(2 * time.Second)}
	resp, err := ch.Handler.Resolve(ctx, q)
	if err != nil {
		return "", err
	}
	for _, rr := range resp.Msg.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			return strings.ToLower(strings.TrimSuffix(p.Ptr, ".")), nil
		}
	}
	return "", nil
}

// SetLocalRecords replaces the records Vigil answers itself ([local]
// records and hosts files).
func (ch *Chain) SetLocalRecords(t *RecordTable) { ch.local.SetRecords(t) }

// localConfig is what the local-answers stage takes from [blocking], and
// the forward zones it must leave to the Router.
func (ch *Chain) localConfig(b BlockingConfig) LocalConfig {
	return LocalConfig{BlockBypass: b.BlockBypass, HealthName: b.HealthName, ChaosIdentity: b.ChaosIdentity,
		Forwarded: ch.Router.forwarded}
}

// buildUpstreams makes the Upstream for every configured server.
func buildUpstreams(cfg UpstreamConfig) ([]Upstream, error) {
	var ups []Upstream
	var boot *Bootstrap
	if len(cfg.Bootstrap) > 0 {
		boot = NewBootstrap(cfg.Bootstrap)
	}
	var roots *x509.CertPool
	for _, spec := range cfg.Servers {
		switch spec.Net {
		case "tls", "https":
			if roots == nil {
				var err error
				if roots, err = LoadCAFile(cfg.CAFile); err != nil {
					return nil, err
				}
			}
			if spec.Net == "tls" {
				ups = append(ups, NewTLSUpstream(spec, roots, boot))
			} else {
				ups = append(ups, NewDoHUpstream(spec, roots, boot))
			}
		default:
			ups = append(ups, NewPlainUpstream(spec))
		}
	}
	return ups, nil
}
