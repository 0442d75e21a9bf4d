package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store"
)

// The full-disk tests run Vigil as a child process with its store on a
// small tmpfs that the test fills: a Badger write into a memory-mapped
// file on a full disk is a SIGBUS, which no recover catches, so only a
// separate process can show a crash. They need root (to mount) and skip
// otherwise; store's tests cover the guard with an injected free-space
// function on any machine.

// smallDisk mounts a tmpfs of size bytes on a new temporary directory and
// returns it; it is unmounted when the test ends.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Vigil as a separate process on a small tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a size-limited tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): skipping the full-disk reproduction", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the test tmpfs: %v", err)
		}
	})
	return dir
}

// fillDisk writes a filler file in dir until the file system has at most
// leave bytes free, and returns the filler's path (remove it to free the
// space again).
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 64<<10)
	for {
		free := diskFree(t, dir)
		if free <= leave {
			return path
		}
		n := min(int64(len(buf)), free-leave)
		if _, err := f.Write(buf[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

func diskFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// diskChild is one Vigil process serving DNS on addr.
type diskChild struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan struct{}
	err    error // set when done is closed
}

// syncBuffer is a bytes.Buffer safe to write from the child's pipe while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// diskConfig writes a configuration with the store in storeDir (on the
// small disk) and the file itself outside it.
func diskConfig(t *testing.T, upstream, listURL, storeDir string) string {
	t.Helper()
	body := fmt.Sprintf(`[server]
listen = ["127.0.0.1:0"]
udp_sockets = 1
[upstream]
servers = [%q]
[cache]
persist = true
persist_interval = "1m"
max_bytes = 33554432
[store]
dir = %q
memtable_size = 1048576
value_log_file_size = 1048576
min_free_bytes = 33554432
[querylog]
enabled = true
[http]
listen = ""
[log]
level = "info"
[[lists]]
name = "test"
sources = [%q]
`, upstream, storeDir, listURL)
	path := filepath.Join(t.TempDir(), "vigil.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startDiskChild starts Vigil and waits until it answers DNS.
func startDiskChild(t *testing.T, cfgPath string) *diskChild {
	t.Helper()
	c := &diskChild{addr: freeAddr(t), stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "serve", "-config", cfgPath, "-listen", c.addr)
	// TMPDIR: a store opened read-only without its journal makes a view
	// directory there.
	c.cmd.Env = append(os.Environ(), "VIGIL_TEST_RUN_MAIN=1", "TMPDIR="+t.TempDir())
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.ask("ready.example"); err == nil {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("vigil exited before answering (%v); stderr:\n%s", c.err, tail(c.stderr.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil did not answer within 15s; stderr:\n%s", tail(c.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ask sends one A question over UDP.
func (c *diskChild) ask(name string) (*dns.Msg, error) {
	cl := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := cl.Exchange(rt.Question(name, dns.TypeA), c.addr)
	return r, err
}

// blocked says whether Vigil answers name from its lists (the upstream
// answers 192.0.2.1 to everything).
func (c *diskChild) blocked(t *testing.T, name string) bool {
	t.Helper()
	r, err := c.ask(name)
	if err != nil {
		t.Fatalf("asking %s: %v", name, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == "192.0.2.1" {
			return false
		}
	}
	return true
}

// exited reports whether the child has exited.
func (c *diskChild) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns the exit status (-1 when killed by a
// signal) once the child has exited.
func (c *diskChild) stop(t *testing.T) int {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !c.exited() {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("vigil did not exit within 30s of SIGTERM; stderr:\n%s", tail(c.stderr.String()))
	}
	for line := range strings.Lines(c.stderr.String()) {
		if strings.Contains(line, "\tstore\t") || strings.Contains(line, "flushed") {
			t.Logf("child: %s", strings.TrimSpace(line))
		}
	}
	return c.cmd.ProcessState.ExitCode()
}

// fillCache asks n distinct names, so the cache (and its snapshot) is
// several MiB.
func (c *diskChild) fillCache(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			cl := &dns.Client{Net: "udp", Timeout: time.Second}
			for i := w; i < n; i += 8 {
				q := rt.Question(fmt.Sprintf("name-%06d.with-a-longish-label.cache-fill.example", i), dns.TypeA)
				if _, _, err := cl.Exchange(q, c.addr); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > int64(n/100) {
		t.Fatalf("%d of %d cache-filling queries failed", f, n)
	}
}

// queryLoop asks a name every 20 ms until stop closes, and returns how
// many questions were asked and answered.
func (c *diskChild) queryLoop(stop <-chan struct{}) (asked, answered int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return asked, answered
		case <-time.After(20 * time.Millisecond):
		}
		asked++
		if r, err := c.ask(fmt.Sprintf("loop-%d.example", i%50)); err == nil && r.Rcode == dns.RcodeSuccess {
			answered++
		}
	}
}

// tail is the end of a child's stderr, or the start of its crash report.
func tail(s string) string {
	for _, crash := range []string{"unexpected fault", "fatal error", "panic:"} {
		if i := strings.Index(s, crash); i >= 0 {
			return s[max(0, i-1000):min(len(s), i+3000)]
		}
	}
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// listServer serves one blocklist on 127.0.0.1.
func listServer(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "||blocked.example^\n||tracker.example^\n")
	}))
	t.Cleanup(s.Close)
	return s.URL + "/list.txt"
}

// diskSetup mounts a small disk, starts Vigil on it with a stored list
// copy, and waits until the copy blocks.
func diskSetup(t *testing.T) (disk, cfgPath string, c *diskChild) {
	t.Helper()
	disk = smallDisk(t, 64<<20)
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 3600))
	cfgPath = diskConfig(t, up.Addr, listServer(t), filepath.Join(disk, "state"))
	c = startDiskChild(t, cfgPath)
	deadline := time.Now().Add(15 * time.Second)
	for !c.blocked(t, "blocked.example") {
		if time.Now().After(deadline) {
			t.Fatalf("the list was never applied; stderr:\n%s", tail(c.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return disk, cfgPath, c
}

// TestFullDiskPeriodicCacheSave: with 1 MiB free and a full cache, the
// periodic cache save used to crash the server (SIGBUS in a memtable
// flush). DNS must answer every question throughout, and the process live.
func TestFullDiskPeriodicCacheSave(t *testing.T) {
	disk, cfgPath, c := diskSetup(t)
	c.fillCache(t, 80000)
	fillDisk(t, disk, 1<<20)
	stop := make(chan struct{})
	type result struct{ asked, answered int }
	res := make(chan result, 1)
	go func() { a, b := c.queryLoop(stop); res <- result{a, b} }()
	// The first periodic save comes one persist_interval (1m) after start.
	deadline := time.Now().Add(75 * time.Second)
	for time.Now().Before(deadline) && !c.exited() {
		time.Sleep(250 * time.Millisecond)
	}
	close(stop)
	r := <-res
	if c.exited() {
		t.Fatalf("vigil died while the disk was full (%v); answered %d of %d; stderr:\n%s", c.err, r.answered, r.asked, tail(c.stderr.String()))
	}
	t.Logf("answered %d of %d questions over a periodic cache save on a full disk", r.answered, r.asked)
	if r.answered != r.asked {
		t.Errorf("answered %d of %d questions; want all", r.answered, r.asked)
	}
	if !strings.Contains(c.stderr.String(), "disk almost full") {
		t.Errorf("no low-disk report in the log:\n%s", tail(c.stderr.String()))
	}
	if code := c.stop(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM on a full disk; stderr:\n%s", code, tail(c.stderr.String()))
	}
	// The hourly totals written before the disk filled were still in the
	// memtable, with no room to flush them: the restart reads the tables.
	c = startDiskChild(t, cfgPath)
	if !c.blocked(t, "blocked.example") {
		t.Errorf("after a restart on the full disk, the stored list is not applied; stderr:\n%s", tail(c.stderr.String()))
	}
	if code := c.stop(t); code != 0 {
		t.Errorf("exit status %d after the restart; stderr:\n%s", code, tail(c.stderr.String()))
	}
}

// TestFullDiskShutdown: a graceful SIGTERM on a full disk used to crash in
// the final cache save (exit 2). It must exit 0, and a restart on that
// disk must answer and block with the stored list.
func TestFullDiskShutdown(t *testing.T) {
	disk, cfgPath, c := diskSetup(t)
	c.fillCache(t, 30000)
	// Let the hourly totals be written (every 10s): the memtable then holds
	// writes that the full disk leaves no room to flush.
	time.Sleep(11 * time.Second)
	fillDisk(t, disk, 0)
	if !c.blocked(t, "tracker.example") {
		t.Error("blocking stopped when the disk filled")
	}
	if code := c.stop(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM on a full disk; want 0; stderr:\n%s", code, tail(c.stderr.String()))
	}
	if s := c.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "SIGBUS") {
		t.Errorf("the shutdown panicked:\n%s", tail(s))
	}
	c = startDiskChild(t, cfgPath)
	if !c.blocked(t, "blocked.example") {
		t.Errorf("after a stop and a restart on a full disk, the stored list is not applied; stderr:\n%s", tail(c.stderr.String()))
	}
	if code := c.stop(t); code != 0 {
		t.Errorf("exit status %d after the restart; stderr:\n%s", code, tail(c.stderr.String()))
	}
}

// TestFullDiskRestart: a restart on a full disk used to crash inside
// badger.Open: no listener, no DNS. It must answer at once, block with the
// stored lists, and take the store back once space returns.
func TestFullDiskRestart(t *testing.T) {
	disk, cfgPath, c := diskSetup(t)
	c.fillCache(t, 5000)
	if code := c.stop(t); code != 0 {
		t.Fatalf("exit status %d stopping with space left", code)
	}
	filler := fillDisk(t, disk, 0)
	for round := range 2 { // the second round restarts what the first stopped on the full disk
		c = startDiskChild(t, cfgPath)
		stop := make(chan struct{})
		type result struct{ asked, answered int }
		res := make(chan result, 1)
		go func() { a, b := c.queryLoop(stop); res <- result{a, b} }()
		time.Sleep(3 * time.Second)
		close(stop)
		r := <-res
		if c.exited() {
			t.Fatalf("round %d: vigil died on a full disk (%v); stderr:\n%s", round, c.err, tail(c.stderr.String()))
		}
		t.Logf("round %d: answered %d of %d questions after a restart on a full disk", round, r.answered, r.asked)
		if r.answered != r.asked {
			t.Errorf("round %d: answered %d of %d questions; want all", round, r.answered, r.asked)
		}
		if !c.blocked(t, "blocked.example") {
			t.Errorf("round %d: the stored list is not applied after a restart on a full disk", round)
		}
		if round == 0 {
			if code := c.stop(t); code != 0 {
				t.Fatalf("round %d: exit status %d after SIGTERM on a full disk; stderr:\n%s", round, code, tail(c.stderr.String()))
			}
		}
	}
	// Space comes back: the store is opened for writing in the background.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.stderr.String(), "store opened for writing") {
		if time.Now().After(deadline) || c.exited() {
			t.Fatalf("the store was not taken back after space returned; stderr:\n%s", tail(c.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !c.blocked(t, "blocked.example") {
		t.Error("the list is not applied after the store was taken back")
	}
	if code := c.stop(t); code != 0 {
		t.Errorf("exit status %d; stderr:\n%s", code, tail(c.stderr.String()))
	}
}

// TestServeWithUnopenableStore runs on any machine: a store Badger cannot
// open (a damaged manifest here; a full disk behaves alike) used to stop
// serve before any listener opened. Now DNS answers with the inline lists,
// the store is reported unavailable, and it is taken as soon as it opens.
func TestServeWithUnopenableStore(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	cfgPath := writeTestConfig(t, up.Addr, "[[lists]]\nname = \"inline\"\nentries = [\"||inline-blocked.example^\"]\n")
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.Store.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(cfg.Store.Dir, "MANIFEST")
	if err := os.WriteFile(manifest, []byte("not a manifest at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startServe(t, cfgPath)
	if st := inst.store.Status(); st.Mode != "unavailable" || st.Error == "" {
		t.Errorf("store status %+v; want unavailable with the reason", st)
	}
	addr := inst.srv.UDPAddrs()[0].String()
	if r := rt.Exchange(t, "udp", addr, rt.Question("fine.example", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("forwarded answer: %v", r.Answer)
	}
	r := rt.Exchange(t, "udp", addr, rt.Question("inline-blocked.example", dns.TypeA))
	if a, ok := firstA(r); ok && a == "192.0.2.1" {
		t.Errorf("inline list not applied with the store unavailable: %v", r.Answer)
	}
	// The damaged file is moved aside: the store opens in the background.
	if err := os.Rename(manifest, manifest+".damaged"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for inst.store.Degraded() {
		if time.Now().After(deadline) {
			t.Fatalf("the store was not opened once it could be: %+v", inst.store.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := inst.lists.AllowNow("allowed.example"); err != nil {
		t.Errorf("allow-now after the store opened: %v", err)
	}
	resp, err := http.Get("http://" + inst.apiAddr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		Status string       `json:"status"`
		Store  store.Status `json:"store"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil || health.Status != "ok" || health.Store.Mode != store.ReadWrite {
		t.Errorf("health %+v, %v; want ok with the store read-write", health, err)
	}
}

func firstA(m *dns.Msg) (string, bool) {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), true
		}
	}
	return "", false
}

// Badger cannot be opened at all (its MANIFEST damaged) at a restart: the
// lists fetched before are still applied, from the compiled copy the store
// keeps beside Badger, and DNS answers. Before, only inline entries and
// local files blocked until the store opened again.
func TestUnopenableStoreBlocksFromCompiledCopy(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "||stored-blocked.example^\n@@||ok.stored-blocked.example^\n||*.wild.example^")
	}))
	defer srv.Close()
	cfgPath := writeTestConfig(t, up.Addr, "[[lists]]\nname = \"remote\"\nsources = [\""+srv.URL+"/list.txt\"]\n")
	blocked := func(inst *running, name string) bool {
		r := rt.Exchange(t, "udp", inst.srv.UDPAddrs()[0].String(), rt.Question(name, dns.TypeA))
		a, ok := firstA(r)
		return !ok || a != "192.0.2.1"
	}
	inst, stop := runServe(t, cfgPath)
	waitFor(t, "the list fetched", func() bool { return blocked(inst, "stored-blocked.example") })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // no network at the restart either
	if err := os.WriteFile(filepath.Join(cfg.Store.Dir, "MANIFEST"), []byte("not a manifest at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst = startServe(t, cfgPath)
	if st := inst.store.Status(); st.Mode != store.Unavailable {
		t.Fatalf("store status %+v; want unavailable", st)
	}
	for name, want := range map[string]bool{
		"stored-blocked.example": true, "a.stored-blocked.example": true, "ok.stored-blocked.example": false,
		"x.wild.example": true, "wild.example": false, "fine.example": false,
	} {
		if got := blocked(inst, name); got != want {
			t.Errorf("%s: blocked %v, want %v (from the compiled copy)", name, got, want)
		}
	}
}
