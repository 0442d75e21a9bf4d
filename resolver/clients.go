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
	Addresses []AddrOrPrefix `toml:"addresses"`
	// MACs are hardware addresses, matched when a trusted forwarder passes
	// the device's MAC along (dnsmasq add-mac).
	MACs []MAC `toml:"macs"`
}

// IdentifyConfig is the [identify] section.
type IdentifyConfig struct {
	// TrustedForwarders are the addresses (typically the home router)
	// whose EDNS Client Subnet and MAC options are believed: a query from
	// one of them is attributed to the device they name.
	TrustedForwarders []netip.Prefix `toml:"trusted_forwarders"`
	// LeaseFiles are DHCP lease files (dnsmasq, ISC dhcpd, Kea CSV,
	// odhcpd; detected) whose device names name the clients no
	// [[clients]] entry names, read again when they change.
	LeaseFiles []string `toml:"lease_files"`
	// NeighborTable is where the kernel's neighbour table is read, for
	// the MAC of each client on the same link ([[clients]] entries by MAC,
	// the hardware vendor): "netlink" (IPv4 and IPv6), a file in
	// /proc/net/arp's format, or "" for none.
	NeighborTable string `toml:"neighbor_table"`
	// PTRNames names the clients nothing else names by the PTR record of
	// their address, asked of the [[forward]] zone that holds the reverse
	// name (the router's DNS); never of public DNS.
	PTRNames bool `toml:"ptr_names"`
}

// Neighborhood names the devices Vigil learned about on its own
// (neighbors.Watcher): the name and MAC of addr, "" when unknown.
type Neighborhood interface {
	Lookup(addr netip.Addr) (name, mac string)
}

// ValidateClients checks the [[clients]] tables; it does not change them.
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
		for j, a := range c.Addresses {
			if err := a.check(); err != nil {
				errs = append(errs, fmt.Errorf("%s.addresses[%d]: %w", at, j, err))
			}
		}
	}
	return errors.Join(errs...)
}

// AddrOrPrefix is a client address as configured: one IP address
// ("192.168.1.23", "fd00::23") or a prefix ("192.168.1.0/28"). It decodes
// itself (UnmarshalText) into the prefix it covers, normalised: an address
// is a full-length prefix of the address unmapped from IPv6 (clients are
// identified by unmapped addresses), and a prefix has its host bits
// cleared. The zero value is invalid.
type AddrOrPrefix netip.Prefix

// ParseAddrOrPrefix parses an IP address or a prefix into the normalised
// prefix it covers.
func ParseAddrOrPrefix(s string) (AddrOrPrefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
		p = p.Masked()
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return AddrOrPrefix{}, fmt.Errorf("want an IP address or prefix such as \"192.168.1.23\" or \"192.168.1.0/24\", got %q", s)
	}
	return AddrOrPrefix(p), nil
}

// MustParseAddrOrPrefixes parses addresses and prefixes as
// ParseAddrOrPrefix does and panics on an error; for tests.
func MustParseAddrOrPrefixes(ss ...string) []AddrOrPrefix {
	out := make([]AddrOrPrefix, 0, len(ss))
	for _, s := range ss {
		a, err := ParseAddrOrPrefix(s)
		if err != nil {
			panic(fmt.Sprintf("resolver.MustParseAddrOrPrefixes: %v", err))
		}
		out = append(out, a)
	}
	return out
}

// Prefix returns the prefix covered.
func (a AddrOrPrefix) Prefix() netip.Prefix { return netip.Prefix(a) }

// String returns the configuration form: the bare address for a
// full-length prefix, else the prefix.
func (a AddrOrPrefix) String() string {
	p := netip.Prefix(a)
	if p.IsValid() && p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// MarshalText implements encoding.TextMarshaler with String's form; the
// zero value is "".
func (a AddrOrPrefix) MarshalText() ([]byte, error) {
	if !netip.Prefix(a).IsValid() {
		return []byte{}, nil
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseAddrOrPrefix.
func (a *AddrOrPrefix) UnmarshalText(text []byte) error {
	p, err := ParseAddrOrPrefix(string(text))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// check reports whether a is valid and normalised, as ParseAddrOrPrefix
// returns it.
func (a AddrOrPrefix) check() error {
	p := netip.Prefix(a)
	if !p.IsValid() || p != p.Masked() {
		return fmt.Errorf("want an IP address or prefix such as \"192.168.1.23\" or \"192.168.1.0/24\", got %q", a)
	}
	return nil
}

// MAC is a 48-bit hardware address. It decodes itself (UnmarshalText) from
// any form net.ParseMAC reads ("aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff",
// "aabb.ccdd.eeff") and encodes itself as "aa:bb:cc:dd:ee:ff".
type MAC [6]byte

// ParseMAC parses a 48-bit hardware address.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("want a MAC address such as \"aa:bb:cc:dd:ee:ff\", got %q", s)
	}
	return MAC(hw), nil
}

// MustParseMACs parses MAC addresses as ParseMAC does and panics on an
// error; for tests.
func MustParseMACs(ss ...string) []MAC {
	out := make([]MAC, 0, len(ss))
	for _, s := range ss {
		m, err := ParseMAC(s)
		if err != nil {
			panic(fmt.Sprintf("resolver.MustParseMACs: %v", err))
		}
		out = append(out, m)
	}
	return out
}

// String returns the address as "aa:bb:cc:dd:ee:ff".
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// MarshalText implements encoding.TextMarshaler with String's form.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC.
func (m *MAC) UnmarshalText(text []byte) error {
	v, err := ParseMAC(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Clients identifies the device behind a query. It is built once from the
// configuration and immutable: identification is map lookups, never
// parsing of configuration per query.
type Clients struct {
	byAddr   map[netip.Addr]string
	prefixes []namedPrefix // longest first
	byMAC    map[[6]byte]string
	trusted  []netip.Prefix
	learned  Neighborhood // nil when nothing is learned
	// namedMAC and namedAddr are the names given to devices from the
	// dashboard, the API or the CLI (Naming).
	namedMAC  map[[6]byte]string
	namedAddr map[netip.Addr]string
}

// Naming returns c naming devices by the names given them by hand, for a
// Clients built by NewClients and not yet in use: names maps a MAC
// ("aa:bb:cc:dd:ee:ff") or an address to a name. A [[clients]] entry
// still wins; a given name wins over the name a device gave itself.
func (c *Clients) Naming(names map[string]string) *Clients {
	for key, name := range names {
		if hw, err := net.ParseMAC(key); err == nil && len(hw) == 6 {
			if c.namedMAC == nil {
				c.namedMAC = map[[6]byte]string{}
			}
			c.namedMAC[[6]byte(hw)] = name
		} else if a, err := netip.ParseAddr(key); err == nil {
			if c.namedAddr == nil {
				c.namedAddr = map[netip.Addr]string{}
			}
			c.namedAddr[a.Unmap()] = name
		}
	}
	return c
}

// Learning returns c naming the clients its tables do not through n, for
// a Clients built by NewClients and not yet in use.
func (c *Clients) Learning(n Neighborhood) *Clients {
	c.learned = n
	return c
}

type namedPrefix struct {
	p    netip.Prefix
	name string
}

// NewClients indexes validated client tables and the trusted forwarders.
func NewClients(clients []ClientConfig, id IdentifyConfig) *Clients {
	c := &Clients{byAddr: map[netip.Addr]string{}, byMAC: map[[6]byte]string{}, trusted: id.TrustedForwarders}
	for _, cl := range clients {
		for _, a := range cl.Addresses {
			p := a.Prefix()
			if p.IsSingleIP() {
				c.byAddr[p.Addr()] = cl.Name
			} else {
				c.prefixes = append(c.prefixes, namedPrefix{p, cl.Name})
			}
		}
		for _, m := range cl.MACs {
			c.byMAC[m] = cl.Name
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
		c.complete(&cl)
	}
	return cl
}

// complete names cl by its address from the [[clients]] tables, or else
// from what the network told: a [[clients]] entry for the MAC the
// neighbour table or a lease gives, then the name the device gave its
// DHCP server. The Server's packed answers use it too.
func (c *Clients) complete(cl *Client) {
	if cl.Name = c.nameOf(cl.Addr); cl.Name != "" || c.learned == nil && c.namedAddr == nil && c.namedMAC == nil {
		return
	}
	var name, mac string
	if c.learned != nil {
		name, mac = c.learned.Lookup(cl.Addr)
	}
	if cl.MAC == "" {
		cl.MAC = mac
	}
	if len(c.byMAC) > 0 || len(c.namedMAC) > 0 {
		if hw, ok := colonMAC(cl.MAC); ok {
			if cl.Name = c.byMAC[hw]; cl.Name == "" {
				cl.Name = c.namedMAC[hw]
			}
		}
	}
	if cl.Name == "" && len(c.namedAddr) > 0 {
		cl.Name = c.namedAddr[cl.Addr]
	}
	if cl.Name == "" {
		cl.Name = name
	}
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

// colonMAC reads "aa:bb:cc:dd:ee:ff" (lowercase, as the neighbors
// package writes MACs) without allocating: it runs per query.
func colonMAC(s string) ([6]byte, bool) {
	var hw [6]byte
	if len(s) != 17 {
		return hw, false
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' {
			return hw, false
		}
		hi, ok1 := hexVal(s[3*i])
		lo, ok2 := hexVal(s[3*i+1])
		if !ok1 || !ok2 {
			return hw, false
		}
		hw[i] = hi<<4 | lo
	}
	return hw, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
