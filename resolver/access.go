package resolver

import "net/netip"

// AccessList says which clients may query. It is built once from the
// configuration and immutable afterwards, so it is safe for concurrent use.
type AccessList struct {
	v4, v6 []netip.Prefix
}

// NewAccessList returns an access list allowing the given prefixes.
func NewAccessList(allow []netip.Prefix) *AccessList {
	a := &AccessList{}
	for _, p := range allow {
		p = p.Masked()
		if p.Addr().Is4() {
			a.v4 = append(a.v4, p)
		} else {
			a.v6 = append(a.v6, p)
		}
	}
	return a
}

// Allowed reports whether addr may query. addr must be unmapped: an
// IPv4-mapped IPv6 address is matched against the IPv4 prefixes.
func (a *AccessList) Allowed(addr netip.Addr) bool {
	list := a.v6
	if addr.Is4() {
		list = a.v4
	}
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
