//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || mips64 || mips64le || loong64)

package resolver

import (
	"time"

	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched UDP. One recvmmsg(2) reads up to udpBatch queries that are
// waiting, and one sendmmsg(2) writes their answers: under load the
// system calls, which are most of what a cached or blocked answer costs,
// are shared by the batch. A reader that finds one query waiting reads one,
// as before. The answers go back to the addresses the queries came from,
// the kernel's own sockaddr bytes, so nothing is converted or allocated.
//
// Only on 64-bit Linux: the mmsghdr layout below is the 64-bit one. Other
// platforms read a packet at a time (serveUDPEach).

// udpBatch is how many queries one system call reads at most.
const udpBatch = 32

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// udpBatchBufs is one reader's buffers for a batch, reused for its life.
type udpBatchBufs struct {
	in     [udpBatch][]byte                // query datagrams
	names  [udpBatch]unix.RawSockaddrInet6 // their senders, as the kernel wrote them
	iovIn  [udpBatch]unix.Iovec            // one per query buffer
	recv   [udpBatch]mmsghdr               // recvmmsg's vector
	out    [udpBatch][]byte                // answers, kept across batches
	iovOut [udpBatch]unix.Iovec            // one per answer
	send   [udpBatch]mmsghdr               // sendmmsg's vector
}

func newUDPBatchBufs() *udpBatchBufs {
	b := &udpBatchBufs{}
	for i := range udpBatch {
		b.in[i] = make([]byte, udpReadSize)
		b.out[i] = make([]byte, 0, 512)
		b.iovIn[i].Base = &b.in[i][0]
		b.iovIn[i].SetLen(udpReadSize)
		h := &b.recv[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovIn[i]
		h.SetIovlen(1)
	}
	return b
}

// serveUDP is one reader of a UDP socket: it reads the queries waiting,
// answers each (handleUDP) and writes the answers back in one call, until
// shutdown.
func (s *Server) serveUDP(c *net.UDPConn, stripe int) {
	rc, err := c.SyscallConn()
	if err != nil {
		s.serveUDPEach(c, stripe)
		return
	}
	defer s.wg.Done()
	b := newUDPBatchBufs()
	r := s.newUDPReader(stripe)
	for {
		n, err := b.read(rc)
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient: an error about one packet, not the socket
		}
		// One clock read for the batch: under load, where a batch holds
		// many queries, the clock was a sixth of a cached answer's cost.
		r.rb.batchAt = time.Now()
		answers := 0
		for i := range n {
			from, ok := b.sender(i)
			if !ok {
				continue
			}
			pkt := b.in[i][:b.recv[i].len]
			reply := s.handleUDP(c, pkt, from, b.out[i][:0], r)
			if reply == nil {
				continue
			}
			if cap(reply) <= maxKeptReply {
				b.out[i] = reply[:0] // keeps a grown buffer for the next batch
			}
			b.queue(answers, i, reply)
			answers++
		}
		b.write(rc, answers)
	}
}

// read waits for at least one query and reads up to udpBatch.
func (b *udpBatchBufs) read(rc syscall.RawConn) (int, error) {
	for i := range udpBatch {
		b.recv[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.recv[i].hdr.Flags = 0
	}
	return recvmmsg(rc, b.recv[:])
}

// recvmmsg waits for at least one datagram on rc and reads up to
// len(hdrs) into the buffers hdrs point at.
//
// recvmmsg and sendmmsg are raw system calls, made without telling the
// scheduler: with MSG_DONTWAIT neither can block (nothing waiting, or no
// room, is EAGAIN, and the netpoller waits), and a batch of 32 takes tens
// of microseconds. Announced, a sendmmsg that delivers 32 answers over
// loopback outlived the scheduler's patience, which handed the processor
// to another thread to run the socket's other reader: under a CPU quota,
// 10,000 context switches and 1,500 futex calls in 3 s of cached answers,
// against 1,700 and 32 raw (perf stat), and 20 % more cached answers per
// CPU-second (bench/peers.sh's cached mix, 4 alternating runs each).
func recvmmsg(rc syscall.RawConn, hdrs []mmsghdr) (int, error) {
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
			return false // nothing waiting: let the netpoller wait
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// replyBatch reads the replies waiting on a connected upstream socket
// (udpMux) in one recvmmsg(2).
type replyBatch struct {
	rc   syscall.RawConn
	bufs [][]byte
	iov  []unix.Iovec
	hdrs []mmsghdr
}

func newReplyBatch(c *net.UDPConn, n, size int) *replyBatch {
	rc, _ := c.SyscallConn() // fails only for a nil conn
	b := &replyBatch{rc: rc, bufs: make([][]byte, n), iov: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}
	for i := range n {
		b.bufs[i] = make([]byte, size)
		b.iov[i].Base = &b.bufs[i][0]
		b.iov[i].SetLen(size)
		b.hdrs[i].hdr.Iov = &b.iov[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// read waits for at least one reply and reads those waiting.
func (b *replyBatch) read() (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Flags = 0
	}
	return recvmmsg(b.rc, b.hdrs)
}

// datagram returns reply i of the last read; one cut short by its buffer
// is returned empty (a misbehaving upstream: ignored like garbage).
func (b *replyBatch) datagram(i int) []byte {
	if b.hdrs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil
	}
	return b.bufs[i][:b.hdrs[i].len]
}

// sender returns query i's source address.
func (b *udpBatchBufs) sender(i int) (netip.AddrPort, bool) {
	sa := &b.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	}
	return netip.AddrPort{}, false
}

// queue puts answer k, to query i's sender, into the send vector.
func (b *udpBatchBufs) queue(k, i int, reply []byte) {
	b.iovOut[k].Base = unsafe.SliceData(reply)
	b.iovOut[k].SetLen(len(reply))
	h := &b.send[k].hdr
	h.Name = b.recv[i].hdr.Name
	h.Namelen = b.recv[i].hdr.Namelen
	h.Iov = &b.iovOut[k]
	h.SetIovlen(1)
}

// write sends the first n queued answers; an answer the kernel refuses
// (an unreachable sender, say) is skipped, as a failed sendto was.
func (b *udpBatchBufs) write(rc syscall.RawConn, n int) {
	for sent := 0; sent < n; {
		var errno syscall.Errno
		var k int
		err := rc.Write(func(fd uintptr) bool {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.send[sent])), uintptr(n-sent), unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
				return false
			}
			k, errno = int(r), e
			return true
		})
		switch {
		case err != nil:
			return // the socket is closing
		case errno != 0 || k <= 0:
			sent++ // the first unsent answer failed: skip it
		default:
			sent += k
		}
	}
}
