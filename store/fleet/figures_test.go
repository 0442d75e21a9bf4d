package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store/fleet/pgtest"
	"github.com/vigil-dns/vigil/store/querylog"
)

// TestFleetFigures measures what docs/fleet.md quotes: entries per second
// one replica ships, PostgreSQL's disk per million entries, and the
// catch-up after a 30-second outage at 20,000 blocked lookups a second.
// Heavy: run with VIGIL_FLEET_FIGURES=1 go test -run TestFleetFigures -v ./store/fleet/
func TestFleetFigures(t *testing.T) {
	if os.Getenv("VIGIL_FLEET_FIGURES") == "" {
		t.Skip("set VIGIL_FLEET_FIGURES=1 to measure the fleet's figures (a few minutes)")
	}
	if !pgtest.Local() {
		t.Skip("needs this test binary's own PostgreSQL (unset " + pgtest.EnvDSN + ")")
	}
	dsn := pgtest.DB(t)
	log := startLog(t, t.TempDir())
	const million = 1_000_000
	at := time.Now().Add(-time.Hour)
	writeN := func(n int, client string) {
		for i := range n {
			for !log.Record(querylog.Entry{Time: at.Add(time.Duration(i) * time.Microsecond), ClientName: client,
				ClientAddr: netip.AddrFrom4([4]byte{192, 168, 1, byte(i % 200)}), QName: fmt.Sprintf("t%d.telemetry%d.xiaomi.example.", i%5000, i%37),
				QType: "A", Blocked: true, List: "xiaomi", Vendor: "Xiaomi", Rule: "||xiaomi.example^", Reason: querylog.ReasonName,
				Proto: querylog.ProtoUDP}) {
				time.Sleep(time.Millisecond) // the queue is full: let the writer catch up
			}
		}
	}
	start := time.Now()
	writeN(million, "phone")
	waitFor(t, "the local log", func() bool { return log.Stats().Written >= million })
	t.Logf("local log: %d entries written in %s", million, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	f := runFleetEvery(t, dsn, "r1", log, DefaultConfig().ShipInterval) // as shipped
	deadline := time.Now().Add(10 * time.Minute)
	for f.Stats().Shipped < million {
		if time.Now().After(deadline) {
			t.Fatalf("shipped %d in 10 min", f.Stats().Shipped)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("shipping: %d entries in %s = %.0f entries/s (batch %d)", million, took.Round(time.Millisecond), float64(million)/took.Seconds(), f.cfg.BatchSize)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, bytes int64
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM vigil_blocked),
		(SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits WHERE inhparent = 'vigil_blocked'::regclass)`).Scan(&rows, &bytes); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL: %d entries, %.1f MiB with indexes = %.1f MiB per million", rows, float64(bytes)/(1<<20), float64(bytes)/(1<<20)/float64(rows)*million)

	// The outage: 30 s at 20,000 blocked lookups a second with
	// PostgreSQL stopped, then the same rate on while it catches up.
	pgtest.Stop(t)
	const rate, outage = 20_000, 30 * time.Second
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- n
				return
			case <-tick.C:
				writeN(rate/100, "tv")
				n += rate / 100
			}
		}
	}()
	time.Sleep(outage)
	pending := f.Stats().Pending
	pgtest.Start(t)
	start = time.Now()
	waitFor2 := time.Now().Add(5 * time.Minute)
	for {
		st := f.Stats()
		if st.Connected && st.Pending < 64<<10 && st.Shipped > million {
			break
		}
		if time.Now().After(waitFor2) {
			t.Fatalf("not caught up after 5 min: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	caught := time.Since(start)
	close(stop)
	written := <-done
	t.Logf("outage: %s at %d/s left %.1f MiB pending; caught up %s after PostgreSQL came back, the writes going on", outage, rate, float64(pending)/(1<<20), caught.Round(time.Millisecond))
	waitFor(t, "the last entries", func() bool {
		return log.Stats().Written >= uint64(million+written) && f.Stats().Pending == 0 && count(t, dsn, "SELECT count(*) FROM vigil_blocked") == million+written
	})
	if n := count(t, dsn, "SELECT count(*) FROM vigil_blocked"); n != million+written {
		t.Errorf("%d entries in PostgreSQL, want %d", n, million+written)
	}
}

// BenchmarkShipSide is the shipper's own work per entry, without
// PostgreSQL: reading a block of the spool back, decoding it, and writing
// COPY's text. go test -run NONE -bench ShipSide ./store/fleet/
func BenchmarkShipSide(b *testing.B) {
	cfg := querylog.DefaultConfig()
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.LogLines = false
	q, err := querylog.Open(b.TempDir(), cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	const n = 100_000
	for i := range n {
		for !q.Record(querylog.Entry{Time: time.Now(), ClientName: "phone", ClientAddr: netip.AddrFrom4([4]byte{192, 168, 1, byte(i)}),
			QName: fmt.Sprintf("t%d.telemetry.xiaomi.example.", i%5000), QType: "A", Blocked: true, List: "xiaomi", Vendor: "Xiaomi",
			Rule: "||xiaomi.example^", Reason: querylog.ReasonName, Proto: querylog.ProtoUDP}) {
			time.Sleep(time.Millisecond)
		}
	}
	for q.Stats().Written < n {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	defer q.Close()
	segs, _ := q.SpoolSegments(true)
	f := &Fleet{cfg: Config{BatchSize: 20000}, replica: "r1", spool: q, now: time.Now, log: zap.NewNop()}
	b.ResetTimer()
	entries := 0
	for range b.N {
		for _, seg := range segs {
			for pos := int64(0); pos < seg.Size; {
				bt, err := f.read(seg, pos)
				if err != nil || bt.end <= pos {
					b.Fatal(err)
				}
				entries += bt.n
				pos = bt.end
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(entries), "ns/entry")
}
