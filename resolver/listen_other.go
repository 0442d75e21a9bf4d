//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package resolver

import "net"

// haveReusePort says whether several sockets may share one address.
const haveReusePort = false

// listenConfig returns a plain ListenConfig: without SO_REUSEPORT every UDP
// address gets one socket, read by all the workers.
func listenConfig(bool) net.ListenConfig { return net.ListenConfig{} }
