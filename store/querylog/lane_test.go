package querylog

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Records of every size of length prefix come back whole: appendRecord
// moves the encoding when its length needs more than one byte.
func TestAppendRecordRoundTrip(t *testing.T) {
	at := time.Unix(1_700_000_000, 42).UTC()
	var want []Entry
	var arena []byte
	for _, n := range []int{0, 1, 60, 100, 127, 128, 200, 300, 20000} {
		e := entry("c", "192.168.1.9", at.Add(time.Duration(n)), strings.Repeat("a", n)+".example.", "V")
		if n == 0 {
			e.ClientName, e.ClientAddr = "", netip.MustParseAddr("2001:db8::1")
		}
		arena = appendRecord(arena, &e, false)
		e.Client = e.identity()
		want = append(want, e)
	}
	recs, err := parseRecords(nil, arena)
	if err != nil || len(recs) != len(want) {
		t.Fatalf("parseRecords: %d records, %v; want %d", len(recs), err, len(want))
	}
	for i, r := range recs {
		got, err := decodeEntry(arena[r.start:r.start+8], arena[r.enc:r.end])
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want[i]) || r.ns != want[i].Time.UnixNano() || !r.blocked {
			t.Errorf("record %d:\n got %+v (ns %d)\nwant %+v", i, got, r.ns, want[i])
		}
		name, addr := entryClient(arena[r.enc:r.end])
		if string(name) != want[i].ClientName || !slices.Equal(addr, want[i].ClientAddr.AsSlice()) {
			t.Errorf("record %d: client %q %v", i, name, addr)
		}
	}
	if _, err := parseRecords(nil, arena[:len(arena)-1]); err == nil {
		t.Error("a cut record parsed")
	}
}

func TestAppendRecordTruncates(t *testing.T) {
	e := entry("", "192.168.1.77", time.Now(), "a.example.", "V")
	arena := appendRecord(nil, &e, true)
	recs, _ := parseRecords(nil, arena)
	got, err := decodeEntry(arena[:8], arena[recs[0].enc:recs[0].end])
	if err != nil || got.ClientAddr != netip.MustParseAddr("192.168.1.0") {
		t.Fatalf("got %v, %v; want the address cut to /24", got.ClientAddr, err)
	}
	if e.ClientAddr != netip.MustParseAddr("192.168.1.77") {
		t.Error("appendRecord changed the caller's entry")
	}
}

// Four readers' lanes and a Record caller at once: every entry is
// written, whether it left in a full lane buffer, in a partial one taken
// at a flush, or at shutdown; and the log reads back newest first.
func TestLaneEntriesAllWritten(t *testing.T) {
	q := testLog(t, t.TempDir(), testLogConfig())
	stop := runLog(q)
	base := time.Now().Add(-time.Minute)
	const perLane = 1000 // not a multiple of laneSize: partial buffers too
	var wg sync.WaitGroup
	for l := range 4 {
		lane := q.NewLane()
		wg.Go(func() {
			name := make([]byte, 0, 64)
			for i := range perLane {
				// The name is a view of a buffer reused for the next
				// entry, as a UDP reader's is.
				name = fmt.Appendf(name[:0], "n%d.l%d.example.", i, l)
				e := entry(fmt.Sprintf("dev%d", l), "10.0.0.1", base.Add(time.Duration(i)*time.Millisecond), string(name), "V")
				lane.Add(&e)
			}
		})
	}
	wg.Go(func() {
		for i := range perLane {
			q.Record(entry("", "10.0.0.9", base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("r%d.example.", i), "V"))
		}
	})
	wg.Wait()
	// A partial lane buffer is taken at the next flush, before shutdown.
	late := q.NewLane()
	e := entry("late", "10.0.0.2", time.Now(), "late.example.", "V")
	late.Add(&e)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := q.Entries(Filter{Client: "late"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a lane's partial buffer was not written within 5 s of flushes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if st := q.Stats(); st.Written != 5*perLane+1 || st.Dropped != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v; want %d written, none dropped or queued", st, 5*perLane+1)
	}
	for l := range 4 {
		client := fmt.Sprintf("dev%d", l)
		var got []string
		f := Filter{Client: client, Limit: 1000}
		for {
			p, err := q.Entries(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Entries {
				got = append(got, e.QName)
			}
			if p.Next == "" {
				break
			}
			f.Cursor = p.Next
		}
		if len(got) != perLane {
			t.Fatalf("%s: %d entries, want %d", client, len(got), perLane)
		}
		for i, name := range got { // newest first
			if want := fmt.Sprintf("n%d.l%d.example.", perLane-1-i, l); name != want {
				t.Fatalf("%s: entry %d is %q, want %q", client, i, name, want)
			}
		}
	}
}

// A lane never waits for the writer: with the queue full its entries are
// dropped and counted, and what was queued is written once the writer
// runs.
func TestLaneFullQueueDrops(t *testing.T) {
	cfg := testLogConfig()
	cfg.QueueSize = 300 // two lane buffers of 128 fit, a third does not
	q := testLog(t, t.TempDir(), cfg)
	lane := q.NewLane()
	for i := range 3*laneSize + 5 {
		e := entry("", "10.0.0.1", time.Now(), fmt.Sprintf("x%d.example.", i), "V")
		lane.Add(&e)
	}
	if st := q.Stats(); st.Queued != 2*laneSize || st.Dropped != laneSize {
		t.Fatalf("stats %+v; want %d queued and %d dropped", st, 2*laneSize, laneSize)
	}
	if !strings.Contains(q.Stats().LossBound, fmt.Sprint(cfg.QueueSize+2*laneSize)) {
		t.Errorf("loss bound %q does not count the lane", q.Stats().LossBound)
	}
	stop := runLog(q)
	stop()
	if st := q.Stats(); st.Written != 2*laneSize+5 {
		t.Errorf("written %d, want the %d queued and the 5 in the lane", st.Written, 2*laneSize+5)
	}
}

// TestQueueCountsTheBatchUntilWritten pins the crash loss bound: entries
// the writer has taken into its batch still count against queue_size until
// they are written, so what a crash can lose never exceeds queue_size plus
// the lanes.
func TestQueueCountsTheBatchUntilWritten(t *testing.T) {
	cfg := testLogConfig()
	cfg.QueueSize = 100
	q := testLog(t, t.TempDir(), cfg)
	e := entry("", "10.0.0.1", time.Now(), "x.example.", "V")
	for range cfg.QueueSize {
		if !q.Record(e) {
			t.Fatal("refused below queue_size")
		}
	}
	q.gather(math.MaxInt) // the writer takes the queue into its batch
	if q.Record(e) {
		t.Error("accepted beyond queue_size while the batch was not yet written")
	}
	q.write()
	if !q.Record(e) {
		t.Error("refused once the batch was written")
	}
	if st := q.Stats(); st.Written != uint64(cfg.QueueSize) || st.Dropped != 1 {
		t.Errorf("written %d, dropped %d; want %d and 1", st.Written, st.Dropped, cfg.QueueSize)
	}
}
