package querylog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// writeEntries records n blocked entries for client at times from at on,
// one second apart, with a writer of its own in dir, as one run of the
// server would, and waits until they are written.
func writeEntries(t *testing.T, dir string, cfg Config, client string, at time.Time, n int) {
	t.Helper()
	q := testLog(t, dir, cfg)
	stop := runLog(q)
	for i := range n {
		q.Record(entry(client, "10.0.0.1", at.Add(time.Duration(i)*time.Second), fmt.Sprintf("n%d.example.", i), "V"))
	}
	stop()
	if st := q.Stats(); st.Written != uint64(n) {
		t.Fatalf("written %d of %d", st.Written, n)
	}
}

func countEntries(t *testing.T, q *Log, f Filter) int {
	t.Helper()
	n := 0
	f.Limit = 1000
	for {
		p, err := q.Entries(f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Entries)
		if p.Next == "" {
			return n
		}
		f.Cursor = p.Next
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segmentDir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A crash can leave a torn frame at the end of the segment being written:
// readers see every whole frame, and the writer cuts the torn one off and
// appends after it.
func TestSegmentTornTail(t *testing.T) {
	dir := t.TempDir()
	cfg := testLogConfig()
	now := time.Now().UTC().Truncate(time.Second)
	writeEntries(t, dir, cfg, "a", now.Add(-10*time.Second), 5)

	files := segmentFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no segment written")
	}
	for _, torn := range [][]byte{
		{frameMagic, 200, 0, 0},         // half a head
		{frameMagic, 40, 0, 0, 0, 1, 2}, // a head and part of a payload
		make([]byte, 30),                // zeros, as a file system may leave after a crash
	} {
		f, err := os.OpenFile(files[len(files)-1], os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(torn)
		f.Close()

		if n := countEntries(t, testLog(t, dir, cfg), Filter{}); n != 5 {
			t.Fatalf("torn tail %v: read %d entries, want 5", torn, n)
		}
	}
	writeEntries(t, dir, cfg, "a", now.Add(-4*time.Second), 3)
	if n := countEntries(t, testLog(t, dir, cfg), Filter{}); n != 8 {
		t.Errorf("after appending past the repaired tail: %d entries, want 8", n)
	}
}

// A damaged frame hides the older part of its segment, never more, and
// never fails a read.
func TestSegmentDamagedFrame(t *testing.T) {
	dir := t.TempDir()
	cfg := testLogConfig()
	cfg.BatchSize = 4 // several frames
	hourAgo := time.Now().UTC().Add(-time.Hour).Truncate(time.Hour)
	writeEntries(t, dir, cfg, "old", hourAgo.Add(time.Minute), 8)
	writeEntries(t, dir, cfg, "new", time.Now().Add(-20*time.Second), 8)
	r := testLog(t, dir, cfg)
	if got := len(segmentFiles(t, dir)); got != 2 {
		t.Fatalf("%d segments, want 2", got)
	}
	// Flip a byte in the first frame of the older segment.
	old := r.segs.path(1, hourAgo)
	b, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	b[frameHead+20] ^= 0xff
	if err := os.WriteFile(old, b, 0o640); err != nil {
		t.Fatal(err)
	}
	n := countEntries(t, r, Filter{})
	if n < 8 || n >= 16 {
		t.Errorf("read %d entries, want the 8 new ones and the undamaged old ones (< 16)", n)
	}
	if n := countEntries(t, r, Filter{Client: "new"}); n != 8 {
		t.Errorf("client new: %d entries, want 8", n)
	}
}

// Segments past the retention are deleted as whole hours; readers hide
// their entries before that.
func TestSegmentExpiry(t *testing.T) {
	dir := t.TempDir()
	cfg := testLogConfig()
	cfg.Retention = 2 * time.Hour
	now := time.Now().UTC()
	writeEntries(t, dir, cfg, "c", now.Add(-5*time.Hour), 3)
	writeEntries(t, dir, cfg, "c", now.Add(-90*time.Minute), 3)
	writeEntries(t, dir, cfg, "c", now.Add(-time.Minute), 3)
	r := testLog(t, dir, cfg)
	// The writer deleted the 5-hour-old segment when it started.
	for _, f := range segmentFiles(t, dir) {
		if filepath.Base(f) == filepath.Base(r.segs.path(1, hourOf(now.Add(-5*time.Hour)))) {
			t.Errorf("%s not deleted", f)
		}
	}
	if n := countEntries(t, r, Filter{}); n != 6 {
		t.Errorf("%d entries within the retention, want 6", n)
	}
	r.segs.setRetention(time.Hour, time.Hour)
	if n := countEntries(t, r, Filter{}); n != 3 {
		t.Errorf("%d entries within an hour, want 3", n)
	}
}

// Readers walk the log while the writer appends to the same segment: they
// never see a partial frame or an error.
func TestSegmentReadWhileWriting(t *testing.T) {
	cfg := testLogConfig()
	cfg.BatchSize = 16
	q := testLog(t, t.TempDir(), cfg)
	stop := runLog(q)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		last := 0
		for {
			select {
			case <-done:
				return
			default:
			}
			n := countEntries(t, q, Filter{})
			if n < last {
				t.Errorf("read %d entries after %d", n, last)
				return
			}
			last = n
		}
	})
	base := time.Now().Add(-time.Minute)
	for i := range 3000 {
		for !q.Record(entry("c", "10.0.0.1", base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("n%d.example.", i), "V")) {
			time.Sleep(time.Millisecond)
		}
	}
	stop()
	close(done)
	wg.Wait()
	if n := countEntries(t, q, Filter{}); n != 3000 {
		t.Errorf("%d entries, want 3000", n)
	}
}

func FuzzParseFrame(f *testing.F) {
	var bb blockBuilder
	e := entry("p", "10.0.0.1", time.Unix(1_700_000_000, 0), "x.example.", "V")
	arena := appendRecord(appendRecord(nil, &e, false), &e, false)
	recs, _ := parseRecords(nil, arena)
	_ = bb.add(arena, recs, true, func(_ int, _ time.Time, fr []byte) error {
		f.Add(append([]byte(nil), fr...))
		return nil
	})
	f.Add([]byte{frameMagic, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, ok := parseFrame(b)
		if !ok {
			return
		}
		fr.hasClient("p")
		_, _ = decodeBody(fr.body, nil)
	})
}

// A frame written before summaries (magic 0xB1, no summary) still reads,
// with its body where it was.
func TestFrameWithoutSummary(t *testing.T) {
	body := []byte("compressed body")
	b := appendFrameBytes(nil, time.Unix(1, 0), time.Unix(2, 0), []string{"tv"}, nil, body)
	b[0] = frameMagicV1
	binary.LittleEndian.PutUint32(b[len(b)-8:], crc32.Checksum(b[:len(b)-frameTail], castagnoli))
	fr, ok := parseFrame(b)
	if !ok || fr.summary != nil || string(fr.body) != string(body) || !fr.hasClient("tv") {
		t.Fatalf("v1 frame: %+v %v", fr, ok)
	}
	sum := binary.AppendUvarint(nil, 0)
	b2 := appendFrameBytes(nil, time.Unix(1, 0), time.Unix(2, 0), []string{"tv"}, sum, body)
	fr, ok = parseFrame(b2)
	if !ok || fr.summary == nil || string(fr.body) != string(body) {
		t.Fatalf("v2 frame: %+v %v", fr, ok)
	}
}
