package resolver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ClientConfig is one [[clients]] table: a device (or group) by name.
type ClientConfig struct {
	// Name is how the client appears in the log, the API and the CLI.
	Name string `toml:"name"`
	// Addresses are IP addresses or prefixes ("192.168.1.23",
	// "192.168.1.0/28", "fd00::23").
	Addresses []string `toml:"addresses"`
	// MACs are hardware addresses, matched when a trusted forwarder passes
	// the device's MAC along (dnsmasq add-mac).
	MACs []string `toml:"macs"`

	prefixes []netip.Prefix
	macs     []net.HardwareAddr
}

// IdentifyConfig is the [identify] section.
type IdentifyConfig struct {
	// TrustedForwarders are the addresses (typically the home router)
	// whose EDNS Client Subnet and MAC options are believed: a query from
	// one of them is attributed to the device they name.
	TrustedForwarders []netip.Prefix `toml:"trusted_forwarders"`
}

// ValidateClients checks the [[clients]] tables.
func ValidateClients(clients []ClientConfig) error {
	var errs []error
	names := map[string]bool{}
	for i := range clients {
		c := &clients[i]
		at := fmt.Sprintf("clients[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("clients[%d] (%s)", i, c.Name)
		}
		switch {
		case strings.TrimSpace(c.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: want a name such as \"alice-phone\"", at))
		case strings.ContainsRune(c.Name, 0):
			errs = append(errs, fmt.Errorf("%s.name: want a name without NUL characters", at))
		case names[c.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used by another client", at, c.Name))
		}
		names[c.Name] = true
		if len(c.Addresses) == 0 && len(c.MACs) == 0 {
			errs = append(errs, fmt.Errorf("%s: want addresses or macs", at))
		}
		c.prefixes, c.macs = c.prefixes[:0], c.macs[:0]
		for j, a := range c.Addresses {
			p, err := parsePrefixOrAddr(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.addresses[%d]: want an IP address or prefix, got %q", at, j, a))
				continue
			}
			c.prefixes = append(c.prefixes, p)
		}
		for j, m := range c.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				errs = append(errs, fmt.Errorf("%s.macs[%d]: want a MAC address such as \"aa:bb:cc:dd:ee:ff\", got %q", at, j, m))
				continue
			}
			c.macs = append(c.macs, hw)
		}
	}
	return errors.Join(errs...)
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Clients identifies the device behind a query. It is built once from the
// configuration and immutable: identification is map lookups, never
// parsing of configuration per query.
type Clients struct {
	byAddr   map[netip.Addr]string
	prefixes []namedPrefix // longest first
	byMAC    map[[6]byte]string
	trusted  []netip.Prefix
}

type namedPrefix struct {
	p    netip.Prefix
	name string
}

// NewClients indexes validated client tables and the trusted forwarders.
func NewClients(clients []ClientConfig, id IdentifyConfig) *Clients {
	c := &Clients{byAddr: map[netip.Addr]string{}, byMAC: map[[6]byte]string{}, trusted: id.TrustedForwarders}
	for _, cl := range clients {
		for _, p := range cl.prefixes {
			if p.IsSingleIP() {
				c.byAddr[p.Addr()] = cl.Name
			} else {
				c.prefixes = append(c.prefixes, namedPrefix{p, cl.Name})
			}
		}
		for _, m := range cl.macs {
			c.byMAC[[6]byte(m)] = cl.Name
		}
	}
	slices.SortStableFunc(c.prefixes, func(a, b namedPrefix) int { return b.p.Bits() - a.p.Bits() })
	return c
}

// EDNS option codes dnsmasq uses to pass the client's MAC address along:
// add-mac puts 6 raw bytes in 65001; add-mac=base64 and add-mac=text use
// 65073 (base64 or "aa:bb:cc:dd:ee:ff").
const (
	ednsMACBinary = 65001
	ednsMACText   = 65073
)

// Identify returns the client for a query from addr. When addr is a
// trusted forwarder, a MAC option or a full-length Client Subnet in the
// query names the device behind it; from anyone else those options are
// ignored, so a client cannot pass itself off as another.
func (c *Clients) Identify(addr netip.Addr, m *dns.Msg) Client {
	cl := Client{Addr: addr}
	if c == nil {
		return cl
	}
	if len(c.trusted) > 0 && c.isTrusted(addr) {
		if opt := m.IsEdns0(); opt != nil {
			c.fromOptions(&cl, opt)
		}
	}
	if cl.Name == "" {
		cl.Name = c.nameOf(cl.Addr)
	}
	return cl
}

func (c *Clients) isTrusted(addr netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (c *Clients) fromOptions(cl *Client, opt *dns.OPT) {
	for _, o := range opt.Option {
		switch o := o.(type) {
		case *dns.EDNS0_SUBNET:
			a, ok := netip.AddrFromSlice(o.Address)
			if !ok {
				continue
			}
			a = a.Unmap()
			// Only a full-length subnet names one device; a /24 is a
			// neighbourhood.
			if int(o.SourceNetmask) == a.BitLen() {
				cl.Addr = a
			}
		case *dns.EDNS0_LOCAL:
			var mac []byte
			switch o.Code {
			case ednsMACBinary:
				mac = o.Data
			case ednsMACText:
				if hw, err := net.ParseMAC(string(o.Data)); err == nil {
					mac = hw
				} else if b, err := base64.StdEncoding.DecodeString(string(o.Data)); err == nil {
					mac = b
				}
			}
			if len(mac) == 6 {
				cl.MAC = net.HardwareAddr(slices.Clone(mac)).String()
				if name, ok := c.byMAC[[6]byte(mac)]; ok {
					cl.Name = name
				}
			}
		}
	}
}

func (c *Clients) nameOf(addr netip.Addr) string {
	if name, ok := c.byAddr[addr]; ok {
		return name
	}
	for _, np := range c.prefixes {
		if np.p.Contains(addr) {
			return np.name
		}
	}
	return ""
}
