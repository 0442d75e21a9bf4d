package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// openBrowser starts headless Chromium on base and returns a context for
// it with a deadline; it skips the test when there is no browser.
func openBrowser(t *testing.T, base string) context.Context {
	t.Helper()
	chromium := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx, chromedp.Navigate(base)); err != nil {
		t.Skipf("chromium at %s did not start: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A Vigil whose store cannot be opened and whose only list cannot be
// fetched says so on every surface — the log (WARN, tested elsewhere),
// `vigil lists`, /api/v1/health, /metrics and the dashboard — while DNS
// answers: it never claims to be blocking when it blocks nothing.
func TestDegradedStateOnEverySurface(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, `
[[lists]]
name = "remote"
sources = ["http://127.0.0.1:9/list.txt"]
`)
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.Store.Dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Store.Dir, "MANIFEST"), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startServe(t, cfgPath)
	base := "http://" + inst.apiAddr + "/"
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var health struct {
		Status       string `json:"status"`
		ListsWarning string `json:"lists_warning"`
		Store        struct {
			Mode string `json:"mode"`
		} `json:"store"`
	}
	if err := json.Unmarshal([]byte(get("api/v1/health")), &health); err != nil {
		t.Fatal(err)
	}
	if health.Status != "ok" || health.Store.Mode != "unavailable" || !strings.Contains(health.ListsWarning, "nothing is blocked") {
		t.Errorf("health %+v: want ok (DNS answers), the store unavailable and a lists warning", health)
	}
	metrics := get("metrics")
	for _, want := range []string{`vigil_store_mode{mode="unavailable"} 1`, "vigil_list_rules 0"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out := cli(t, cfgPath, "lists"); !strings.Contains(out, "WARNING: ") || !strings.Contains(out, "nothing is blocked") {
		t.Errorf("vigil lists does not warn:\n%s", out)
	}
	// Every read the dashboard's pages make answers, so they render (the
	// charts' hourly totals failed with 400 before, and the overview
	// showed nothing at all, its warning included).
	for _, path := range []string{"api/v1/series?since=24h", "api/v1/series?since=30d", "api/v1/top?since=24h&limit=10", "api/v1/lists",
		"api/v1/stats", "api/v1/pause", "api/v1/health", "api/v1/devices", "api/v1/clients", "api/v1/blocked", "api/v1/allow",
		"api/v1/exceptions", "api/v1/groups", "api/v1/alerts", "api/v1/functional", "api/v1/explain?name=a.example"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if testing.Short() {
		return
	}
	ctx := openBrowser(t, base)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#store-banner"))); err != nil {
		t.Fatalf("no store banner: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"the store is unavailable", "on, no rules", "Warning: ", "nothing is blocked"} {
		if !strings.Contains(page, want) {
			t.Errorf("the overview lacks %q:\n%s", want, page)
		}
	}
}
