//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || mips64 || mips64le || loong64))

package resolver

import "net"

// serveUDP is one reader of a UDP socket; without batched system calls
// (udp_batch_linux.go) it reads a packet at a time.
func (s *Server) serveUDP(c *net.UDPConn, _ []*net.UDPConn, stripe int) {
	s.serveUDPEach(c, stripe)
}

// replyBatch reads a connected upstream socket's replies (udpMux) one at a
// time where recvmmsg(2) is not available.
type replyBatch struct {
	c    *net.UDPConn
	buf  []byte
	n    int
	full bool
}

func newReplyBatch(c *net.UDPConn, _, size int) *replyBatch {
	return &replyBatch{c: c, buf: make([]byte, size)}
}

// read waits for one reply.
func (b *replyBatch) read() (int, error) {
	n, err := b.c.Read(b.buf)
	if err != nil {
		return 0, err
	}
	b.n, b.full = n, n == len(b.buf)
	return 1, nil
}

// datagram returns the reply read; one that filled the buffer may have
// been cut short and is returned empty (ignored like garbage).
func (b *replyBatch) datagram(int) []byte {
	if b.full {
		return nil
	}
	return b.buf[:b.n]
}
