//go:build linux

package neighbors

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
)

// neighMsg builds one RTM_NEWNEIGH message as the kernel sends it.
func neighMsg(state uint16, addr netip.Addr, mac []byte) syscall.NetlinkMessage {
	data := make([]byte, ndmsgLen)
	if addr.Is4() {
		data[0] = syscall.AF_INET
	} else {
		data[0] = syscall.AF_INET6
	}
	binary.NativeEndian.PutUint16(data[8:10], state)
	attr := func(typ uint16, v []byte) {
		a := make([]byte, 4, (4+len(v)+3)&^3)
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], typ)
		a = append(a, v...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		data = append(data, a...)
	}
	attr(ndaDst, addr.AsSlice())
	if mac != nil {
		attr(ndaLLAddr, mac)
	}
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: syscall.RTM_NEWNEIGH}, Data: data}
}

func TestParseNeighMessages(t *testing.T) {
	mac := []byte{0xa4, 0x45, 0x19, 1, 2, 3}
	got := parseNeighMessages([]syscall.NetlinkMessage{
		neighMsg(nudReachable, netip.MustParseAddr("192.168.1.23"), mac),
		neighMsg(nudStale, netip.MustParseAddr("fe80::a645:19ff:fe01:203"), mac),
		neighMsg(0x01, netip.MustParseAddr("192.168.1.99"), nil), // incomplete
		neighMsg(0x20, netip.MustParseAddr("192.168.1.98"), mac), // failed
		{Header: syscall.NlMsghdr{Type: syscall.NLMSG_DONE}},
	})
	want := map[string]string{"192.168.1.23": "a4:45:19:01:02:03", "fe80::a645:19ff:fe01:203": "a4:45:19:01:02:03"}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for a, m := range want {
		if got[netip.MustParseAddr(a)] != m {
			t.Errorf("%s: %q, want %q", a, got[netip.MustParseAddr(a)], m)
		}
	}
	// The real table reads without an error (it may be empty).
	real, err := readNetlinkNeighbors()
	if err != nil {
		t.Errorf("reading the kernel's table: %v", err)
	}
	t.Logf("the kernel's neighbour table: %v", real)
}
