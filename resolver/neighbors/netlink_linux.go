//go:build linux

package neighbors

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Neighbour states (linux/neighbour.h) whose link-layer address is known.
const (
	nudReachable = 0x02
	nudStale     = 0x04
	nudDelay     = 0x08
	nudProbe     = 0x10
	nudPermanent = 0x80
	ndaDst       = 1
	ndaLLAddr    = 2
	ndmsgLen     = 12 // family, pads, ifindex, state, flags, type
)

// readNetlinkNeighbors asks the kernel for its neighbour tables, IPv4 and
// IPv6 (what "ip neigh" shows), by address.
func readNetlinkNeighbors() (map[netip.Addr]string, error) {
	tab, err := syscall.NetlinkRIB(syscall.RTM_GETNEIGH, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink neighbour dump: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(tab)
	if err != nil {
		return nil, fmt.Errorf("netlink neighbour dump: %w", err)
	}
	return parseNeighMessages(msgs), nil
}

func parseNeighMessages(msgs []syscall.NetlinkMessage) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWNEIGH || len(m.Data) < ndmsgLen {
			continue
		}
		state := binary.NativeEndian.Uint16(m.Data[8:10])
		if state&(nudReachable|nudStale|nudDelay|nudProbe|nudPermanent) == 0 {
			continue
		}
		var addr netip.Addr
		var mac net.HardwareAddr
		for b := m.Data[ndmsgLen:]; len(b) >= 4; {
			l := int(binary.NativeEndian.Uint16(b[0:2]))
			if l < 4 || l > len(b) {
				break
			}
			switch binary.NativeEndian.Uint16(b[2:4]) {
			case ndaDst:
				addr, _ = netip.AddrFromSlice(b[4:l])
			case ndaLLAddr:
				mac = net.HardwareAddr(b[4:l])
			}
			b = b[min(len(b), (l+3)&^3):]
		}
		if !addr.IsValid() || len(mac) != 6 || mac.String() == "00:00:00:00:00:00" {
			continue
		}
		out[addr.Unmap()] = mac.String()
	}
	return out
}
