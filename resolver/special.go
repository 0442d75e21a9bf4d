package resolver

import (
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// localZone is how Vigil answers a zone that must never reach public
// upstreams.
type localZone uint8

const (
	// zoneEmpty is an empty zone served locally: NXDOMAIN below its apex,
	// NODATA (with the zone's SOA) at it.
	zoneEmpty localZone = iota + 1
	// zoneLoopback is localhost: every name in it is the machine itself.
	zoneLoopback
)

// localZones are answered by Vigil unless a [[forward]] zone claims them:
//
//   - RFC 6303's locally-served zones, the reverse zones of addresses that
//     mean something only on the local network or machine (private,
//     loopback, link-local, documentation, "this network", broadcast),
//     with RFC 7793's shared address space; asking the public DNS for them
//     leaks the network's addresses and loads the AS112 servers;
//   - RFC 6761's special-use names: "localhost." is the machine (section
//     6.3), "invalid." and "test." do not exist (6.4, 6.2);
//   - "local." (RFC 6762: multicast DNS, never unicast), "onion." (RFC
//     7686), "alt." (RFC 9476), "home.arpa." (RFC 8375: the home
//     network's own zone, which only a conditional forwarder to the router
//     can answer), and "internal." (reserved by ICANN for private use).
//
// The map is never written after initialisation.
var localZones = func() zoneSet[localZone] {
	zs := zoneSet[localZone]{"localhost.": zoneLoopback}
	for _, z := range []string{
		"invalid.", "test.", "local.", "onion.", "alt.", "home.arpa.", "internal.",
		// IPv4 (RFC 6303 section 4.2-4.4, RFC 7793)
		"0.in-addr.arpa.", "127.in-addr.arpa.", "254.169.in-addr.arpa.",
		"2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.",
		"255.255.255.255.in-addr.arpa.", "10.in-addr.arpa.", "168.192.in-addr.arpa.",
		// IPv6 (RFC 6303 section 4.5-4.7): ULA fd00::/8, link-local
		// fe80::/10, documentation 2001:db8::/32
		"d.f.ip6.arpa.", "8.e.f.ip6.arpa.", "9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
		"8.b.d.0.1.0.0.2.ip6.arpa.",
		// :: and ::1
		strings.Repeat("0.", 32) + "ip6.arpa.", "1." + strings.Repeat("0.", 31) + "ip6.arpa.",
	} {
		zs[z] = zoneEmpty
	}
	for i := 16; i <= 31; i++ {
		zs[strconv.Itoa(i)+".172.in-addr.arpa."] = zoneEmpty
	}
	for i := 64; i <= 127; i++ {
		zs[strconv.Itoa(i)+".100.in-addr.arpa."] = zoneEmpty
	}
	return zs
}()

// mayBeLocalZone reports whether name's top label is that of one of the
// localZones: a switch on one label, where localZones.find hashes every
// suffix of the name.
func mayBeLocalZone(name string) bool {
	switch topLabel(name) {
	case "arpa", "localhost", "invalid", "test", "local", "onion", "alt", "internal":
		return true
	}
	return false
}

// isLoopbackPTR reports whether name is the reverse name of a loopback
// address (127.x.y.z, ::1), which Vigil answers with "localhost.".
func isLoopbackPTR(name string) bool {
	if strings.HasSuffix(name, ".127.in-addr.arpa.") {
		return strings.Count(name, ".") == 6 // d.c.b.127.in-addr.arpa.
	}
	return name == "1."+strings.Repeat("0.", 31)+"ip6.arpa."
}

// isPlainName reports whether name is a single label ("printer."): an A or
// AAAA question for one is a device's short name with no search domain
// (dnsmasq's domain-needed, on in Pi-hole), which public DNS cannot answer.
func isPlainName(name string) bool {
	if len(name) < 2 || name[len(name)-1] != '.' {
		return false
	}
	// A plain loop: a name's first dot is a few bytes in, sooner than
	// IndexByte's vector setup pays for itself.
	for i := range len(name) - 1 {
		if name[i] == '.' {
			return false
		}
	}
	return true
}

// localZoneSOA is the SOA record of a zone Vigil serves itself; its
// minimum (300 s) is the negative answers' TTL.
func localZoneSOA(zone string) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns: "localhost.", Mbox: "nobody.invalid.", Serial: 1, Refresh: 3600, Retry: 1200, Expire: 604800, Minttl: 300}
}
