package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/fleet/pgtest"
	"github.com/vigil-dns/vigil/store/querylog"
)

// TestMain lets the test binary act as the vigil binary, so a test can run
// Vigil as a separate process (and kill it) without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(pgtest.Main(m)) // stops the fleet tests' PostgreSQL, if one was started
}

const logTestLists = `
[querylog]
flush_interval = "20ms"
log_lines = false
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
[[lists]]
name = "lg"
vendor = "LG"
entries = ["||lgtv.example^"]
`

// queryFrom sends one A query from a given loopback source address, with
// EDNS options if any, and returns the answer.
func queryFrom(t *testing.T, src, server, name string, opts ...dns.EDNS0) *dns.Msg {
	t.Helper()
	m := rt.Question(name, dns.TypeA)
	if len(opts) > 0 {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = opts
	}
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s from %s: %v", name, src, err)
	}
	return r
}

// apiClient returns the API client the CLI uses, for the server r.
func apiClient(t *testing.T, r *running) *api.Client {
	t.Helper()
	ap, err := netip.ParseAddrPort(r.apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(ap, r.cfg.HTTP.Token)
}

// noErr fails the test on a non-nil error.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPerClientLogEndToEnd(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, logTestLists+`
[identify]
trusted_forwarders = ["127.0.0.5/32"]
[[clients]]
name = "tv"
addresses = ["127.0.0.3"]
[[clients]]
name = "router-phone"
macs = ["aa:bb:cc:dd:ee:01"]
`)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	mac := &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01}}
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP("192.168.7.7").To4()}

	sends := []struct {
		src, name string
		n         int
		opts      []dns.EDNS0
	}{
		{"127.0.0.1", "a.xiaomi.example", 5, nil},
		{"127.0.0.2", "b.xiaomi.example", 3, nil},
		{"127.0.0.2", "lgtv.example", 2, nil},
		{"127.0.0.3", "c.lgtv.example", 4, nil},
		{"127.0.0.5", "d.xiaomi.example", 2, []dns.EDNS0{mac}},
		{"127.0.0.5", "e.xiaomi.example", 1, []dns.EDNS0{ecs}},
		{"127.0.0.6", "f.xiaomi.example", 1, []dns.EDNS0{mac, ecs}}, // not trusted: options ignored
		{"127.0.0.1", "allowed.example", 3, nil},                    // not blocked: not logged
	}
	for _, s := range sends {
		for range s.n {
			queryFrom(t, s.src, addr, s.name, s.opts...)
		}
	}
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 18 })

	want := map[string]struct {
		total   int
		vendors map[string]int
	}{
		"127.0.0.1":    {5, map[string]int{"Xiaomi": 5}},
		"127.0.0.2":    {5, map[string]int{"Xiaomi": 3, "LG": 2}},
		"tv":           {4, map[string]int{"LG": 4}},
		"router-phone": {2, map[string]int{"Xiaomi": 2}},
		"192.168.7.7":  {1, map[string]int{"Xiaomi": 1}},
		"127.0.0.6":    {1, map[string]int{"Xiaomi": 1}},
	}
	check := func(t *testing.T, clients []querylog.ClientSummary) {
		t.Helper()
		if len(clients) != len(want) {
			t.Errorf("%d clients, want %d: %+v", len(clients), len(want), clients)
		}
		for _, c := range clients {
			w, ok := want[c.Client]
			if !ok {
				t.Errorf("unexpected client %q", c.Client)
				continue
			}
			if c.Total != w.total || fmt.Sprint(c.Vendors) != fmt.Sprint(w.vendors) {
				t.Errorf("client %s: total %d vendors %v, want %d %v", c.Client, c.Total, c.Vendors, w.total, w.vendors)
			}
		}
	}

	ctx := context.Background()
	c := apiClient(t, inst)
	clients, err := c.Clients(ctx, "1h")
	noErr(t, err)
	check(t, clients.Clients)

	page, err := c.Blocked(ctx, url.Values{"client": {"127.0.0.2"}})
	noErr(t, err)
	if len(page.Entries) != 5 || page.Entries[0].QName != "lgtv.example." || page.Entries[4].QName != "b.xiaomi.example." {
		t.Errorf("client 127.0.0.2 entries (newest first): %+v", page.Entries)
	}
	e := page.Entries[0]
	if e.Vendor != "LG" || e.List != "lg" || e.Rule != "||lgtv.example^" || e.Reason != querylog.ReasonName || e.QType != "A" || e.Proto != "udp" {
		t.Errorf("entry %+v", e)
	}
	page, err = c.Blocked(ctx, url.Values{"vendor": {"LG"}, "limit": {"3"}})
	noErr(t, err)
	if len(page.Entries) != 3 || page.Next == "" {
		t.Errorf("vendor LG page: %d entries, next %q", len(page.Entries), page.Next)
	}
	var rp querylog.Entry
	page, err = c.Blocked(ctx, url.Values{"client": {"router-phone"}})
	noErr(t, err)
	if len(page.Entries) > 0 {
		rp = page.Entries[0]
	}
	if rp.MAC != "aa:bb:cc:dd:ee:01" || rp.ClientAddr.String() != "127.0.0.5" {
		t.Errorf("router-phone entry %+v: want the MAC and the forwarder's address", rp)
	}
	top, err := c.Top(ctx, "1h", 2)
	noErr(t, err)
	if top.Total != 18 || top.Vendors[0].Key != "Xiaomi" || top.Vendors[0].Count != 12 || len(top.Names) != 2 || top.Names[0].Key != "a.xiaomi.example." {
		t.Errorf("top %+v", top)
	}

	// The CLI, through the API.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"clients", "-config", cfgPath, "-json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var cli api.ClientsReport
	if err := json.Unmarshal(out.Bytes(), &cli); err != nil {
		t.Fatal(err)
	}
	check(t, cli.Clients)
	out.Reset()
	if err := run(context.Background(), []string{"log", "-config", cfgPath, "-client", "tv"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out.Bytes(), []byte("c.lgtv.example")); n != 4 {
		t.Errorf("vigil log -client tv shows %d lookups, want 4:\n%s", n, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"top", "-config", cfgPath}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("18 blocked lookups")) || !bytes.Contains(out.Bytes(), []byte("Xiaomi")) {
		t.Errorf("vigil top:\n%s", out.String())
	}
	for _, bad := range []string{"/api/v1/blocked?limit=0", "/api/v1/blocked?since=yesterday", "/api/v1/blocked?cursor=zz", "/api/v1/top?limit=x"} {
		resp, err := http.Get("http://" + inst.apiAddr + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %s, want 400", bad, resp.Status)
		}
	}
}

// countStored opens a stopped Vigil's store and counts its blocked entries.
func countStored(t *testing.T, cfgPath string) int {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.Store, testLogger(t))
	if err != nil {
		t.Fatalf("reopening the store: %v", err)
	}
	defer st.Close()
	ql, err := querylog.Open(cfg.Store.Dir, cfg.QueryLog, testLogger(t))
	if err != nil {
		t.Fatalf("reopening the query log: %v", err)
	}
	defer ql.Close()
	top, err := ql.Top(time.Time{}, time.Time{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return top.Total
}

// blast sends blocked queries from several goroutines until stop is
// closed or max is reached, and returns how many blocked answers came back.
func blast(addr string, workers, max int, stop <-chan struct{}) int64 {
	var got, sent atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > int64(max) {
					return
				}
				r, _, err := c.Exchange(rt.Question(fmt.Sprintf("w%d-%d.xiaomi.example", w, i), dns.TypeA), addr)
				if err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.IsUnspecified() {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return got.Load()
}

func TestGracefulShutdownLosesNoLogEntries(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, logTestLists)
	inst, stopServe := runServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()

	stop := make(chan struct{})
	answered := make(chan int64)
	go func() { answered <- blast(addr, 8, 1_000_000, stop) }()
	time.Sleep(300 * time.Millisecond)  // under load...
	if err := stopServe(); err != nil { // ...shut down
		t.Fatal(err)
	}
	close(stop)
	got := <-answered
	st := inst.qlog.Stats()
	stored := countStored(t, cfgPath)
	t.Logf("answered %d blocked queries; recorded %d, dropped %d, stored %d", got, st.Written, st.Dropped, stored)
	if got == 0 {
		t.Fatal("no load reached the server")
	}
	if st.Dropped != 0 || int64(stored) < got || uint64(stored) != st.Written {
		t.Errorf("answered %d, recorded %d, dropped %d, stored %d: a graceful shutdown must store every recorded lookup", got, st.Written, st.Dropped, stored)
	}
}

// TestKillLosesAtMostTheBound runs Vigil as a separate process, kills it
// with SIGKILL under load and checks the log lost no more than
// queue_size entries, plus twice what a UDP reader's lane holds per
// reader, and the store still opens.
func TestKillLosesAtMostTheBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a separate process")
	}
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	const queue, batch = 256, 64
	cfgPath := writeTestConfig(t, up.Addr, fmt.Sprintf(`
[querylog]
queue_size = %d
batch_size = %d
flush_interval = "50ms"
log_lines = false
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
`, queue, batch))
	// A fixed DNS port, so the test knows where the child listens.
	dnsAddr := freeAddr(t)
	var childErr bytes.Buffer
	cmd := startChild(t, cfgPath, dnsAddr, &childErr)
	got := killUnderLoad(t, cmd, dnsAddr)
	stored := countStored(t, cfgPath)
	// Two UDP readers on the one socket (udp_sockets = 1), each with a
	// lane of up to 128 entries, and as many drained into the batch
	// (store/querylog/lane.go).
	const bound = queue + 2*2*128
	t.Logf("answered %d blocked queries before SIGKILL; %d stored; bound %d", got, stored, bound)
	if got < 1000 {
		t.Fatalf("only %d answers: not enough load to test the bound (child stderr: %s)", got, childErr.String())
	}
	if lost := got - int64(stored); lost > bound {
		t.Errorf("lost %d entries, more than the documented bound of %d", lost, bound)
	}
}

// startChild runs Vigil as a separate process (the test binary acting as
// it) with cfgPath, its DNS on dnsAddr and its stderr to stderr (nil:
// dropped), killed when the test ends; it returns once the child answers.
func startChild(t *testing.T, cfgPath, dnsAddr string, stderr io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "-config", cfgPath, "-listen", dnsAddr)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_RUN_MAIN=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "the child to answer", func() bool {
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		_, _, err := c.Exchange(rt.Question("ready.example", dns.TypeA), dnsAddr)
		return err == nil
	})
	return cmd
}

// killUnderLoad sends blocked queries to dnsAddr from eight workers, kills
// cmd with SIGKILL after 700 ms of it, and returns how many were answered.
func killUnderLoad(t *testing.T, cmd *exec.Cmd, dnsAddr string) int64 {
	t.Helper()
	stop := make(chan struct{})
	answered := make(chan int64)
	go func() { answered <- blast(dnsAddr, 8, 1_000_000, stop) }()
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	return <-answered
}

// TestCLIExplainsWhenNeitherAPINorStore checks the error when the API does
// not answer and the store is held by another process (a server running
// with its API off, say).
func TestCLIExplainsWhenNeitherAPINorStore(t *testing.T) {
	cfgPath := writeTestConfig(t, "127.0.0.1:53", "")
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.Store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"log"}, {"clients"}, {"top"}, {"lists"}, {"explain", "x.example"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(args, "-config", cfgPath), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "no running vigil answers") || !strings.Contains(err.Error(), "held by a running server") {
			t.Errorf("vigil %v: %v", args, err)
		}
	}
}

// vigil log pages with -cursor, and says when allowed lookups are not
// logged instead of "no lookups match"; explain names no empty vendor.
func TestLogCursorAndAllowedOff(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, logTestLists)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	queryFrom(t, "127.0.0.1", addr, "first.xiaomi.example")
	queryFrom(t, "127.0.0.1", addr, "second.xiaomi.example")
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written == 2 })
	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(t.Context(), append([]string{args[0], "-config", cfgPath}, args[1:]...), &out, &errOut); err != nil {
			t.Fatalf("vigil %v: %v %s", args, err, errOut.String())
		}
		return out.String()
	}
	page1 := cli("log", "-limit", "1")
	m := regexp.MustCompile(`-cursor (\S+)\)`).FindStringSubmatch(page1)
	if !strings.Contains(page1, "second.xiaomi.example") || m == nil {
		t.Fatalf("first page:\n%s", page1)
	}
	if page2 := cli("log", "-limit", "1", "-cursor", m[1]); !strings.Contains(page2, "first.xiaomi.example") || strings.Contains(page2, "second.") {
		t.Errorf("second page:\n%s", page2)
	}
	if out := cli("log", "-allowed"); !strings.Contains(out, "no allowed lookups match") || !strings.Contains(out, "querylog.log_allowed is off") {
		t.Errorf("log -allowed with the option off:\n%s", out)
	}
	if out := cli("explain", "https://First.Xiaomi.example:8443/path?q=1"); !strings.Contains(out, "first.xiaomi.example. is BLOCKED") && !strings.Contains(out, "first.xiaomi.example is BLOCKED") {
		t.Errorf("explain of a URL:\n%s", out)
	}
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"explain", "-config", cfgPath, "bad..name"}, &out, &errOut)
	if err == nil || strings.Contains(err.Error(), "/api/v1/") {
		t.Errorf("a bad name: %v, want an error without the API's path", err)
	}
	noErr(t, inst.lists.AllowNow("ok.xiaomi.example"))
	if out := cli("explain", "ok.xiaomi.example"); strings.Contains(out, `vendor ""`) || !strings.Contains(out, "is allowed by list") {
		t.Errorf("explain of an allowed-now name:\n%s", out)
	}
}
