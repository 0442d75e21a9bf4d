package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// monthVendors are the vendors of the generated month: each device phones
// one to three of them home at a steady interval of its own.
var monthVendors = []string{"Xiaomi", "Huawei", "Samsung", "LG", "Roku", "Amazon", "Google", "TikTok"}

// writeMonth fills a store and a per-client log with a month of a
// household of 20 devices: hourly totals for the charts and blocked (and
// allowed) lookups for the log, deterministic, the newest an hour ago.
func writeMonth(t *testing.T, cfg *Config) {
	t.Helper()
	st, err := store.Open(cfg.Store, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	qcfg := cfg.QueryLog
	qcfg.LogAllowed = true
	q, err := querylog.Open(cfg.Store.Dir, qcfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go q.Run(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().Add(-time.Hour).Truncate(time.Minute)
	start := now.Add(-30 * 24 * time.Hour)
	for h := start; h.Before(now); h = h.Add(time.Hour) {
		if err := st.AddSeries(h, uint64(300+rng.IntN(400)), uint64(40+rng.IntN(80)), 400*24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 20 {
		addr := netip.AddrFrom4([4]byte{192, 168, 1, byte(20 + d)})
		name := ""
		if d%3 != 2 {
			name = fmt.Sprintf("device-%02d", d)
		}
		vendors := []string{monthVendors[d%len(monthVendors)]}
		if d%2 == 0 {
			vendors = append(vendors, monthVendors[(d+3)%len(monthVendors)])
		}
		every := time.Duration(15+5*d) * time.Minute
		for at := start.Add(time.Duration(d) * time.Minute); at.Before(now); at = at.Add(every) {
			v := vendors[rng.IntN(len(vendors))]
			host := fmt.Sprintf("telemetry.%s.example.", strings.ToLower(v))
			for !q.Record(querylog.Entry{Time: at, ClientName: name, ClientAddr: addr, QName: host, QType: "A", Proto: "udp",
				Blocked: true, List: strings.ToLower(v), Vendor: v, Rule: "||" + strings.TrimSuffix(host, ".") + "^", Reason: querylog.ReasonName}) {
				time.Sleep(time.Millisecond) // the queue is full: let the writer catch up
			}
			if rng.IntN(3) == 0 {
				q.Record(querylog.Entry{Time: at, ClientName: name, ClientAddr: addr, QName: "www.example.org.", QType: "HTTPS", Proto: "udp"})
			}
		}
	}
	cancel()
	<-q.Done()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDashboardMonthInBrowser renders every page over a generated month of
// 20 devices, at a laptop's and a phone's width: no console errors, charts
// with labelled axes, the device × vendor map with every device that phoned
// home, a device's lookups per day by vendor and how regularly it asks.
// VIGIL_SCREENSHOTS=docs/screenshots writes the screenshots the README
// shows.
func TestDashboardMonthInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := findChromium(t)
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, `
[identify]
neighbor_table = ""
[querylog]
log_allowed = true
log_lines = false
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
`)
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeMonth(t, cfg)
	inst := startServe(t, cfgPath)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	base := "http://" + inst.apiAddr + "/"
	if err := chromedp.Do(bctx, chromedp.Navigate(base)); err != nil {
		t.Skipf("chromium at %s did not start: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 120*time.Second)
	defer cancel()
	// Every console error and uncaught exception, for the whole visit.
	var (
		mu       sync.Mutex
		problems []string
	)
	cctx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	messages := chromedp.Console(cctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	}()
	shots := os.Getenv("VIGIL_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(t.TempDir(), "screenshots")
	}
	_ = os.MkdirAll(shots, 0o755)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(expr string) chromedp.Action[chromedp.Void] { return chromedp.Poll[chromedp.Void](expr) }
	shot := func(name string, w, h int64) {
		t.Helper()
		do(chromedp.EmulateViewport(w, h), chromedp.Sleep(300*time.Millisecond))
		take := chromedp.FullScreenshot(100)
		if strings.HasPrefix(name, "queries") {
			take = chromedp.CaptureScreenshot() // the first screenful: the page is 100 rows long
		}
		buf, err := chromedp.Run(ctx, take)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pages := []struct {
		name, hash, ready string
	}{
		{"overview", "#/", `document.querySelectorAll("svg.chart").length === 3 && !!document.getElementById("top-permitted") && !!document.getElementById("upstreams")`},
		{"devices", "#/devices", `document.querySelectorAll("#heat tbody tr").length === 20 && document.querySelectorAll("#heat thead th").length === 1 + 8`},
		{"device", "#/device/device-00", `!!document.querySelector("svg.stacked") && [...document.querySelectorAll("small.every")].some((e) => e.textContent === "every 15 min")`},
		{"queries", "#/queries", `document.querySelectorAll("#queries tbody tr").length === 100 && !!document.getElementById("q-next")`},
		{"tools", "#/tools", `!!document.getElementById("explain")`},
		{"alerts", "#/alerts", `!!document.getElementById("alerts")`},
	}
	for _, p := range pages {
		for _, size := range []struct {
			suffix string
			w, h   int64
		}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
			do(chromedp.EmulateViewport(size.w, size.h), chromedp.Navigate(base+p.hash), poll(p.ready))
			if p.name == "overview" || p.name == "device" {
				// Every chart has a count scale and time labels.
				do(poll(`[...document.querySelectorAll("svg.chart")].every((c) => c.querySelectorAll("text.axis").length >= 4)`))
			}
			shot(p.name+"-"+size.suffix, size.w, size.h)
		}
	}
	// Naming a device from its page renames it everywhere: its page, the
	// device list and the map, with its history.
	do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"#/device/192.168.1.22"), chromedp.WaitVisible(chromedp.CSS("#new-name")),
		chromedp.SetValue(chromedp.CSS("#new-name"), "living-room-tv"), chromedp.Click(chromedp.CSS("#rename-submit")),
		poll(`(document.getElementById("device-name")||{textContent:""}).textContent === "living-room-tv" && !!document.querySelector("svg.stacked rect")`))
	do(chromedp.Navigate(base+"#/devices"), poll(`[...document.querySelectorAll("#devices tbody tr")].some((tr) =>
		tr.children[0].textContent === "living-room-tv" && tr.textContent.includes("192.168.1.22") && tr.textContent.includes("you"))`),
		poll(`[...document.querySelectorAll("#heat tbody th")].some((th) => th.textContent === "living-room-tv")`))
	stopConsole()
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the console reported:\n%s", strings.Join(problems, "\n"))
	}
}
