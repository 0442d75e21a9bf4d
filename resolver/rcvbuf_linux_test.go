package resolver

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// TestUDPReadBufferSet: the UDP sockets get server.udp_read_buffer as
// their receive buffer, as far as the kernel's cap (rmem_max) allows.
func TestUDPReadBufferSet(t *testing.T) {
	max, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skip("no /proc/sys/net/core/rmem_max")
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(max)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultServerConfig()
	cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	cfg.UDPSockets = 1
	const want = 1 << 20
	cfg.UDPReadBuffer = want
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg, ServerDeps{Handler: NewLocal(LocalConfig{}, nil), Log: zap.NewNop()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	rc, err := s.udpConns[0].SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var serr error
	if err := rc.Control(func(fd uintptr) { got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	// Linux doubles what it is asked for (its bookkeeping) and caps the
	// request at rmem_max.
	if expect := 2 * min(want, limit); got != expect {
		t.Errorf("SO_RCVBUF %d, want %d (asked %d, rmem_max %d)", got, expect, want, limit)
	}
}
