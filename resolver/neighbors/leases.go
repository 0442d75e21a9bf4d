package neighbors

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Lease is one address a DHCP server handed out, with what the device
// told it about itself.
type Lease struct {
	Addr     netip.Addr
	MAC      string    // "aa:bb:cc:dd:ee:ff", "" when the file has none (DHCPv6)
	Hostname string    // as the device sent it, "" when it sent none
	Expires  time.Time // zero for infinite leases or unknown
}

// LeaseFormat is a lease file's dialect.
type LeaseFormat string

// The lease files Vigil reads.
const (
	LeasesDnsmasq LeaseFormat = "dnsmasq" // dnsmasq (Pi-hole, OpenWrt without odhcpd)
	LeasesISC     LeaseFormat = "isc"     // ISC dhcpd's dhcpd.leases
	LeasesKea     LeaseFormat = "kea"     // Kea's memfile CSV (kea-leases4.csv, kea-leases6.csv)
	LeasesOdhcpd  LeaseFormat = "odhcpd"  // OpenWrt's odhcpd state file
)

// DetectLeaseFormat guesses a lease file's dialect from its text.
func DetectLeaseFormat(data []byte) LeaseFormat {
	head := data[:min(len(data), 4096)]
	switch {
	case bytes.HasPrefix(head, []byte("address,")):
		return LeasesKea
	case bytes.Contains(head, []byte("lease ")) && bytes.Contains(head, []byte("{")):
		return LeasesISC
	case bytes.HasPrefix(bytes.TrimSpace(head), []byte("# ")):
		return LeasesOdhcpd
	}
	return LeasesDnsmasq
}

// ParseLeases reads a lease file of any dialect Vigil knows. Lines it
// cannot read are skipped: a lease file is written by another program,
// often while Vigil reads it.
func ParseLeases(data []byte) []Lease {
	switch DetectLeaseFormat(data) {
	case LeasesKea:
		return parseKea(data)
	case LeasesISC:
		return parseISC(data)
	case LeasesOdhcpd:
		return parseOdhcpd(data)
	}
	return parseDnsmasq(data)
}

// validHostname keeps names a device sent that can name it: printable,
// no spaces, not dnsmasq's "*" for none.
func validHostname(s string) string {
	s = strings.TrimSuffix(strings.Trim(s, `"`), ".")
	if s == "" || s == "*" || s == "-" || len(s) > 253 {
		return ""
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == '"' || c == '\\' {
			return ""
		}
	}
	return strings.ToLower(s)
}

func normMAC(s string) string {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return ""
	}
	return hw.String()
}

func unixTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// parseDnsmasq reads dnsmasq's leases: "expiry mac ip hostname client-id"
// for DHCPv4, and after a "duid" line, "expiry iaid ip hostname duid" for
// DHCPv6 (no MAC).
func parseDnsmasq(data []byte) []Lease {
	var out []Lease
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] == "duid" {
			continue
		}
		addr, err := netip.ParseAddr(f[2])
		if err != nil {
			continue
		}
		l := Lease{Addr: addr.Unmap(), Hostname: validHostname(f[3]), Expires: unixTime(f[0])}
		if addr.Is4() {
			l.MAC = normMAC(f[1])
		}
		out = append(out, l)
	}
	return out
}

// parseISC reads ISC dhcpd's "lease ADDR { ... }" blocks; a later block
// for the same address supersedes an earlier one (the file is a journal).
func parseISC(data []byte) []Lease {
	var out []Lease
	var cur *Lease
	active := true
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(strings.TrimSuffix(line, ";"))
		switch {
		case len(f) >= 3 && f[0] == "lease" && f[2] == "{":
			if addr, err := netip.ParseAddr(f[1]); err == nil {
				cur, active = &Lease{Addr: addr.Unmap()}, true
			}
		case cur == nil:
		case line == "}":
			if active {
				out = append(out, *cur)
			}
			cur = nil
		case len(f) >= 3 && f[0] == "hardware" && f[1] == "ethernet":
			cur.MAC = normMAC(f[2])
		case len(f) >= 2 && f[0] == "client-hostname":
			cur.Hostname = validHostname(strings.Join(f[1:], " "))
		case len(f) >= 3 && f[0] == "binding" && f[1] == "state":
			active = f[2] == "active"
		case len(f) >= 4 && f[0] == "ends":
			if t, err := time.Parse("2006/01/02 15:04:05", f[2]+" "+f[3]); err == nil {
				cur.Expires = t
			}
		}
	}
	return lastPerAddr(out) // the journal appends
}

// parseKea reads Kea's memfile CSV by its header's column names.
func parseKea(data []byte) []Lease {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	var out []Lease
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			continue
		}
		addr, err := netip.ParseAddr(get(row, "address"))
		if err != nil || get(row, "state") != "" && get(row, "state") != "0" { // 0: default (assigned)
			continue
		}
		l := Lease{Addr: addr.Unmap(), MAC: normMAC(get(row, "hwaddr")), Hostname: validHostname(get(row, "hostname")), Expires: unixTime(get(row, "expire"))}
		out = append(out, l)
	}
	return lastPerAddr(out) // Kea appends too
}

// lastPerAddr keeps, of a lease file that appends, the last lease of each
// address: the one in force.
func lastPerAddr(leases []Lease) []Lease {
	last := map[netip.Addr]int{}
	for i, l := range leases {
		last[l.Addr] = i
	}
	var kept []Lease
	for i, l := range leases {
		if last[l.Addr] == i {
			kept = append(kept, l)
		}
	}
	return kept
}

// parseOdhcpd reads OpenWrt odhcpd's state file: lines "# iface duid iaid
// hostname valid-until ... addr/len ..." (DHCPv6 and, with odhcpd as the
// DHCPv4 server too, "ipv4" leases whose duid field is the MAC).
func parseOdhcpd(data []byte) []Lease {
	var out []Lease
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "#" {
			continue
		}
		name := validHostname(f[4])
		var mac string
		if f[3] == "ipv4" && len(f[2]) == 12 { // the DUID field holds the MAC, bare hex
			mac = normMAC(f[2][0:2] + ":" + f[2][2:4] + ":" + f[2][4:6] + ":" + f[2][6:8] + ":" + f[2][8:10] + ":" + f[2][10:12])
		}
		for _, a := range f[8:] {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				if addr, err2 := netip.ParseAddr(a); err2 == nil {
					p = netip.PrefixFrom(addr, addr.BitLen())
				} else {
					continue
				}
			}
			out = append(out, Lease{Addr: p.Addr().Unmap(), MAC: mac, Hostname: name, Expires: unixTime(f[5])})
		}
	}
	return out
}

// ParseNeighbors reads the kernel's IPv4 neighbour table as /proc/net/arp
// shows it: complete entries only (flags 0x2), by address.
func ParseNeighbors(data []byte) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] == "IP" {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil || flags&0x2 == 0 {
			continue
		}
		addr, err := netip.ParseAddr(f[0])
		mac := normMAC(f[3])
		if err != nil || mac == "" || mac == "00:00:00:00:00:00" {
			continue
		}
		out[addr.Unmap()] = mac
	}
	return out
}
