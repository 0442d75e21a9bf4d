package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/resolver/neighbors"
)

// resolveClient turns what a user typed to name a client (a name in any
// case, any of its addresses, or its MAC) into the identity the log and
// the pauses key it by: its name, or its address when it has none. What
// names no client known to the configuration, the network or the log (a
// name or a MAC; an address always names one) is an error (404) that
// says so, with the closest names.
func (a *api) resolveClient(raw string) (string, error) {
	var configured []ClientInfo
	if a.d.Clients != nil {
		configured = a.d.Clients()
	}
	configured = append(configured, a.namedClients()...)
	var learned []neighbors.Device
	if a.d.Neighbors != nil {
		learned = a.d.Neighbors.Devices()
	}
	return ResolveClient(raw, configured, learned, func() []string {
		ids, err := a.d.Log.Identities(a.now().Add(-a.d.Retention))
		if err != nil {
			return nil
		}
		return ids
	})
}

// ResolveClient is the API's client matching, for the CLI's offline
// commands too: configured are the [[clients]] entries, learned the
// devices the network named, logged lists the log's identities (called
// only when needed: it reads the log).
func ResolveClient(raw string, configured []ClientInfo, devices []neighbors.Device, logged func() []string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	learned := make([]learnedDevice, 0, len(devices))
	for _, d := range devices {
		learned = append(learned, learnedDevice{addr: d.Addr, name: d.Name, mac: d.MAC})
	}
	if addr, err := netip.ParseAddr(raw); err == nil {
		addr = addr.Unmap()
		if name := configuredByAddr(configured, addr); name != "" {
			return name, nil
		}
		for _, d := range learned {
			if d.addr == addr && d.name != "" {
				return d.name, nil
			}
		}
		// An address names one device even before it is seen (a pause
		// for a device about to join): it is never unknown.
		return addr.String(), nil
	}
	if hw, err := net.ParseMAC(raw); err == nil && len(hw) == 6 {
		mac := hw.String()
		for _, c := range configured {
			if slices.Contains(c.MACs, mac) {
				return c.Name, nil
			}
		}
		for _, d := range learned {
			if d.mac == mac {
				if d.name != "" {
					return d.name, nil
				}
				return d.addr.String(), nil
			}
		}
		return "", unknownClient(raw, nil)
	}
	var names []string
	for _, c := range configured {
		names = append(names, c.Name)
	}
	for _, d := range learned {
		if d.name != "" {
			names = append(names, d.name)
		}
	}
	for _, n := range names {
		if strings.EqualFold(n, raw) {
			return n, nil
		}
	}
	ids := logged()
	for _, n := range ids {
		if strings.EqualFold(n, raw) {
			return n, nil
		}
	}
	return "", unknownClient(raw, append(names, ids...))
}

// ClientInfo is a [[clients]] entry as the API matches it: its name, the
// single addresses and prefixes it covers, and its MACs
// ("aa:bb:cc:dd:ee:ff").
type ClientInfo struct {
	Name     string
	Prefixes []netip.Prefix
	MACs     []string
}

type learnedDevice struct {
	addr      netip.Addr
	name, mac string
}

// configuredByAddr returns the [[clients]] entry holding addr, the longest
// prefix winning, as the resolver decides.
func configuredByAddr(cs []ClientInfo, addr netip.Addr) string {
	best, bits := "", -1
	for _, c := range cs {
		for _, p := range c.Prefixes {
			if p.Contains(addr) && p.Bits() > bits {
				best, bits = c.Name, p.Bits()
			}
		}
	}
	return best
}

// unknownClient is the 404 for a client nobody knows, with up to three of
// the known names closest to what was typed.
func unknownClient(raw string, known []string) error {
	type scored struct {
		name string
		d    int
	}
	var close []scored
	low := strings.ToLower(raw)
	for _, k := range known {
		kl := strings.ToLower(k)
		d := groups.EditDistance(low, kl)
		if strings.Contains(kl, low) || strings.Contains(low, kl) {
			d = min(d, 1)
		}
		if d <= max(1, len(low)/3) && d < len(low) && !slices.ContainsFunc(close, func(s scored) bool { return s.name == k }) {
			close = append(close, scored{k, d})
		}
	}
	slices.SortStableFunc(close, func(a, b scored) int { return a.d - b.d })
	msg := fmt.Sprintf("no client %q: not in the configuration, on the network or in the log", raw)
	if len(close) > 0 {
		var names []string
		for _, s := range close[:min(3, len(close))] {
			names = append(names, fmt.Sprintf("%q", s.name))
		}
		msg += "; did you mean " + strings.Join(names, " or ") + "?"
	}
	return &httpError{status: http.StatusNotFound, err: fmt.Errorf("%s", msg)}
}

// namedClients are the devices named by hand, as the client matching
// knows clients, so that a name given on the dashboard finds its device
// everywhere.
func (a *api) namedClients() []ClientInfo {
	if a.d.Names == nil {
		return nil
	}
	return NamedClientInfos(a.d.Names.Names())
}

// NamedClientInfos turns the names given by hand (by MAC or address) into
// client entries.
func NamedClientInfos(names map[string]string) []ClientInfo {
	var out []ClientInfo
	for key, name := range names {
		ci := ClientInfo{Name: name}
		if hw, err := net.ParseMAC(key); err == nil {
			ci.MACs = []string{hw.String()}
		} else if a, err := netip.ParseAddr(key); err == nil {
			ci.Prefixes = []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
		}
		out = append(out, ci)
	}
	slices.SortFunc(out, func(x, y ClientInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}
