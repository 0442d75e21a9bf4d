package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/store/fleet/pgtest"
	"github.com/vigil-dns/vigil/store/querylog"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replicaLog is one replica's local log with its writer running.
type replicaLog struct {
	*querylog.Log
	stop context.CancelFunc
	done chan struct{}
}

func startLog(t *testing.T, dir string) *replicaLog {
	t.Helper()
	cfg := querylog.DefaultConfig()
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.LogLines = false
	cfg.LogAllowed = true
	q, err := querylog.Open(dir, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replicaLog{Log: q, stop: cancel, done: make(chan struct{})}
	go func() { q.Run(ctx); close(r.done) }()
	t.Cleanup(func() { r.stop(); <-r.done; q.Close() })
	return r
}

// record writes n blocked lookups (and one allowed) of client and waits
// until the writer has them on disk.
func (r *replicaLog) record(t *testing.T, client string, n int) {
	t.Helper()
	before := r.Stats().Written
	for i := range n {
		r.Record(querylog.Entry{Time: time.Now(), ClientName: client, ClientAddr: netip.MustParseAddr("192.0.2.7"),
			QName: fmt.Sprintf("t%d.xiaomi.example.", i), QType: "A", Blocked: true, List: "xiaomi", Vendor: "Xiaomi",
			Rule: "||xiaomi.example^", Reason: querylog.ReasonName, Proto: querylog.ProtoUDP})
	}
	r.Record(querylog.Entry{Time: time.Now(), ClientName: client, QName: "ok.example.", QType: "A", Proto: querylog.ProtoUDP})
	waitFor(t, "the local log", func() bool { return r.Stats().Written >= before+uint64(n)+1 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runFleet starts a replica's shipper on dsn, looking for new entries
// every 50 ms.
func runFleet(t *testing.T, dsn, replica string, spool Spool) *Fleet {
	return runFleetEvery(t, dsn, replica, spool, 50*time.Millisecond)
}

// runFleetEvery is runFleet with another ship_interval.
func runFleetEvery(t *testing.T, dsn, replica string, spool Spool, every time.Duration) *Fleet {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Postgres, cfg.Replica, cfg.ShipInterval = dsn, replica, every
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(cfg, Options{Spool: spool, Retention: 30 * 24 * time.Hour, AllowedRetention: 24 * time.Hour, ShipAllowed: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; f.Close() })
	return f
}

// count runs a count query; -1 when it fails (the schema not there yet,
// the server down).
func count(t *testing.T, dsn, query string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// Every entry of the local log arrives once, tagged with its replica; a
// shipper that lost its positions replays and doubles nothing.
func TestShipEveryEntryOnce(t *testing.T) {
	dsn := pgtest.DB(t)
	log := startLog(t, t.TempDir())
	log.record(t, "phone", 500)
	f := runFleet(t, dsn, "r1", log)
	waitFor(t, "the entries in PostgreSQL", func() bool {
		return count(t, dsn, "SELECT count(*) FROM vigil_blocked") == 500
	})
	waitFor(t, "the allowed entry", func() bool { return count(t, dsn, "SELECT count(*) FROM vigil_allowed") == 1 })
	if n := count(t, dsn, "SELECT count(DISTINCT (ts, seq)) FROM vigil_blocked WHERE replica = 'r1' AND client = 'phone' AND vendor = 'Xiaomi'"); n != 500 {
		t.Errorf("%d distinct entries of r1's phone, want 500", n)
	}
	log.record(t, "phone", 100)
	waitFor(t, "the next entries", func() bool { return count(t, dsn, "SELECT count(*) FROM vigil_blocked") == 600 })
	waitFor(t, "the stats", func() bool { st := f.Stats(); return st.Shipped == 602 && st.Pending == 0 })
	if st := f.Stats(); !st.Connected {
		t.Errorf("stats %+v", st)
	}

	// The positions are lost (a database restored from an older backup,
	// say): a new shipper replays the whole log, and nothing is doubled.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "DELETE FROM vigil_ship"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	f2 := runFleet(t, dsn, "r1", log)
	waitFor(t, "the replay", func() bool { return f2.Stats().Shipped == 602 })
	if n := count(t, dsn, "SELECT count(*) FROM vigil_blocked"); n != 600 {
		t.Errorf("%d entries after a replay, want 600", n)
	}
}

// Replicas starting at once on an empty database all migrate it: one
// does the work, the others find it done.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.DB(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		cfg := DefaultConfig()
		cfg.Postgres, cfg.Replica = dsn, fmt.Sprintf("r%d", i)
		f, err := Open(cfg, Options{}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.start(context.Background()) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if n := count(t, dsn, "SELECT count(*) FROM vigil_schema"); n != SchemaVersion() {
		t.Errorf("%d migrations recorded, want %d", n, SchemaVersion())
	}
	if n := count(t, dsn, "SELECT count(*) FROM vigil_replicas"); n != 4 {
		t.Errorf("%d replicas recorded, want 4", n)
	}
}

// PostgreSQL stopped while lookups go on: they wait in the local log,
// and every one arrives exactly once when it is back.
func TestShipAfterOutage(t *testing.T) {
	if !pgtest.Local() {
		t.Skip("needs this test binary's own PostgreSQL to stop and start it (unset " + pgtest.EnvDSN + ")")
	}
	dsn := pgtest.DB(t)
	log := startLog(t, t.TempDir())
	f := runFleet(t, dsn, "r1", log)
	log.record(t, "tv", 200)
	waitFor(t, "the first entries", func() bool { return count(t, dsn, "SELECT count(*) FROM vigil_blocked") == 200 })
	pgtest.Stop(t)
	log.record(t, "tv", 300)
	waitFor(t, "the shipper to notice", func() bool { return !f.Stats().Connected })
	if st := f.Stats(); st.Pending == 0 || st.LastError == "" {
		t.Errorf("during the outage: %+v; want pending bytes and the error", st)
	}
	pgtest.Start(t)
	waitFor(t, "the entries after the outage", func() bool {
		return count(t, dsn, "SELECT count(*) FROM vigil_blocked") >= 500 && f.Stats().Pending == 0
	})
	if n := count(t, dsn, "SELECT count(*) FROM vigil_blocked"); n != 500 {
		t.Errorf("%d entries, want exactly 500", n)
	}
}

// Text that COPY's format would misread (a tab, a newline, a backslash in
// a device's name) arrives as it was.
func TestShipEscapesText(t *testing.T) {
	dsn := pgtest.DB(t)
	log := startLog(t, t.TempDir())
	odd := "kid's\ttablet\\2\nnew\r"
	at := time.Date(2026, 12, 1, 23, 59, 59, 999_999_999, time.UTC) // the last microsecond of a day, and some
	log.Record(querylog.Entry{Time: at, ClientName: odd, ClientAddr: netip.MustParseAddr("2001:db8::7"),
		QName: "a.xiaomi.example.", QType: "AAAA", Blocked: true, List: "x", Vendor: "Xiaomi", Rule: `||xiaomi.example^`,
		Reason: querylog.ReasonCNAME, CNAME: "c.example.", Proto: querylog.ProtoDoH, Group: "kids,guests"})
	waitFor(t, "the local log", func() bool { return log.Stats().Written == 1 })
	f := runFleet(t, dsn, "r1", log)
	waitFor(t, "the entry", func() bool { return f.Stats().Shipped == 1 })
	page, err := f.Reader("").Entries(querylog.Filter{Since: at.Add(-time.Hour), Until: at.Add(time.Hour)})
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("%d entries, %v", len(page.Entries), err)
	}
	e := page.Entries[0]
	if want := at.Truncate(time.Microsecond); !e.Time.Equal(want) {
		t.Errorf("time %s, want %s (truncated to the microsecond, in its day)", e.Time, want)
	}
	if e.ClientName != odd || e.Client != odd || e.ClientAddr != netip.MustParseAddr("2001:db8::7") || e.CNAME != "c.example." ||
		e.Reason != querylog.ReasonCNAME || e.Proto != querylog.ProtoDoH || e.Group != "kids,guests" || e.Replica != "r1" || !e.Blocked {
		t.Errorf("read back %+v", e)
	}
}

// Retention drops whole day partitions past it, and nothing younger.
func TestDropExpiredPartitions(t *testing.T) {
	dsn := pgtest.DB(t)
	cfg := DefaultConfig()
	cfg.Postgres, cfg.Replica = dsn, "r1"
	f, err := Open(cfg, Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	if err := f.start(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	days := []time.Time{now.AddDate(0, 0, -40), now.AddDate(0, 0, -31), now.AddDate(0, 0, -30), now}
	if err := ensurePartitions(ctx, f.pool, true, days); err != nil {
		t.Fatal(err)
	}
	if err := ensurePartitions(ctx, f.pool, true, days); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	dropped, err := dropExpired(ctx, f.pool, true, now.AddDate(0, 0, -30))
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 2 || dropped[0] != "vigil_blocked_20261022" && dropped[1] != "vigil_blocked_20261022" {
		t.Errorf("dropped %v, want the partitions of 22 and 31 October", dropped)
	}
	if n := count(t, dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'vigil_blocked'::regclass"); n != 2 {
		t.Errorf("%d partitions left, want 2 (1 November, where the cutoff falls, and today)", n)
	}
}

// A crash's torn write at the end of the segment being written is not
// damage: the shipper waits at it, the writer cuts it off when it next
// opens the segment, and what it appends then is shipped — nothing lost.
func TestShipPastATornTail(t *testing.T) {
	dsn := pgtest.DB(t)
	dir := t.TempDir()
	first := startLog(t, dir)
	first.record(t, "phone", 100) // 100 blocked, 1 allowed
	first.stop()
	<-first.done
	segs, _ := filepath.Glob(filepath.Join(dir, "querylog", "blocked-*.qlog"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	torn, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = torn.Write([]byte{0xB2, 0xe8, 0x03, 0, 0, 1, 2, 3}) // a frame's head promising 1,000 bytes, then the crash
	torn.Close()

	second := startLog(t, dir)
	f := runFleet(t, dsn, "r1", second)
	waitFor(t, "the first entries", func() bool { return count(t, dsn, "SELECT count(*) FROM vigil_blocked") == 100 })
	time.Sleep(200 * time.Millisecond) // a few passes at the torn tail
	if st := f.Stats(); st.LostBytes != 0 {
		t.Fatalf("a torn tail counted as lost: %+v", st)
	}
	second.record(t, "phone", 50) // the writer reopens the segment and cuts the torn frame off
	waitFor(t, "the entries after the torn tail", func() bool { return count(t, dsn, "SELECT count(*) FROM vigil_blocked") == 150 })
	if st := f.Stats(); st.LostBytes != 0 {
		t.Errorf("lost bytes %d", st.LostBytes)
	}
}
