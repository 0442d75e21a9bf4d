//go:build !linux

package neighbors

import (
	"errors"
	"net/netip"
)

func readNetlinkNeighbors() (map[netip.Addr]string, error) {
	return nil, errors.New("netlink neighbour tables exist on Linux only")
}
