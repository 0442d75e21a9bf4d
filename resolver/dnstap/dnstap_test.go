package dnstap

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// Tap never waits: with no collector (Run not started) the queue fills,
// then every event is dropped and counted; the queue is bounded in bytes
// too, so a few large answers cannot hold much memory.
func TestTapIsBoundedAndNeverBlocks(t *testing.T) {
	w := New(Config{Socket: "/nonexistent", QueueSize: 4}, zap.NewNop())
	client := netip.MustParseAddrPort("192.0.2.1:5353")
	for range 10 {
		w.Tap([]byte("query"), []byte("response"), client, UDP, time.Time{}, "")
	}
	if st := w.Stats(); st.Dropped != 6 || st.Sent != 0 {
		t.Errorf("after 10 events into a queue of 4: %+v, want 6 dropped", st)
	}

	w = New(Config{Socket: "/nonexistent", QueueSize: 1 << 20}, zap.NewNop())
	big := make([]byte, 64<<10)
	n := 0
	for range 512 { // 32 MiB offered
		w.Tap([]byte("q"), big, client, TCP, time.Time{}, "")
		n++
	}
	queued := n - int(w.Stats().Dropped)
	if queued*len(big) > maxQueuedBytes || queued < maxQueuedBytes/len(big)-1 {
		t.Errorf("%d large events queued (%d bytes); want about %d bytes at most", queued, queued*len(big), maxQueuedBytes)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{QueueSize: 10}, ""},
		{Config{Socket: "/run/x.sock", QueueSize: 10}, ""},
		{Config{Address: "127.0.0.1:6000", QueueSize: 10}, ""},
		{Config{Socket: "/s", Address: "127.0.0.1:6000", QueueSize: 10}, "socket or address, not both"},
		{Config{Address: "collector", QueueSize: 10}, "dnstap.address: want host:port"},
		{Config{QueueSize: 0}, "dnstap.queue_size"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
