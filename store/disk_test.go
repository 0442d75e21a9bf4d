package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// fakeDisk is an injected free-space function.
type fakeDisk struct{ free atomic.Uint64 }

func newFakeDisk(free uint64) *fakeDisk {
	d := &fakeDisk{}
	d.free.Store(free)
	return d
}

func (d *fakeDisk) bytes(string) (uint64, error) { return d.free.Load(), nil }

func diskConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.ValueLogFileSize = 1 << 20
	return cfg
}

// every write the store offers, by name.
func writes(s *Store) map[string]func() error {
	return map[string]func() error{
		"PutList":       func() error { return s.PutList("x", ListMeta{List: "l"}, []byte("||a.example^\n")) },
		"PutListMeta":   func() error { return s.PutListMeta("x", ListMeta{List: "l"}) },
		"DeleteList":    func() error { return s.DeleteList("gone") },
		"PutSnapshot":   func() error { return s.PutSnapshot("cache", []byte(strings.Repeat("x", 10000))) },
		"AddSeries":     func() error { return s.AddSeries(time.Now(), 1, 1, time.Hour) },
		"PutAllowed":    func() error { return s.PutAllowed("ok.example") },
		"DeleteAllowed": func() error { return s.DeleteAllowed("ok.example") },
	}
}

// TestLowDiskSkipsEveryWrite: under min_free_bytes every write is skipped
// with ErrLowDisk and counted, reads go on, and the episode is reported
// once, not per write; with space back, writes work again.
func TestLowDiskSkipsEveryWrite(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	disk := newFakeDisk(1 << 40)
	s, err := openForServe(diskConfig(t.TempDir()), zap.New(core), disk.bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutList("x", ListMeta{List: "l", HasCopy: true}, []byte("||kept.example^\n")); err != nil {
		t.Fatal(err)
	}

	disk.free.Store(uint64(s.cfg.MinFreeBytes) - 1)
	for round := range 3 {
		for name, w := range writes(s) {
			err := w()
			if !errors.Is(err, ErrLowDisk) || !NotSaved(err) {
				t.Errorf("round %d: %s on a full disk: %v; want ErrLowDisk", round, name, err)
			}
		}
	}
	if n, err := s.CollectGarbage(); n != 0 || err != nil {
		t.Errorf("value-log gc on a full disk: %d, %v; want skipped", n, err)
	}
	st := s.Status()
	if st.Mode != ReadWrite || !st.LowDisk || st.SkippedWrites < uint64(3*len(writes(s))) {
		t.Errorf("status %+v", st)
	}
	if body, err := s.GetListBody("x"); err != nil || string(body) != "||kept.example^\n" {
		t.Errorf("reading on a full disk: %q, %v", body, err)
	}
	if n := logs.FilterMessageSnippet("disk almost full").Len(); n != 1 {
		t.Errorf("%d low-disk reports for one episode of %d skipped writes; want 1", n, st.SkippedWrites)
	}

	disk.free.Store(1 << 40)
	for name, w := range writes(s) {
		if err := w(); err != nil {
			t.Errorf("%s with space back: %v", name, err)
		}
	}
	if n := logs.FilterMessageSnippet("disk space back").Len(); n != 1 {
		t.Errorf("%d reports of space back; want 1", n)
	}
	disk.free.Store(0)
	_ = s.PutAllowed("again.example")
	if n := logs.FilterMessageSnippet("disk almost full").Len(); n != 2 {
		t.Errorf("%d low-disk reports after a second episode; want 2", n)
	}
}

// TestOpenOnFullDiskIsReadOnly: Badger's read-write open writes through
// memory maps (a new memtable, a value-log file), so on a full disk the
// store opens read-only: the stored lists are read, writes are skipped;
// once space returns RunReopen takes it for writing.
func TestOpenOnFullDiskIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	if err := s.PutList("x", ListMeta{List: "l", HasCopy: true}, []byte("||kept.example^\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	disk := newFakeDisk(0)
	s, err := openForServe(diskConfig(dir), zaptest.NewLogger(t), disk.bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Status(); st.Mode != ReadOnly || !s.Degraded() || !strings.Contains(st.Error, "min_free_bytes") {
		t.Fatalf("status on a full disk: %+v; want read-only saying why", st)
	}
	if body, err := s.GetListBody("x"); err != nil || string(body) != "||kept.example^\n" {
		t.Errorf("list copy read-only: %q, %v", body, err)
	}
	for name, w := range writes(s) {
		if err := w(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s read-only: %v; want ErrReadOnly", name, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reopened := make(chan struct{})
	go s.RunReopen(ctx, func() { close(reopened) })
	time.Sleep(1500 * time.Millisecond) // a try or two, still full
	if !s.Degraded() {
		t.Fatal("opened for writing on a full disk")
	}
	disk.free.Store(1 << 40)
	select {
	case <-reopened:
	case <-time.After(10 * time.Second):
		t.Fatal("not reopened for writing once space returned")
	}
	if err := s.PutAllowed("new.example"); err != nil {
		t.Errorf("writing after the reopen: %v", err)
	}
	if body, err := s.GetListBody("x"); err != nil || string(body) != "||kept.example^\n" {
		t.Errorf("list copy after the reopen: %q, %v", body, err)
	}
}

// copyDir copies the files of src into a new directory: with Badger open
// on src, the copy is what a crash would leave (the memtable's journal
// included, as written so far through its memory map).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

// TestReadOnlyWithUnflushedJournal: a store left with writes in its
// memtable journal (a crash, or a Close on a full disk) opens read-only
// as of its last flush, without touching the journal; the list copies
// are flushed as they are stored, so they are there. With space back the
// journal replays and nothing is lost.
func TestReadOnlyWithUnflushedJournal(t *testing.T) {
	s := testStore(t, t.TempDir())
	defer s.Close()
	if err := s.PutList("x", ListMeta{List: "l", HasCopy: true}, []byte("||kept.example^\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAllowed("unflushed.example"); err != nil {
		t.Fatal(err)
	}
	crashed := copyDir(t, s.cfg.Dir)
	if m, _ := filepath.Glob(filepath.Join(crashed, "*.mem")); len(m) == 0 {
		t.Fatal("no memtable journal in the crash image")
	}

	disk := newFakeDisk(0)
	r, err := openForServe(diskConfig(crashed), zaptest.NewLogger(t), disk.bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := r.Status(); st.Mode != ReadOnly {
		t.Fatalf("status %+v; want read-only", st)
	}
	if body, err := r.GetListBody("x"); err != nil || string(body) != "||kept.example^\n" {
		t.Errorf("list copy from the tables: %q, %v", body, err)
	}
	if _, err := Open(diskConfig(crashed), zaptest.NewLogger(t)); !errors.Is(err, ErrLocked) {
		t.Errorf("a second open beside the read-only view: %v; want ErrLocked", err)
	}

	disk.free.Store(1 << 40)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go r.RunReopen(ctx, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not reopened for writing")
	}
	if names, err := r.ListAllowed(); err != nil || len(names) != 1 || names[0] != "unflushed.example" {
		t.Errorf("allowed names after the journal replayed: %v, %v", names, err)
	}
	if views, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-store-view-*")); len(views) > 0 {
		t.Logf("views left behind (maybe by other runs): %v", views)
	}
}

// TestCloseOnFullDiskWritesNothing: with writes in the memtable and no
// room to flush them, Close leaves the store as a crash would (Badger's
// flush would fault) and says so with ErrLowDisk; with an empty memtable
// it closes normally.
func TestCloseOnFullDiskWritesNothing(t *testing.T) {
	disk := newFakeDisk(1 << 40)
	s, err := openForServe(diskConfig(t.TempDir()), zaptest.NewLogger(t), disk.bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSeries(time.Now(), 1, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	disk.free.Store(1 << 20)
	if err := s.Close(); !errors.Is(err, ErrLowDisk) {
		t.Errorf("close with an unflushed memtable on a full disk: %v; want ErrLowDisk", err)
	}

	disk = newFakeDisk(1 << 40)
	s, err = openForServe(diskConfig(t.TempDir()), zaptest.NewLogger(t), disk.bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutList("x", ListMeta{}, []byte("a\n")); err != nil { // flushed as stored
		t.Fatal(err)
	}
	disk.free.Store(0)
	if err := s.Close(); err != nil {
		t.Errorf("close with an empty memtable on a full disk: %v", err)
	}
}

// TestOpenForServeUnavailable: a directory Badger cannot open at all
// gives an unavailable store (reads find nothing, writes are skipped)
// instead of an error, and RunReopen takes it once it opens.
func TestOpenForServeUnavailable(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openForServe(diskConfig(dir), zaptest.NewLogger(t), newFakeDisk(1<<40).bytes)
	if err != nil {
		t.Fatalf("OpenForServe on a damaged directory: %v; want a degraded store", err)
	}
	defer s.Close()
	if st := s.Status(); st.Mode != Unavailable || !strings.Contains(st.Error, "move it aside") {
		t.Fatalf("status %+v", st)
	}
	if _, err := s.GetListBody("x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read while unavailable: %v; want ErrNotFound", err)
	}
	if err := s.PutAllowed("a.example"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write while unavailable: %v; want ErrReadOnly", err)
	}
	// The user moves the damaged files aside.
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go s.RunReopen(ctx, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not reopened")
	}
	if err := s.PutAllowed("a.example"); err != nil {
		t.Errorf("write after the reopen: %v", err)
	}
}

// TestFlushDoesNotFailConcurrentWrites: the flush after a list copy (a
// DropPrefix underneath, which blocks Badger's writes while it runs) must
// not make a concurrent write fail.
func TestFlushDoesNotFailConcurrentWrites(t *testing.T) {
	s := testStore(t, t.TempDir())
	defer s.Close()
	errs := make(chan error, 400)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			for i := range 50 {
				errs <- s.PutList(fmt.Sprintf("l%d", w), ListMeta{}, []byte("||a.example^\n"))
				errs <- s.AddSeries(time.Now(), uint64(i), 0, time.Hour)
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
