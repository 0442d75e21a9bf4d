package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store/fleet/pgtest"
)

// replicaConfig writes a fleet replica's configuration: the Xiaomi test
// list, a log flushed every 20 ms, shipping every 50 ms to dsn, and extra.
func replicaConfig(t *testing.T, upstream, dsn, replica, extra string) string {
	return writeTestConfig(t, upstream, fmt.Sprintf(`
[querylog]
flush_interval = "20ms"
log_lines = false
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
[fleet]
postgres = %q
replica = %q
ship_interval = "50ms"
%s`, dsn, replica, extra))
}

// Three replicas on one PostgreSQL: the blocked lookups sent to each
// appear once in every replica's API, fleet-wide and per replica.
func TestFleetOfThree(t *testing.T) {
	dsn := pgtest.DB(t)
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	var replicas []*running
	for i := range 3 {
		replicas = append(replicas, startServe(t, replicaConfig(t, up.Addr, dsn, fmt.Sprintf("r%d", i), "")))
	}
	// Each replica is asked by its own client: 2, 3 and 4 lookups.
	for i, inst := range replicas {
		addr := inst.srv.UDPAddrs()[0].String()
		for j := range i + 2 {
			r, _, err := sendFromT(fmt.Sprintf("127.0.0.%d", 10+i)).Exchange(rt.Question(fmt.Sprintf("n%d.xiaomi.example", j), dns.TypeA), addr)
			if err != nil || len(r.Answer) != 1 {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
	}
	for i, inst := range replicas {
		c := apiClient(t, inst)
		waitFor(t, fmt.Sprintf("replica %d's API to show the fleet's 9 lookups", i), func() bool {
			page, err := c.Blocked(t.Context(), url.Values{"limit": {"100"}})
			return err == nil && len(page.Entries) == 9
		})
		page, err := c.Blocked(t.Context(), url.Values{"limit": {"100"}})
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, e := range page.Entries {
			per[e.Replica+" "+e.Client]++
		}
		if per["r0 127.0.0.10"] != 2 || per["r1 127.0.0.11"] != 3 || per["r2 127.0.0.12"] != 4 {
			t.Errorf("replica %d sees %v", i, per)
		}
		one, err := c.Blocked(t.Context(), url.Values{"limit": {"100"}, "replica": {"r2"}})
		if err != nil || len(one.Entries) != 4 {
			t.Errorf("replica %d, ?replica=r2: %d entries, %v; want 4", i, len(one.Entries), err)
		}
		// Paging through the fleet's log with its cursor.
		first, err := c.Blocked(t.Context(), url.Values{"limit": {"5"}})
		if err != nil || len(first.Entries) != 5 || !strings.HasPrefix(first.Next, "f") {
			t.Fatalf("replica %d, first page: %d entries, next %q, %v", i, len(first.Entries), first.Next, err)
		}
		second, err := c.Blocked(t.Context(), url.Values{"limit": {"5"}, "cursor": {first.Next}})
		if err != nil || len(second.Entries) != 4 || second.Next != "" {
			t.Errorf("replica %d, second page: %d entries, next %q, %v", i, len(second.Entries), second.Next, err)
		}
		top, err := c.Top(t.Context(), "1h", 10)
		if err != nil || top.Total != 9 || len(top.Clients) != 3 {
			t.Errorf("replica %d, top: %+v, %v", i, top, err)
		}
	}
	// Health and metrics say how shipping goes.
	var health struct {
		Fleet struct {
			Replica   string `json:"replica"`
			Connected bool   `json:"connected"`
		} `json:"fleet"`
	}
	if err := apiClient(t, replicas[1]).Call(t.Context(), "GET", "/api/v1/health", &health); err != nil || !health.Fleet.Connected || health.Fleet.Replica != "r1" {
		t.Errorf("health %+v, %v", health, err)
	}
	resp, err := http.Get("http://" + replicas[1].apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "vigil_fleet_connected 1\n") || !strings.Contains(string(metrics), "vigil_fleet_pending_bytes 0\n") ||
		!strings.Contains(string(metrics), "vigil_fleet_shipped_total 3\n") {
		t.Errorf("/metrics lacks the fleet's figures")
	}
	// The CLI and the dashboard name each entry's replica.
	out := cli(t, replicas[0].cfg.path, "log", "-replica", "r1")
	if !strings.Contains(out, "REPLICA") || strings.Count(out, "r1 ") != 3 || strings.Contains(out, "r2 ") {
		t.Errorf("vigil log -replica r1:\n%s", out)
	}
	if out := cli(t, replicas[0].cfg.path, "top", "-replica", "r2"); !strings.Contains(out, "127.0.0.12") || strings.Contains(out, "127.0.0.10") {
		t.Errorf("vigil top -replica r2:\n%s", out)
	}
	if out := cli(t, replicas[0].cfg.path, "clients"); !strings.Contains(out, "127.0.0.10") || !strings.Contains(out, "127.0.0.12") {
		t.Errorf("vigil clients (the fleet):\n%s", out)
	}
	if testing.Short() {
		return
	}
	ctx := openBrowser(t, "http://"+replicas[2].apiAddr+"/#/queries?result=blocked")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#q-replica"))); err != nil {
		t.Fatalf("no resolver filter on the queries page: %v", err)
	}
	table, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#queries")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "Resolver") || !strings.Contains(table, "r0") || !strings.Contains(table, "r1") || !strings.Contains(table, "r2") {
		t.Errorf("the queries page of r2 lacks the fleet's resolvers:\n%s", table)
	}
}

// What a user sets on one replica takes effect on the others within a
// second: a name allowed for everyone, a device's exception, a device's
// name, a pause; and a replica started later catches up on all of it.
func TestFleetSharesState(t *testing.T) {
	dsn := pgtest.DB(t)
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgFor := func(name string) string {
		return replicaConfig(t, up.Addr, dsn, name, "[identify]\nneighbor_table = \"\"\n")
	}
	a, b := startServe(t, cfgFor("a")), startServe(t, cfgFor("b"))
	ask := func(inst *running, from, name string) string {
		r, _, err := sendFromT(from).Exchange(rt.Question(name, dns.TypeA), inst.srv.UDPAddrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		return answerText(r)
	}
	waitFor(t, "both replicas to reach PostgreSQL", func() bool { return a.fleet.Ready() && b.fleet.Ready() })
	ca := apiClient(t, a)
	if _, err := ca.Except(t.Context(), "api.xiaomi.example", false, url.Values{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Except(t.Context(), "tv.xiaomi.example", false, url.Values{"client": {"127.0.0.20"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "replica b to allow api.xiaomi.example", func() bool { return ask(b, "127.0.0.1", "api.xiaomi.example") == "forwarded" })
	t.Logf("an allow on a took effect on b after %s", time.Since(start).Round(time.Millisecond))
	waitFor(t, "replica b to apply the device's exception", func() bool { return ask(b, "127.0.0.20", "tv.xiaomi.example") == "forwarded" })
	if got := ask(b, "127.0.0.21", "tv.xiaomi.example"); got != "blocked" {
		t.Errorf("another device on b: %s, want blocked (the exception is the device's)", got)
	}
	if _, err := ca.Pause(t.Context(), "127.0.0.30", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica b to pause the device", func() bool { return ask(b, "127.0.0.30", "x.xiaomi.example") == "forwarded" })
	var named map[string]any
	if err := ca.Call(t.Context(), "PUT", "/api/v1/devices/name?device=127.0.0.31&name=kitchen-tv", &named); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica b to know the device's name", func() bool { _, ok := b.names.Names()["127.0.0.31"]; return ok })

	// A third replica, started now, catches up on all of it.
	c := startServe(t, cfgFor("c"))
	waitFor(t, "replica c to catch up", func() bool {
		return ask(c, "127.0.0.1", "api.xiaomi.example") == "forwarded" && ask(c, "127.0.0.20", "tv.xiaomi.example") == "forwarded" &&
			ask(c, "127.0.0.30", "x.xiaomi.example") == "forwarded" && c.names.Names()["127.0.0.31"] == "kitchen-tv"
	})
	// Undone on b: undone on a.
	cb := apiClient(t, b)
	if _, err := cb.Unexcept(t.Context(), "api.xiaomi.example", url.Values{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Resume(t.Context(), "127.0.0.30"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica a to block the name again and end the pause", func() bool {
		return ask(a, "127.0.0.1", "api.xiaomi.example") == "blocked" && ask(a, "127.0.0.30", "x.xiaomi.example") == "blocked"
	})
}

// PostgreSQL stopped under load: DNS answers every query, the lookups
// wait in the local log, and every one arrives exactly once when it is
// back. Then the replica is killed with SIGKILL under load and started
// again: PostgreSQL ends with exactly what the local log kept (which
// loses at most its documented bound, TestKillLosesAtMostTheBound).
func TestFleetOutageAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("stops PostgreSQL and runs a separate process")
	}
	if !pgtest.Local() {
		t.Skip("needs this test binary's own PostgreSQL to stop and start it (unset " + pgtest.EnvDSN + ")")
	}
	dsn := pgtest.DB(t)
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := replicaConfig(t, up.Addr, dsn, "r1", "")
	inPostgres := func() int { return countRows(t, dsn) }

	// The outage, in this process.
	inst, stop := runServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	waitFor(t, "the replica to reach PostgreSQL", func() bool { return inst.fleet.Ready() })
	pgtest.Stop(t)
	sent, answered := loadFor(addr, 4, 30*time.Second)
	if answered != sent || sent < 1000 {
		t.Errorf("answered %d of %d blocked queries over the 30 s PostgreSQL was down", answered, sent)
	}
	n := int(answered)
	waitFor(t, "the local log", func() bool { return inst.qlog.Stats().Written == uint64(n) })
	if st := inst.fleet.Stats(); st.Pending == 0 {
		t.Errorf("nothing pending during the outage: %+v", st)
	}
	pgtest.Start(t)
	waitFor(t, "every entry in PostgreSQL", func() bool { return inPostgres() >= n })
	time.Sleep(300 * time.Millisecond)
	if got := inPostgres(); got != n {
		t.Errorf("%d entries in PostgreSQL after the outage, want exactly %d", got, n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// SIGKILL under load, as a separate process, then a restart.
	dnsAddr := freeAddr(t)
	got := killUnderLoad(t, startChild(t, cfgPath, dnsAddr, nil), dnsAddr)
	kept := countStored(t, cfgPath)
	cmd := startChild(t, cfgPath, dnsAddr, nil)
	waitFor(t, "the restarted replica to ship what the log kept", func() bool { return inPostgres() >= kept })
	time.Sleep(300 * time.Millisecond)
	if in := inPostgres(); in != kept {
		t.Errorf("PostgreSQL holds %d entries, the local log %d: want the same", in, kept)
	}
	t.Logf("outage: %d of %d answered in 30 s, all %d in PostgreSQL once after; killed after %d answers more; the log kept %d in all, all in PostgreSQL once",
		answered, sent, n, got, kept)
	_ = cmd.Process.Signal(syscall.SIGTERM)
}

func countRows(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if conn.QueryRow(ctx, "SELECT count(*) FROM vigil_blocked").Scan(&n) != nil {
		return -1
	}
	return n
}

// loadFor sends blocked queries from workers for d, each waiting for its
// answer (a second at most), and counts what was sent and answered.
func loadFor(addr string, workers int, d time.Duration) (sent, answered int64) {
	var s, a atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			for i := 0; time.Now().Before(end); i++ {
				s.Add(1)
				r, _, err := c.Exchange(rt.Question(fmt.Sprintf("o%d-%d.xiaomi.example", w, i), dns.TypeA), addr)
				if err == nil && len(r.Answer) == 1 {
					a.Add(1)
				}
				time.Sleep(2 * time.Millisecond) // about 2,000 a second in all: load, not a flood
			}
		})
	}
	wg.Wait()
	return s.Load(), a.Load()
}

// -replica needs a running server: without one the command says so.
func TestReplicaNeedsServer(t *testing.T) {
	cfgPath := writeTestConfig(t, "127.0.0.1:9", "")
	for _, cmd := range []string{"log", "top", "clients", "devices"} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), []string{cmd, "-config", cfgPath, "-replica", "r1"}, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "-replica needs the running server") {
			t.Errorf("vigil %s -replica without a server: %v", cmd, err)
		}
	}
}
