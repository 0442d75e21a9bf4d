package blocklists

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

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
	// without reclaiming. Depending on when Badger compacts (each saved
	// copy is flushed into a level-0 table of its own, and level 0 is
	// compacted when eight pile up), the size is flat or a sawtooth; either
	// way its peak, and where it ends, must stay far below that.
	peak := int64(0)
	for _, n := range sizes {
		peak = max(peak, n)
	}
	if last := sizes[len(sizes)-1]; peak > 16<<20 || last > 4<<20 {
		t.Errorf("store sizes over 120 refreshes peaked at %d bytes and ended at %d: replaced copies are not being reclaimed", peak, last)
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

// flakyServer serves goodList on 127.0.0.1 after failing a number of
// requests with 503, as a list host does while a router's uplink is
// still coming up.
type flakyServer struct {
	*httptest.Server
	fail     atomic.Int64 // requests still to fail
	requests atomic.Int64
}

func newFlakyServer(t *testing.T, fail int) *flakyServer {
	fs := &flakyServer{}
	fs.fail.Store(int64(fail))
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.requests.Add(1)
		if fs.fail.Add(-1) >= 0 {
			http.Error(w, "network not up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, goodList)
	}))
	t.Cleanup(fs.Close)
	return fs
}

// A source that fails at the first start is retried within seconds, not
// after refresh_interval (24 h): the list is in use as soon as the server
// answers. Until then the status says when the next attempt is, the
// manager carries a warning, and "no rules" is logged at WARN.
func TestManagerRetriesFailedSourcesSoon(t *testing.T) {
	srv := newFlakyServer(t, 4)
	src := srv.URL + "/list.txt"
	lists := validLists(t, []ListConfig{{Name: "l", Sources: []string{src}}})
	st := openStore(t, t.TempDir())
	defer st.Close()
	core, logs := observer.New(zap.InfoLevel)
	cfg := testUpdateConfig() // RefreshInterval: 24 h
	m := NewManager(cfg, lists, st, zap.New(core))
	m.retryBase, m.retryMax = 50*time.Millisecond, 400*time.Millisecond
	ctx := context.Background()
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if w := logs.FilterMessage("lists compiled with no rules: nothing is blocked").All(); len(w) != 1 || w[0].Level != zap.WarnLevel {
		t.Errorf("no rules in use: logged %v, want one WARN", logs.All())
	}
	if w := m.Warning(); !strings.Contains(w, "no rules in use") {
		t.Errorf("warning %q, want no rules in use", w)
	}

	// The first attempt fails: the status says when the next one is.
	before := time.Now()
	m.Refresh(ctx, nil)
	s := statusOf(t, m, src)
	if s.Status != StatusFailedNoCopy || !s.Retrying || s.FailedAttempts != 1 || s.NextAttempt.Before(before) || s.NextAttempt.After(time.Now().Add(m.retryBase)) {
		t.Errorf("after a failed first attempt: %+v; want retrying within %v", s, m.retryBase)
	}
	if w := m.Warning(); !strings.Contains(w, "no rules in use") || !strings.Contains(w, "retrying, next attempt at") {
		t.Errorf("warning %q, want no rules in use and the next attempt", w)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	for !blocked(m, "tracker.example.") {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("list not in use 10 s after the first failure (%d requests): %+v", srv.requests.Load(), statusOf(t, m, src))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("in use %v after the first failed attempt, after %d requests", time.Since(start).Round(time.Millisecond), srv.requests.Load())
	if n := srv.requests.Load(); n != 5 {
		t.Errorf("%d requests, want 5 (4 failures, then the list)", n)
	}
	if s := statusOf(t, m, src); s.Retrying || !s.NextAttempt.IsZero() || s.FailedAttempts != 0 || s.Status != StatusUpdated {
		t.Errorf("after the success: %+v; want updated, no retry", s)
	}
	if w := m.Warning(); w != "" {
		t.Errorf("warning %q after the success, want none", w)
	}

	// A failed refresh of a source with a copy is retried too, the copy
	// in use meanwhile; Run hears of the new failure while it waits.
	srv.fail.Store(2)
	m.Refresh(ctx, nil)
	if s := statusOf(t, m, src); s.Status != StatusFailedCached || !s.Retrying {
		t.Errorf("after a failed refresh: %+v; want failed-using-cached-copy, retrying", s)
	}
	start = time.Now()
	for s := statusOf(t, m, src); s.Retrying; s = statusOf(t, m, src) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("failed refresh not retried: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := statusOf(t, m, src); s.Status != StatusUnchanged || !blocked(m, "tracker.example.") {
		t.Errorf("after the retry: %+v", s)
	}
}

// The backoff doubles from the base up to the cap, and is jittered down
// by at most half.
func TestRetryBackoff(t *testing.T) {
	m := &Manager{retryBase: 10 * time.Second, retryMax: 10 * time.Minute}
	for n := 1; n <= 70; n++ {
		want := m.retryMax
		if n <= 7 {
			want = m.retryBase << (n - 1) // 10 s, 20 s, ... 640 s > 10 min
		}
		want = min(want, m.retryMax)
		for range 20 {
			if d := m.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestWarning(t *testing.T) {
	empty, _ := NewBuilder().Build()
	b := NewBuilder()
	_, _ = b.AddList(ListInfo{Name: "l"})
	b.Add(0, Rule{Name: "a.example"})
	one, _ := b.Build()
	at := time.Date(2026, 12, 1, 6, 0, 10, 0, time.UTC)
	good := SourceStatus{Enabled: true, HasCopy: true, Status: StatusUpdated}
	retrying := SourceStatus{Enabled: true, Status: StatusFailedNoCopy, Retrying: true, NextAttempt: at}
	disabled := SourceStatus{Status: StatusDisabled}
	for _, tc := range []struct {
		set     *Matcher
		sources []SourceStatus
		want    string
	}{
		{empty, nil, ""},
		{one, []SourceStatus{good}, ""},
		{empty, []SourceStatus{{Enabled: true, Status: StatusPending}}, "no rules in use: nothing is blocked"},
		{empty, []SourceStatus{disabled}, ""},     // an off list blocking nothing is as configured
		{one, []SourceStatus{good, disabled}, ""}, // nor is it a source missing its copy
		{one, []SourceStatus{good, retrying, disabled}, "1 of 2 list sources have no copy: their rules are not in use; retrying, next attempt at 2026-12-01T06:00:10Z"},
		{empty, []SourceStatus{retrying}, "no rules in use: nothing is blocked; retrying, next attempt at 2026-12-01T06:00:10Z"},
		{one, []SourceStatus{good, retrying}, "1 of 2 list sources have no copy: their rules are not in use; retrying, next attempt at 2026-12-01T06:00:10Z"},
	} {
		if got := Warning(&Set{Matcher: tc.set}, tc.sources); got != tc.want {
			t.Errorf("Warning(%d rules, %v) = %q, want %q", tc.set.Len(), tc.sources, got, tc.want)
		}
	}
}

// TestDisabledList: a list with enabled = false stays configured and
// reported, but its URL is never requested, its file never read and its
// rules never compiled, whatever the store holds; turning it on (a
// reload) fetches and compiles it, and turning it off again drops its
// rules at once.
func TestDisabledList(t *testing.T) {
	ls := newListServer(t, "||cloud.example^\n")
	dir := t.TempDir()
	file := filepath.Join(dir, "cloud.txt")
	if err := os.WriteFile(file, []byte("||filecloud.example^\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	lists := func(enabled *bool) []ListConfig {
		return validLists(t, []ListConfig{
			{Name: "telemetry", Entries: []string{"||telemetry.example^"}},
			{Name: "cloud", Vendor: "Example", Sources: []string{ls.URL, file}, Enabled: enabled,
				Breaks: []Breakage{"push", "updates"}},
		})
	}
	st := openStore(t, filepath.Join(dir, "state"))
	defer st.Close()
	ctx := context.Background()
	m := NewManager(testUpdateConfig(), lists(&off), st, zaptest.NewLogger(t))
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	m.Refresh(ctx, nil)
	if n := ls.requests.Load(); n != 0 {
		t.Errorf("a disabled list's URL was requested %d times", n)
	}
	if !blocked(m, "telemetry.example.") {
		t.Error("the enabled list's rule is not in use")
	}
	for _, name := range []string{"cloud.example.", "filecloud.example."} {
		if blocked(m, name) {
			t.Errorf("%s is blocked by a disabled list", name)
		}
	}
	if got := m.Current().Matcher.Len(); got != 1 {
		t.Errorf("%d rules compiled, want 1 (the disabled list's are not)", got)
	}
	for _, src := range []string{ls.URL, file} {
		s := statusOf(t, m, src)
		if s.Status != StatusDisabled || s.Enabled || s.HasCopy || s.Retrying || !slices.Equal(s.Breaks, []Breakage{"push", "updates"}) {
			t.Errorf("%s: %+v; want disabled, no copy, not retrying, breaks push and updates", src, s)
		}
		if _, err := st.GetListMeta(s.ID); err == nil {
			t.Errorf("%s: the store holds a record of a source that was never fetched", src)
		}
	}
	if w := m.Warning(); w != "" {
		t.Errorf("warning %q about a list that is off on purpose", w)
	}

	// On: fetched, compiled, blocking.
	on := true
	if err := m.Reconfigure(ctx, testUpdateConfig(), lists(&on)); err != nil {
		t.Fatal(err)
	}
	m.Refresh(ctx, nil)
	if n := ls.requests.Load(); n == 0 {
		t.Error("the enabled list's URL was never requested")
	}
	for _, name := range []string{"cloud.example.", "sub.cloud.example.", "filecloud.example.", "telemetry.example."} {
		if !blocked(m, name) {
			t.Errorf("%s is not blocked once the list is on", name)
		}
	}
	if s := statusOf(t, m, ls.URL); !s.Enabled || !s.HasCopy || s.Status == StatusDisabled {
		t.Errorf("enabled source: %+v", s)
	}

	// Off again: the stored copy is kept for next time but not used.
	before := ls.requests.Load()
	if err := m.Reconfigure(ctx, testUpdateConfig(), lists(&off)); err != nil {
		t.Fatal(err)
	}
	m.Refresh(ctx, nil)
	if blocked(m, "cloud.example.") || blocked(m, "filecloud.example.") {
		t.Error("a list turned off still blocks")
	}
	if n := ls.requests.Load(); n != before {
		t.Errorf("a list turned off was requested %d more times", n-before)
	}
	if s := statusOf(t, m, ls.URL); s.Status != StatusDisabled || !s.HasCopy {
		t.Errorf("turned off: %+v; want disabled with its copy kept", s)
	}
}

// A reload that adds a URL source fetches it at once, through Run: once
// Run has returned, no fetch is left running (none can write to a store
// closed after it).
func TestReconfigureFetchesNewSourceThroughRun(t *testing.T) {
	ls := newListServer(t, "||added.example^\n")
	st := openStore(t, filepath.Join(t.TempDir(), "state"))
	defer st.Close()
	base := validLists(t, []ListConfig{{Name: "telemetry", Entries: []string{"||telemetry.example^"}}})
	m := NewManager(testUpdateConfig(), base, st, zaptest.NewLogger(t))
	ctx := context.Background()
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(runCtx); close(done) }()

	added := validLists(t, append(slices.Clone(base), ListConfig{Name: "added", Sources: []string{ls.URL}}))
	if err := m.Reconfigure(ctx, testUpdateConfig(), added); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !blocked(m, "added.example.") {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the added source is not in use 10 s after the reload: %+v", statusOf(t, m, ls.URL))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	n := ls.requests.Load()
	if n != 1 {
		t.Errorf("%d requests for the added source, want 1", n)
	}
	// Another reload without Run running asks for nothing more: the
	// source has its copy.
	if err := m.Reconfigure(ctx, testUpdateConfig(), added); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := ls.requests.Load(); got != n {
		t.Errorf("%d requests after a reload with the copy in place, want %d", got, n)
	}
}

// read takes the whole text whatever size was announced (right, unknown,
// too small, too large), refuses more than the limit, and hands the store
// the text gzip-compressed, hashed as read.
func TestReadStreamsAndCaps(t *testing.T) {
	text := bytes.Repeat([]byte("||tracker.example^\n"), 200_000) // 3.8 MB: many of the reader's 64 KiB reads
	n := int64(len(text))
	sum := sha256.Sum256(text)
	for _, tc := range []struct {
		name         string
		size, limit  int64
		wantTooLarge bool
	}{
		{"size known", n, 1 << 30, false},
		{"size unknown", -1, 1 << 30, false},
		{"size too small", 10, 1 << 30, false},
		{"size too large", n + 4096, 1 << 30, false},
		{"limit exactly", -1, n, false},
		{"over the limit, size known", n, n - 1, true},
		{"over the limit, size unknown", -1, n - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testUpdateConfig()
			cfg.MaxListBytes = tc.limit
			m := NewManager(cfg, nil, nil, zaptest.NewLogger(t))
			got, err := m.read(&ListConfig{Name: "l", Format: FormatAdblock}, "src", bytes.NewReader(text), tc.size, store.ListMeta{})
			defer got.gz.free()
			if tc.wantTooLarge {
				if err == nil || !strings.Contains(err.Error(), "max_list_bytes") {
					t.Fatalf("err %v, want larger than max_list_bytes", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			zr, err := gzip.NewReader(got.gz.reader())
			if err != nil {
				t.Fatal(err)
			}
			back, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, text) || got.size != len(text) || got.sum != hex.EncodeToString(sum[:]) {
				t.Fatalf("read %d bytes (size %d, sum %s), want the %d written", len(back), got.size, got.sum, len(text))
			}
			if got.stats.Entries != 200_000 {
				t.Errorf("%d entries, want 200000", got.stats.Entries)
			}
		})
	}
}
