package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap/zaptest"
)

func testStore(t *testing.T, dir string) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.MemTableSize = 1 << 20
	cfg.ValueLogFileSize = 1 << 20
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestListRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	if _, err := s.GetListMeta("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing meta: %v", err)
	}
	big := strings.Repeat("||some-rather-long-name.example^\n", 20000) // several chunks once compressed? at least one
	meta := ListMeta{List: "l", Source: "src", Entries: 20000, HasCopy: true, FetchedAt: time.Unix(1e9, 0).UTC()}
	for _, body := range []string{"first\n", big, ""} {
		if err := s.PutList("x", meta, []byte(body)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetListBody("x")
		if err != nil || string(got) != body {
			t.Fatalf("body of %d bytes read back as %d bytes, %v", len(body), len(got), err)
		}
	}
	meta.Status = "unchanged"
	if err := s.PutListMeta("x", meta); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = testStore(t, dir)
	defer s.Close()
	got, err := s.GetListMeta("x")
	if err != nil || got.Status != "unchanged" || got.Entries != 20000 || !got.FetchedAt.Equal(meta.FetchedAt) {
		t.Errorf("meta after reopen %+v, %v", got, err)
	}
	if _, err := s.GetListBody("x"); err != nil {
		t.Errorf("body after a metadata-only update: %v", err)
	}
	ids, _ := s.ListIDs()
	if len(ids) != 1 || ids[0] != "x" {
		t.Errorf("ids %v", ids)
	}
	if err := s.DeleteList("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetListBody("x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func TestOpenLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	defer s.Close()
	cfg := DefaultConfig()
	cfg.Dir = dir
	_, err := Open(cfg, zaptest.NewLogger(t))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Errorf("second open: %v; want ErrLocked naming the directory", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Dir = " "
	c.MemTableSize = 10
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "store.dir") || !strings.Contains(err.Error(), "store.memtable_size") {
		t.Errorf("got %v", err)
	}
}

func TestOpenDamagedDirectory(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Wreck the manifest.
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dir = dir
	_, err := Open(cfg, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("opening a damaged store: %v; want an error naming the directory and what to do", err)
	}
}

// LowDisk follows free space across MinFreeBytes both ways.
func TestLowDisk(t *testing.T) {
	s := testStore(t, t.TempDir())
	defer s.Close()
	var free atomic.Uint64
	free.Store(1 << 40)
	s.freeBytes = func(string) (uint64, error) { return free.Load(), nil }
	s.checkDisk()
	if s.LowDisk() {
		t.Fatal("low with plenty of space")
	}
	free.Store(uint64(s.cfg.MinFreeBytes) - 1)
	s.checkDisk()
	if !s.LowDisk() {
		t.Fatal("not low under min_free_bytes")
	}
	free.Store(1 << 40)
	s.checkDisk()
	if s.LowDisk() {
		t.Error("still low with the space back")
	}
}

// The alerts' keys once lived under "a/", the allowed names' namespace,
// where ListAllowed returned them as names (and the allow-now list
// compiled them). A store written then has them moved at its first
// writable open, and the allowed names are names only.
func TestAlertKeysLeaveTheAllowedNames(t *testing.T) {
	dir := t.TempDir()
	s := testStore(t, dir)
	if err := s.PutAllowed("good.example"); err != nil {
		t.Fatal(err)
	}
	// Written as before the move.
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, k := range []string{"a/s/dev/aa:bb:cc:dd:ee:ff", "a/d/spike"} {
			if err := txn.Set([]byte(k), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAllowed(); !slices.Equal(got, []string{"good.example"}) {
		t.Errorf("allowed names before the move: %q", got)
	}
	s.Close()
	s = testStore(t, dir)
	defer s.Close()
	seen, err := s.AlertSeen("dev/")
	if err != nil || !seen["dev/aa:bb:cc:dd:ee:ff"] {
		t.Errorf("seen after the move: %v, %v", seen, err)
	}
	if v, err := s.AlertData("spike"); err != nil || string(v) != "v" {
		t.Errorf("alert data after the move: %q, %v", v, err)
	}
	if err := s.MarkAlertSeen([]string{"dev/11:22:33:44:55:66"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAllowed(); !slices.Equal(got, []string{"good.example"}) {
		t.Errorf("allowed names after the move: %q", got)
	}
}
