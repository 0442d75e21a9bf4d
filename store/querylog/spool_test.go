package querylog

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The spool reads every entry once, forward, and resumes where it
// stopped: what the fleet's shipper relies on.
func TestReadSpoolResumes(t *testing.T) {
	cfg := testLogConfig()
	cfg.BatchSize = 64 // several blocks
	q := testLog(t, t.TempDir(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	const n = 1000
	for i := range n {
		q.Record(Entry{Time: time.Now(), ClientAddr: netip.MustParseAddr("192.0.2.1"), QName: fmt.Sprintf("n%d.example.", i),
			QType: "A", Blocked: true, List: "l", Reason: ReasonName, Proto: ProtoUDP})
	}
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().Written < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	segs, err := q.SpoolSegments(true)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	if allowed, _ := q.SpoolSegments(false); len(allowed) != 0 {
		t.Errorf("allowed segments %v, want none", allowed)
	}
	seen := map[string]bool{}
	seqs := map[int64]bool{}
	for _, seg := range segs {
		pos := int64(0)
		for pos < seg.Size {
			blocks := 0
			next, state, err := q.ReadSpool(seg, pos, func(start, end int64, entries []Entry) bool {
				if blocks == 2 {
					return false // stop early: the next read resumes here
				}
				blocks++
				for i, e := range entries {
					if seen[e.QName] {
						t.Errorf("%s read twice", e.QName)
					}
					seen[strings.Clone(e.QName)] = true // a view of the block: fn keeps nothing
					if s := Seq(start, i); seqs[s] {
						t.Errorf("seq %d twice", s)
					} else {
						seqs[s] = true
					}
				}
				return true
			})
			if err != nil || state != SpoolDone || next <= pos {
				t.Fatalf("ReadSpool from %d: next %d, state %v, %v", pos, next, state, err)
			}
			pos = next
		}
	}
	if len(seen) != n {
		t.Errorf("read %d entries, want %d", len(seen), n)
	}
}
