//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || mips64 || mips64le || loong64))

package resolver

import "net"

// serveUDP is one reader of a UDP socket; without batched system calls
// (udp_batch_linux.go) it reads a packet at a time.
func (s *Server) serveUDP(c *net.UDPConn, stripe int) { s.serveUDPEach(c, stripe) }
