package blocklists

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/store"
)

// listServer serves a list over HTTP on 127.0.0.1 and misbehaves on demand.
type listServer struct {
	*httptest.Server
	mu          sync.Mutex
	mode        string // "ok", "404", "500", "html", "html-type", "empty", "garbage", "huge", "shrunk", "slow"
	body        string
	requests    atomic.Int64
	conditional atomic.Int64 // requests that carried If-None-Match
	notModified atomic.Int64
}

func newListServer(t *testing.T, body string) *listServer {
	ls := &listServer{mode: "ok", body: body}
	ls.Server = httptest.NewServer(http.HandlerFunc(ls.serve))
	t.Cleanup(ls.Close)
	return ls
}

func (ls *listServer) set(mode, body string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.mode = mode
	if body != "" {
		ls.body = body
	}
}

func (ls *listServer) serve(w http.ResponseWriter, r *http.Request) {
	ls.requests.Add(1)
	ls.mu.Lock()
	mode, body := ls.mode, ls.body
	ls.mu.Unlock()
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
	if r.Header.Get("If-None-Match") != "" {
		ls.conditional.Add(1)
	}
	switch mode {
	case "404":
		http.NotFound(w, r)
	case "500":
		http.Error(w, "oops", http.StatusInternalServerError)
	case "html":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Login</title></head><body>captive portal</body></html>")
	case "html-type":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "||still.looks.like.a.list^\n")
	case "empty":
		w.Header().Set("ETag", `"empty"`)
	case "garbage":
		w.Header().Set("ETag", `"garbage"`)
		w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\n\xff\xfe\xfd garbage garbage\nmore garbage here\n"))
	case "huge":
		w.Header().Set("ETag", `"huge"`)
		for i := range 40000 {
			fmt.Fprintf(w, "||huge%d.example^\n", i)
		}
	case "slow":
		time.Sleep(2 * time.Second)
	default:
		if r.Header.Get("If-None-Match") == etag {
			ls.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		fmt.Fprint(w, body)
	}
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Dir = dir
	cfg.MemTableSize = 1 << 20
	cfg.ValueLogFileSize = 1 << 20
	st, err := store.Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testUpdateConfig() UpdateConfig {
	c := DefaultUpdateConfig()
	c.DownloadTimeout = time.Second
	c.MaxListBytes = 256 << 10
	c.MaxRejectedLines = 10
	return c
}

func validLists(t *testing.T, lists []ListConfig) []ListConfig {
	t.Helper()
	if err := ValidateLists(lists); err != nil {
		t.Fatal(err)
	}
	return lists
}

func blocked(m *Manager, name string) bool {
	v, ok := m.Current().Matcher.Match(name)
	return ok && v.Blocked
}

func statusOf(t *testing.T, m *Manager, source string) SourceStatus {
	t.Helper()
	for _, s := range m.Status() {
		if s.Source == source {
			return s
		}
	}
	t.Fatalf("no status for %s", source)
	return SourceStatus{}
}

const goodList = "! Title: test\n||tracker.example^\n||telemetry.vendor.example^\n||ads.example^\n||metrics.example^\n"

func TestManagerKeepsLastGoodCopy(t *testing.T) {
	ls := newListServer(t, goodList)
	other := newListServer(t, "||other.example^\n")
	lists := validLists(t, []ListConfig{{Name: "vendor", Vendor: "Vendor", Sources: []string{ls.URL + "/list.txt", other.URL + "/o.txt"}}})
	dir := t.TempDir()
	st := openStore(t, dir)
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if blocked(m, "tracker.example.") {
		t.Fatal("blocked before any download")
	}
	src := ls.URL + "/list.txt"
	if s := statusOf(t, m, src); s.Status != StatusPending {
		t.Errorf("status before the first refresh %q, want pending", s.Status)
	}

	m.Refresh(context.Background(), nil)
	if s := statusOf(t, m, src); s.Status != StatusUpdated || s.Entries != 4 || !s.HasCopy {
		t.Fatalf("after the first refresh: %+v", s)
	}
	if !blocked(m, "a.tracker.example.") || !blocked(m, "other.example.") {
		t.Fatal("listed names not blocked after refresh")
	}

	m.Refresh(context.Background(), nil)
	if s := statusOf(t, m, src); s.Status != StatusUnchanged {
		t.Errorf("second refresh %q, want unchanged", s.Status)
	}
	if ls.notModified.Load() != 1 {
		t.Errorf("%d 304 answers, want 1: the refresh must be a conditional GET", ls.notModified.Load())
	}

	for _, mode := range []string{"404", "500", "html", "html-type", "empty", "garbage", "huge", "shrunk", "slow"} {
		t.Run(mode, func(t *testing.T) {
			body := ""
			if mode == "shrunk" {
				mode, body = "ok", "||tracker.example^\n" // 1 entry instead of 4: more than max_shrink lost
			}
			ls.set(mode, body)
			defer ls.set("ok", goodList)
			gen := m.Current().Generation
			m.Refresh(context.Background(), nil)
			s := statusOf(t, m, src)
			if s.Status != StatusFailedCached || s.Error == "" || s.Entries != 4 {
				t.Errorf("status %q (%s), %d entries; want %s with the old 4", s.Status, s.Error, s.Entries, StatusFailedCached)
			}
			if !blocked(m, "telemetry.vendor.example.") {
				t.Error("blocking stopped after a failed update")
			}
			if o := statusOf(t, m, other.URL+"/o.txt"); o.Status != StatusUnchanged {
				t.Errorf("the healthy source is %q, want unchanged", o.Status)
			}
			if m.Current().Generation != gen {
				t.Error("a failed update rebuilt the set")
			}
		})
	}

	// Restart with the list servers gone: blocking comes from the store
	// before any network.
	ls.Close()
	other.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir)
	defer st2.Close()
	m2 := NewManager(testUpdateConfig(), lists, st2, zaptest.NewLogger(t))
	if err := m2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !blocked(m2, "tracker.example.") || !blocked(m2, "x.other.example.") {
		t.Fatal("restart without network does not block from the stored copies")
	}
	m2.Refresh(context.Background(), nil)
	if s := statusOf(t, m2, src); s.Status != StatusFailedCached || !blocked(m2, "tracker.example.") {
		t.Errorf("unreachable source: %+v", s)
	}
}

func TestManagerNoCopy(t *testing.T) {
	ls := newListServer(t, "")
	ls.set("404", "")
	lists := validLists(t, []ListConfig{{Name: "l", Sources: []string{ls.URL + "/missing.txt"}}})
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	_ = m.Load(context.Background())
	rep := m.Refresh(context.Background(), nil)
	if len(rep) != 1 || rep[0].Status != StatusFailedNoCopy || !strings.Contains(rep[0].Error, "404") {
		t.Errorf("report %+v, want failed-no-copy naming the 404", rep)
	}
}

func TestManagerFileAndInlineSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "extra.txt")
	if err := os.WriteFile(file, []byte("0.0.0.0 file.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lists := validLists(t, []ListConfig{
		{Name: "local", Vendor: "Local", Sources: []string{file}, Entries: []string{"inline.example", "*.wild.example"}},
		{Name: "allow", Kind: KindAllow, Entries: []string{"ok.wild.example"}},
	})
	st := openStore(t, filepath.Join(dir, "state"))
	defer st.Close()
	m := NewManager(testUpdateConfig(), lists, st, zaptest.NewLogger(t))
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"file.example.": true, "sub.file.example.": false, // hosts entries are exact
		"inline.example.": true, "a.wild.example.": true, "ok.wild.example.": false,
	} {
		if got := blocked(m, name); got != want {
			t.Errorf("%s blocked=%v, want %v", name, got, want)
		}
	}
	if err := os.WriteFile(file, []byte("0.0.0.0 file.example\n0.0.0.0 added.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Refresh(context.Background(), nil)
	if !blocked(m, "added.example.") {
		t.Error("a changed file was not picked up")
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	m.Refresh(context.Background(), nil)
	if s := statusOf(t, m, file); s.Status != StatusFailedCached || !blocked(m, "added.example.") {
		t.Errorf("removed file: %+v; want the cached copy kept", s)
	}
}

// TestStoreGarbageCollection refreshes a changing list many times and
// checks the value-log garbage collector keeps the directory bounded.
func TestStoreGarbageCollection(t *testing.T) {
	if testing.Short() {
		t.Skip("writes several MiB")
	}
	var body strings.Builder
	gen := 0
	makeBody := func() string {
		body.Reset()
		gen++
		for i := range 20000 {
			fmt.Fprintf(&body, "||h%x-%d.example^\n", (i*2654435761)^gen*7919, gen)
		}
		return body.String()
	}
	ls := newListServer(t, makeBody())
	lists := validLists(t, []ListConfig{{Name: "big", Sources: []string{ls.URL}}})
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	cfg := testUpdateConfig()
	cfg.MaxListBytes = 4 << 20
	m := NewManager(cfg, lists, st, zaptest.NewLogger(t))
	_ = m.Load(context.Background())
	sizes := []int64{}
	for round := range 120 {
		ls.set("ok", makeBody())
		m.Refresh(context.Background(), nil)
		if s := statusOf(t, m, ls.URL); s.Status != StatusUpdated {
			t.Fatalf("round %d: %+v", round, s)
		}
		if _, err := st.CollectGarbage(); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, dirSize(t, dir))
	}
	// 120 copies of ~150 KiB compressed would be ~18 MiB kept forever
	// without reclaiming. Badger lets level-0 tables pile up (eight, see
	// store.Open) before it compacts them, so the size is a sawtooth: it
	// must come back down, and its peak must stay bounded.
	peak, reclaimed := int64(0), false
	for i, n := range sizes {
		peak = max(peak, n)
		if i > 0 && n < sizes[i-1]/2 {
			reclaimed = true
		}
	}
	if !reclaimed || peak > 16<<20 {
		t.Errorf("store sizes over 120 refreshes peaked at %d bytes, reclaimed=%v: replaced copies are not being reclaimed", peak, reclaimed)
	}
	t.Logf("store size per round: %v", sizes[len(sizes)-10:])
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	// Blocks in use, not apparent sizes: Badger preallocates sparse files.
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func TestPruneRemovedSources(t *testing.T) {
	ls := newListServer(t, goodList)
	st := openStore(t, t.TempDir())
	defer st.Close()
	m := NewManager(testUpdateConfig(), validLists(t, []ListConfig{{Name: "old", Sources: []string{ls.URL}}}), st, zaptest.NewLogger(t))
	m.Refresh(context.Background(), nil)
	if ids, _ := st.ListIDs(); len(ids) != 1 {
		t.Fatalf("ids %v", ids)
	}
	m2 := NewManager(testUpdateConfig(), validLists(t, []ListConfig{{Name: "new", Entries: []string{"x.example"}}}), st, zaptest.NewLogger(t))
	m2.PruneRemoved()
	if ids, _ := st.ListIDs(); len(ids) != 0 {
		t.Errorf("copies of removed sources kept: %v", ids)
	}
}
