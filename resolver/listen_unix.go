//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package resolver

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// haveReusePort says whether several sockets may share one address.
const haveReusePort = true

// listenConfig returns a ListenConfig that sets SO_REUSEPORT when several
// sockets share one address, so the kernel spreads UDP queries across them
// and each has its own receive queue and workers.
func listenConfig(reusePort bool) net.ListenConfig {
	if !reusePort {
		return net.ListenConfig{}
	}
	return net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
