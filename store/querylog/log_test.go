package querylog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// testLog opens a log in dir, closed when the test ends.
func testLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(dir, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return q
}

func testLogConfig() Config {
	c := DefaultConfig()
	c.FlushInterval = 10 * time.Millisecond
	c.LogLines = false
	return c
}

// runLog starts the writer and returns a func that stops it and waits for
// it to drain.
func runLog(q *Log) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go q.Run(ctx)
	return func() { cancel(); <-q.Done() }
}

func entry(client string, addr string, at time.Time, qname, vendor string) Entry {
	return Entry{Time: at, ClientName: client, ClientAddr: netip.MustParseAddr(addr), QName: qname, QType: "A",
		Blocked: true, List: vendor + "-list", Vendor: vendor, Rule: "||" + qname + "^", Reason: ReasonName, Proto: "udp"}
}

// encodeEntry encodes e as appendRecord does, address included.
func encodeEntry(b []byte, e *Entry) []byte { return encodeEntryAddr(b, e, e.ClientAddr) }

// stamp is t as a block body keeps it beside an encoded entry.
func stamp(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func TestEntryEncoding(t *testing.T) {
	at := time.Unix(1_700_000_000, 123).UTC()
	cases := []Entry{
		entry("phone", "192.168.1.5", at, "a.example.", "Xiaomi"),
		{Time: at, ClientAddr: netip.MustParseAddr("fd00::1"), QName: "b.example.", QType: "AAAA", Proto: "tcp"},
		{Time: at, ClientAddr: netip.MustParseAddr("10.0.0.1"), MAC: "aa:bb:cc:dd:ee:ff", QName: "c.example.", QType: "TYPE65",
			Blocked: true, List: "l", Rule: "x", Reason: ReasonCNAME, CNAME: "t.example.", Proto: "doh"},
		{Time: at, ClientAddr: netip.MustParseAddr("10.0.0.2"), QName: "d.example.", QType: "A", Blocked: true, List: "tiktok",
			Reason: ReasonName, Proto: "udp", Group: "kids,guests"},
		{Time: at, ClientAddr: netip.MustParseAddr("10.0.0.3"), QName: "e.example.", QType: "A", Proto: "dot", Group: "default"},
	}
	for _, e := range cases {
		ts := stamp(e.Time)
		got, err := decodeEntry(ts, encodeEntry(nil, &e))
		if err != nil {
			t.Fatal(err)
		}
		e.Client = e.identity()
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	e := entry("p", "10.0.0.1", time.Now(), "x.example.", "V")
	f.Add(encodeEntry(nil, &e))
	f.Add([]byte{1, 0, 4, 1, 2, 3})
	f.Fuzz(func(t *testing.T, v []byte) {
		_, _ = decodeEntry(stamp(time.Unix(1, 0)), v) // must not panic
	})
}

func TestQueryLogWritesAndQueries(t *testing.T) {
	q := testLog(t, t.TempDir(), testLogConfig())
	stop := runLog(q)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	clients := []struct{ name, addr, vendor string }{{"", "192.168.1.10", "Xiaomi"}, {"tv", "192.168.1.11", "LG"}, {"", "192.168.1.12", "Xiaomi"}}
	for i := range 30 {
		c := clients[i%3]
		if !q.Record(entry(c.name, c.addr, base.Add(time.Duration(i)*time.Second), strings.ToLower(fmt.Sprintf("n%d.%s.example.", i, c.vendor)), c.vendor)) {
			t.Fatal("dropped with an empty queue")
		}
	}
	q.Record(Entry{Time: base, ClientAddr: netip.MustParseAddr("192.168.1.10"), QName: "allowed.example.", QType: "A", Proto: "udp"})
	stop()
	if st := q.Stats(); st.Written != 31 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}

	page, err := q.Entries(Filter{Client: "tv"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 10 || page.Entries[0].QName != "n28.lg.example." || page.Entries[9].QName != "n1.lg.example." {
		t.Fatalf("tv: %d entries, first %v", len(page.Entries), page.Entries)
	}
	for i := 1; i < len(page.Entries); i++ {
		if page.Entries[i].Time.After(page.Entries[i-1].Time) {
			t.Fatal("not newest first")
		}
	}
	// Pagination walks everything exactly once.
	seen := map[string]bool{}
	f := Filter{Limit: 7}
	for {
		p, err := q.Entries(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			if seen[e.QName] {
				t.Fatalf("%s twice", e.QName)
			}
			seen[e.QName] = true
		}
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
	}
	if len(seen) != 30 {
		t.Errorf("paged through %d entries, want 30 (the allowed one is in its own log)", len(seen))
	}
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{Vendor: "xiaomi"}, 20},
		{Filter{QType: "a"}, 30},
		{Filter{QType: "AAAA"}, 0},
		{Filter{List: "LG-list"}, 10},
		{Filter{Name: "N4.LG.example."}, 1},
		{Filter{Name: "lg.example"}, 10},
		{Filter{Name: "example"}, 30},
		{Filter{Since: base.Add(20 * time.Second)}, 10},
		{Filter{Until: base.Add(5 * time.Second)}, 5},
		{Filter{Client: "192.168.1.12", Vendor: "Xiaomi"}, 10},
		{Filter{Allowed: true}, 1},
	} {
		p, err := q.Entries(tc.f)
		if err != nil || len(p.Entries) != tc.want {
			t.Errorf("filter %+v: %d entries, %v; want %d", tc.f, len(p.Entries), err, tc.want)
		}
	}
	if _, err := q.Entries(Filter{Cursor: "zz"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}

	if all, err := q.Top(time.Time{}, time.Time{}, 1); err != nil || all.Total != 30 {
		t.Errorf("all-time top: %d, %v; want 30", all.Total, err)
	}
	cs, err := q.Clients(base.Add(-time.Minute), time.Time{})
	if err != nil || len(cs) != 3 {
		t.Fatalf("clients %v, %v", cs, err)
	}
	tv, err := q.Client("tv", base.Add(-time.Minute), time.Time{})
	if err != nil || tv.Total != 10 || tv.Vendors["LG"] != 10 || tv.Name != "tv" || !tv.First.Equal(base.Add(time.Second)) || !tv.Last.Equal(base.Add(28*time.Second)) {
		t.Errorf("tv summary %+v, %v", tv, err)
	}
	top, err := q.Top(base.Add(-time.Minute), time.Time{}, 2)
	if err != nil || top.Total != 30 || len(top.Clients) != 2 || top.Vendors[0].Key != "Xiaomi" || top.Vendors[0].Count != 20 {
		t.Errorf("top %+v, %v", top, err)
	}
}

func TestQueryLogFullQueueDrops(t *testing.T) {
	cfg := testLogConfig()
	cfg.QueueSize = 4
	q := testLog(t, t.TempDir(), cfg)
	// No writer yet: the queue fills and Record must neither block nor
	// take long.
	start := time.Now()
	ok := 0
	for range 1000 {
		if q.Record(entry("", "10.0.0.1", time.Now(), "x.example.", "V")) {
			ok++
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("1000 Records took %s with a full queue", d)
	}
	if st := q.Stats(); ok != 4 || st.Dropped != 996 || st.Queued != 4 {
		t.Errorf("accepted %d, stats %+v; want 4 queued and 996 dropped", ok, st)
	}
	stop := runLog(q)
	stop()
	if st := q.Stats(); st.Written != 4 {
		t.Errorf("written %d, want the 4 queued", st.Written)
	}
}

func TestQueryLogRetention(t *testing.T) {
	cfg := testLogConfig()
	cfg.Retention = time.Second
	q := testLog(t, t.TempDir(), cfg)
	stop := runLog(q)
	q.Record(entry("", "10.0.0.1", time.Now(), "old.example.", "V"))
	stop()
	if p, _ := q.Entries(Filter{}); len(p.Entries) != 1 {
		t.Fatalf("%d entries before expiry", len(p.Entries))
	}
	time.Sleep(2100 * time.Millisecond) // past the retention: readers hide the entry
	if p, _ := q.Entries(Filter{}); len(p.Entries) != 0 {
		t.Errorf("%d entries after the retention passed", len(p.Entries))
	}
	if p, _ := q.Entries(Filter{Client: "10.0.0.1"}); len(p.Entries) != 0 {
		t.Errorf("read by client: %d entries after the retention passed", len(p.Entries))
	}
}

func TestQueryLogTruncatesAddresses(t *testing.T) {
	cfg := testLogConfig()
	cfg.TruncateAddresses = true
	q := testLog(t, t.TempDir(), cfg)
	stop := runLog(q)
	q.Record(entry("", "192.168.1.77", time.Now(), "a.example.", "V"))
	q.Record(entry("", "2001:db8:aa:bbcc::1", time.Now(), "b.example.", "V"))
	stop()
	p, _ := q.Entries(Filter{})
	got := map[string]bool{}
	for _, e := range p.Entries {
		got[e.ClientAddr.String()] = true
	}
	if !got["192.168.1.0"] || !got["2001:db8:aa:bb00::"] {
		t.Errorf("stored addresses %v, want /24 and /56", got)
	}
}

// BenchmarkQueryLogWriter measures the writer's sustained rate: entries
// recorded as fast as possible and written in batches into segments.
func BenchmarkQueryLogWriter(b *testing.B) {
	cfg := DefaultConfig()
	cfg.LogLines = false
	q := testLog(b, b.TempDir(), cfg)
	stop := runLog(q)
	// An unnamed client, as most are: the log keys it by its address.
	e := entry("", "192.168.1.5", time.Now(), "telemetry.xiaomi.example.", "Xiaomi")
	start := time.Now()
	n := 0
	for b.Loop() {
		e.Time = e.Time.Add(time.Microsecond)
		for !q.Record(e) {
			time.Sleep(50 * time.Microsecond) // queue full: let the writer catch up
		}
		n++
	}
	stop()
	b.ReportMetric(float64(q.Stats().Written)/time.Since(start).Seconds(), "entries/s")
}

func TestQueryLogPausesOnLowDisk(t *testing.T) {
	var low atomic.Bool
	q := testLog(t, t.TempDir(), testLogConfig())
	q.PauseWhen(low.Load)
	stop := runLog(q)
	q.Record(entry("", "10.0.0.1", time.Now(), "before.example.", "V"))
	waitWritten(t, q, 1)
	low.Store(true) // as the store reports under store.min_free_bytes
	if !q.Stats().LowDisk {
		t.Error("stats do not report the low disk")
	}
	for range 5 {
		q.Record(entry("", "10.0.0.1", time.Now(), "during.example.", "V"))
	}
	time.Sleep(100 * time.Millisecond)
	low.Store(false)
	q.Record(entry("", "10.0.0.1", time.Now(), "after.example.", "V"))
	stop()
	st := q.Stats()
	if st.Written != 2 || st.LowDiskDropped != 5 || st.LowDisk {
		t.Errorf("stats %+v; want 2 written, 5 dropped for low disk", st)
	}
}

func waitWritten(t *testing.T, q *Log, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); q.Stats().Written < n; {
		if time.Now().After(deadline) {
			t.Fatalf("written %d, want %d", q.Stats().Written, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientDays(t *testing.T) {
	now := time.Now().UTC()
	q := testLog(t, t.TempDir(), testLogConfig())
	stop := runLog(q)
	q.Record(entry("tv", "10.0.0.2", now.Add(-24*time.Hour), "a.example.", "LG"))
	q.Record(entry("tv", "10.0.0.2", now, "b.example.", "LG"))
	q.Record(entry("tv", "10.0.0.2", now, "c.example.", "Samsung"))
	stop()
	days, err := q.ClientDays("tv", now.Add(-48*time.Hour), time.Time{})
	if err != nil || len(days) != 3 {
		t.Fatalf("%d days, %v", len(days), err)
	}
	if days[1].Vendors["LG"] != 1 || days[2].Vendors["LG"] != 1 || days[2].Vendors["Samsung"] != 1 || len(days[0].Vendors) != 0 {
		t.Errorf("days %+v", days)
	}
}

// BenchmarkDashboardMonth fills the log with a month of blocked lookups
// from 50 devices (300,000 entries) and measures the queries the dashboard
// makes: the overview (top over 24 h, clients over 7 d) and a device page
// (its days over 30 d and its latest 200 lookups).
func BenchmarkDashboardMonth(b *testing.B) {
	cfg := DefaultConfig()
	cfg.LogLines = false
	q := testLog(b, b.TempDir(), cfg)
	stop := runLog(q)
	now := time.Now()
	vendors := []string{"Xiaomi", "Huawei", "Samsung", "Apple", "Amazon", "LG", "Roku", "TikTok"}
	const n = 300_000
	for i := range n {
		at := now.Add(-time.Duration(i) * (30 * 24 * time.Hour / n))
		e := entry(fmt.Sprintf("device-%02d", i%50), fmt.Sprintf("192.168.1.%d", i%50+10), at,
			fmt.Sprintf("t%d.%s.example.", i%500, strings.ToLower(vendors[i%len(vendors)])), vendors[i%len(vendors)])
		for !q.Record(e) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	stop()
	for _, bc := range []struct {
		name string
		fn   func() error
	}{
		{"top-24h", func() error { _, err := q.Top(now.Add(-24*time.Hour), time.Time{}, 10); return err }},
		{"clients-7d", func() error { _, err := q.Clients(now.Add(-7*24*time.Hour), time.Time{}); return err }},
		{"device-days-30d", func() error {
			_, err := q.ClientDays("device-07", now.Add(-30*24*time.Hour), time.Time{})
			return err
		}},
		{"device-latest-200", func() error {
			_, err := q.Entries(Filter{Client: "device-07", Since: now.Add(-7 * 24 * time.Hour), Limit: 200})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The most asked allowed names and the clients asking most, from the log
// of allowed lookups only.
func TestTopAllowed(t *testing.T) {
	q := testLog(t, t.TempDir(), testLogConfig())
	stop := runLog(q)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, n := range []struct {
		addr, name string
		times      int
	}{{"192.168.1.10", "www.example.org.", 5}, {"192.168.1.11", "www.example.org.", 2}, {"192.168.1.11", "cdn.example.net.", 3}} {
		for j := range n.times {
			q.Record(Entry{Time: base.Add(time.Duration(i*10+j) * time.Second), ClientAddr: netip.MustParseAddr(n.addr), QName: n.name, QType: "A", Proto: "udp"})
		}
	}
	q.Record(entry("", "192.168.1.12", base, "blocked.example.", "Xiaomi")) // in the other log
	stop()
	rep, err := q.TopAllowed(base.Add(-time.Minute), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(rep.Total, rep.Names, rep.Clients)
	want := "10 [{www.example.org. 7 } {cdn.example.net. 3 }] [{192.168.1.10 5 } {192.168.1.11 5 }]" // ties by key
	if got != want {
		t.Errorf("TopAllowed = %s, want %s", got, want)
	}
}

// BenchmarkScan is what reading the log costs per entry (the alerts read
// every entry logged once).
func BenchmarkScan(b *testing.B) {
	cfg := testLogConfig()
	q := testLog(b, b.TempDir(), cfg)
	stop := runLog(q)
	base := time.Now().Add(-time.Hour)
	const n = 50_000
	for i := range n {
		e := entry(fmt.Sprintf("device-%d", i%20), "192.168.1.10", base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("n%d.xiaomi.example.", i%500), "Xiaomi")
		for !q.Record(e) {
			time.Sleep(time.Millisecond)
		}
	}
	stop()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		seen := 0
		if err := q.Scan(false, base.Add(-time.Minute), time.Now(), func(*Entry) { seen++ }); err != nil || seen != n {
			b.Fatal(seen, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// A block's summary tells each client's (name, address, MAC) entries per
// vendor without decoding the block, and agrees with its entries.
func TestScanSummaries(t *testing.T) {
	q := testLog(t, t.TempDir(), testLogConfig())
	stop := runLog(q)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 30 {
		e := entry([]string{"tv", "", "phone"}[i%3], []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}[i%3], base.Add(time.Duration(i)*time.Second),
			"x.example.", []string{"LG", "Xiaomi"}[i%2])
		if i%3 == 2 {
			e.MAC = "aa:bb:cc:00:00:01"
		}
		q.Record(e)
	}
	stop()
	got := map[string]int{}
	blocks := 0
	err := q.ScanSummaries(false, base.Add(-time.Minute), time.Now(), func(bs *BlockSummary) bool {
		blocks++
		for _, l := range bs.Lines {
			got[l.Name+"|"+l.Addr.String()+"|"+l.MAC+"|"+l.Vendor] += l.Count
		}
		if len(summarize(bs.Entries())) != len(bs.Lines) {
			t.Errorf("block %s: %d summary lines, its entries make %d", bs.Pos, len(bs.Lines), len(summarize(bs.Entries())))
		}
		return true
	})
	if err != nil || blocks == 0 {
		t.Fatal(blocks, err)
	}
	want := map[string]int{
		"tv|10.0.0.1||LG": 5, "tv|10.0.0.1||Xiaomi": 5, "|10.0.0.2||LG": 5, "|10.0.0.2||Xiaomi": 5,
		"phone|10.0.0.3|aa:bb:cc:00:00:01|LG": 5, "phone|10.0.0.3|aa:bb:cc:00:00:01|Xiaomi": 5,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("summaries %v, want %v", got, want)
	}
}
