//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || mips64 || mips64le || loong64)

package resolver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
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
	recvmm mmsgCall                        // recvmmsg into recv, made once
	sendmm mmsgCall                        // sendmmsg from send, made once
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
	b.recvmm.init(unix.SYS_RECVMMSG)
	b.sendmm.init(unix.SYS_SENDMMSG)
	return b
}

// serveUDP is one reader of a UDP socket, c, one of the server's
// listening sockets, all: it reads the queries waiting, answers each
// (handleUDP) and writes the answers back in one call, until shutdown.
//
// A reader that keeps finding queries waiting never gives its processor
// back: its system calls are raw, and the Go scheduler looks for sockets
// that became readable only when a processor has nothing else to run, or
// every 10 ms. On one core, a flood on one socket then left a query on
// another waiting up to 10–20 ms for its reader (bench/fairness.sh). So a
// busy reader does what an event loop does: after every udpBatch queries
// answered without waiting, it reads what is waiting on one other
// listening socket, in turn, and answers it there: after every udpBatch
// queries answered since it last found its own socket empty. On an idle
// socket that is one system call that finds nothing, per batch of 32. The rest of
// the server — TCP connections, DoT, DoH, the API, timers — it lets run,
// on one processor, by giving the scheduler a look at the network after
// each yieldEvery of work without waiting (netpollYield).
func (s *Server) serveUDP(c *net.UDPConn, all []*net.UDPConn, stripe int) {
	own, err := c.SyscallConn()
	if err != nil {
		s.serveUDPEach(c, stripe)
		return
	}
	defer s.wg.Done()
	var others []udpSocket
	for _, o := range all {
		if o == c {
			continue
		}
		if rc, err := o.SyscallConn(); err == nil {
			others = append(others, udpSocket{o, rc})
		}
	}
	var yield *netpollYield // made when first needed
	yieldTried := false
	defer func() { yield.close() }()
	b := newUDPBatchBufs()
	r := s.newUDPReader(stripe)
	turn := stripe          // which other socket is looked at next; readers start apart
	unwaited := 0           // queries answered since this reader last found its socket empty
	busySince := time.Now() // when it last found its socket empty, or yielded
	for {
		n, waited, err := b.read(own, true)
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient: an error about one packet, not the socket
		}
		s.answerBatch(udpSocket{c, own}, b, r, n, true)
		if waited {
			unwaited, busySince = 0, r.rb.batchAt
		} else if r.rb.batchAt.Sub(busySince) >= yieldEvery {
			busySince = r.rb.batchAt
			// Only with one processor: with more, an idle one waits in the
			// poller and sees the rest of the server's sockets at once, and
			// under a quota with two processors the yields cost 10–20 % of
			// the answers per CPU-second (bench/peers.sh), for little. Asked
			// here, not once: Go changes GOMAXPROCS at run time when a
			// cgroup's CPU limit changes (and never sets it below 2 for a
			// limit; one is a machine's single CPU, or GOMAXPROCS=1).
			if runtime.GOMAXPROCS(0) == 1 {
				if !yieldTried {
					yield, yieldTried = newNetpollYield(), true // nil if no descriptor: no yields
				}
				yield.yield()
				busySince = time.Now()
			}
		}
		if unwaited += n; unwaited < udpBatch || len(others) == 0 || s.stopping.Load() {
			continue
		}
		unwaited = 0
		o := others[turn%len(others)]
		turn++
		if n, _, err := b.read(o.rc, false); err == nil && n > 0 {
			// Answers that find no room in the other socket's send buffer
			// are dropped, not waited for: this reader's own socket must
			// not wait on another's.
			s.answerBatch(o, b, r, n, false)
		}
	}
}

// yieldEvery is how long a UDP reader works without waiting before it
// lets the scheduler look at the network (netpollYield).
const yieldEvery = 250 * time.Microsecond

// netpollYield lets the Go scheduler poll the network from a goroutine
// that never waits. runtime.Gosched does not: it queues the goroutine
// again, and the scheduler polls the network only when it has nothing
// queued (or every 10 ms). So the reader makes an event of its own — a
// write to an eventfd the netpoller watches — and waits for it: with
// nothing else to run, the scheduler polls, and finds that event together
// with whatever else became ready (a TCP connection's query, say). Since
// the event is certain, the reader never waits longer than one poll; a
// timer would, as the netpoller sleeps in whole milliseconds. Three
// system calls and two trips through the scheduler, at most once per
// yieldEvery.
type netpollYield struct {
	f      *os.File
	rc     syscall.RawConn
	parked bool
	one    [8]byte               // the eventfd counter's increment: 1, in host order
	drain  [8]byte               // where the counter is read to
	fn     func(fd uintptr) bool // y.wait, bound once
}

func newNetpollYield() *netpollYield {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), "netpoll-yield") // non-blocking: watched by the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	y := &netpollYield{f: f, rc: rc}
	binary.NativeEndian.PutUint64(y.one[:], 1)
	y.fn = y.wait
	return y
}

// wait is the RawConn.Read callback. Its first call makes the event and
// says "not ready", so the goroutine parks until the netpoller reports
// the eventfd; the second drains the eventfd's counter. The event is made
// here, after Read has cleared the descriptor's readiness, not before:
// a poll between an earlier write and that clearing would lose it, and
// the reader would wait for good.
func (y *netpollYield) wait(fd uintptr) bool {
	if !y.parked {
		y.parked = true
		_, _, _ = unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&y.one[0])), 8)
		return false
	}
	_, _, _ = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&y.drain[0])), 8)
	return true
}

func (y *netpollYield) yield() {
	if y == nil {
		return
	}
	y.parked = false
	_ = y.rc.Read(y.fn)
	// What the poll found ready is queued now, perhaps behind this
	// goroutine: let it run first.
	runtime.Gosched()
}

func (y *netpollYield) close() {
	if y != nil {
		y.f.Close()
	}
}

// udpSocket is a listening UDP socket and its raw descriptor.
type udpSocket struct {
	c  *net.UDPConn
	rc syscall.RawConn
}

// answerBatch answers the n queries read into b from sock and writes the
// answers back to it; without wait, those that find no room are dropped.
func (s *Server) answerBatch(sock udpSocket, b *udpBatchBufs, r *udpReader, n int, wait bool) {
	// One clock read for the batch: under load, where a batch holds many
	// queries, the clock was a sixth of a cached answer's cost.
	r.rb.batchAt = time.Now()
	answers := 0
	for i := range n {
		from, ok := b.sender(i)
		if !ok {
			continue
		}
		pkt := b.in[i][:b.recv[i].len]
		reply := s.handleUDP(sock.c, pkt, from, b.out[i][:0], r)
		if reply == nil {
			continue
		}
		if cap(reply) <= maxKeptReply {
			b.out[i] = reply[:0] // keeps a grown buffer for the next batch
		}
		b.queue(answers, i, reply)
		answers++
	}
	b.write(sock.rc, answers, wait)
}

// read reads up to udpBatch queries from rc. With wait it waits for at
// least one and says whether it had to; without, it returns 0 when none is
// waiting.
func (b *udpBatchBufs) read(rc syscall.RawConn, wait bool) (n int, waited bool, err error) {
	for i := range udpBatch {
		b.recv[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.recv[i].hdr.Flags = 0
	}
	return b.recvmm.do(rc, b.recv[:], wait)
}

// mmsgCall is one recvmmsg(2) or sendmmsg(2) on a socket, as the callback
// its RawConn takes. A reader makes its calls once and reuses them: a
// closure made per call cost six allocations per batch.
//
// The system calls are raw, made without telling the scheduler: with
// MSG_DONTWAIT neither can block (nothing waiting, or no room, is EAGAIN,
// and the netpoller waits), and a batch of 32 takes tens of microseconds.
// Announced, a sendmmsg that delivers 32 answers over loopback outlived
// the scheduler's patience, which handed the processor to another thread
// to run the socket's other reader: under a CPU quota, 10,000 context
// switches and 1,500 futex calls in 3 s of cached answers, against 1,700
// and 32 raw (perf stat), and 20 % more cached answers per CPU-second
// (bench/peers.sh's cached mix, 4 alternating runs each).
//
// Not to be copied once init has bound fn and peek to its address.
type mmsgCall struct {
	trap  uintptr // SYS_RECVMMSG or SYS_SENDMMSG
	hdrs  []mmsghdr
	wait  bool // on EAGAIN, let the netpoller wait for the socket
	tries int  // calls made by the last do; more than one means it waited
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // m.call, bound once, for RawConn.Read and Write
	peek  func(fd uintptr)      // the same for RawConn.Control
}

func (m *mmsgCall) init(trap uintptr) {
	m.trap = trap
	m.fn = m.call
	m.peek = func(fd uintptr) { m.call(fd) }
}

func (m *mmsgCall) call(fd uintptr) bool {
	m.tries++
	r, _, e := unix.RawSyscall6(m.trap, fd, uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if (e == unix.EAGAIN || e == unix.EWOULDBLOCK) && m.wait {
		return false // nothing waiting, or no room: the netpoller waits
	}
	m.n, m.errno = int(r), e
	return true
}

// do makes the call on rc for hdrs: the number of messages moved, whether
// it waited for the socket, and the error. Without wait, EAGAIN is 0
// messages and no error.
func (m *mmsgCall) do(rc syscall.RawConn, hdrs []mmsghdr, wait bool) (int, bool, error) {
	m.hdrs, m.wait, m.tries, m.n, m.errno = hdrs, wait, 0, 0, 0
	var err error
	switch {
	case !wait:
		// Control holds the descriptor open but takes none of its locks:
		// Read's would wait for the socket's own reader, which holds it
		// for as long as it waits for a datagram.
		err = rc.Control(m.peek)
	case m.trap == unix.SYS_RECVMMSG:
		err = rc.Read(m.fn)
	default:
		err = rc.Write(m.fn)
	}
	m.hdrs = nil
	switch {
	case err != nil:
		return 0, false, err
	case m.errno == unix.EAGAIN || m.errno == unix.EWOULDBLOCK:
		return 0, m.tries > 1, nil
	case m.errno != 0:
		return 0, m.tries > 1, m.errno
	}
	return m.n, m.tries > 1, nil
}

// replyBatch reads the replies waiting on a connected upstream socket
// (udpMux) in one recvmmsg(2).
type replyBatch struct {
	rc   syscall.RawConn
	bufs [][]byte
	iov  []unix.Iovec
	hdrs []mmsghdr
	call mmsgCall
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
	b.call.init(unix.SYS_RECVMMSG)
	return b
}

// read waits for at least one reply and reads those waiting.
func (b *replyBatch) read() (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Flags = 0
	}
	n, _, err := b.call.do(b.rc, b.hdrs, true)
	return n, err
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
// (an unreachable sender, say) is skipped, as a failed sendto was. With
// wait it waits for room in the send buffer; without, what finds none is
// dropped.
func (b *udpBatchBufs) write(rc syscall.RawConn, n int, wait bool) {
	for sent := 0; sent < n; {
		k, _, err := b.sendmm.do(rc, b.send[sent:n], wait)
		if _, refused := err.(syscall.Errno); err != nil && !refused {
			return // the socket is closing
		}
		switch {
		case err == nil && k == 0:
			return // no room, and not waiting for it
		case err != nil || k <= 0:
			sent++ // the first unsent answer failed: skip it
		default:
			sent += k
		}
	}
}
