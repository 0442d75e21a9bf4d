package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// findChromium returns Debian's chromium, or skips the test.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium found (Debian package chromium; .ci/run installs it): skipping the browser test")
	return ""
}

// TestDashboardInBrowser drives the dashboard in headless Chromium against
// a Vigil started here, after known blocked lookups from three clients.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := findChromium(t)
	const token = "dashboard-test-token"
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	// The network names one client: a DHCP lease for 127.0.0.2.
	leases := filepath.Join(t.TempDir(), "dnsmasq.leases")
	if err := os.WriteFile(leases, fmt.Appendf(nil, "%d a4:45:19:01:02:03 127.0.0.2 Redmi-Note-12 *\n", time.Now().Add(time.Hour).Unix()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeTestConfig(t, up.Addr, `
[identify]
lease_files = ["`+leases+`"]
neighbor_table = ""
[querylog]
flush_interval = "20ms"
log_lines = false
[[clients]]
name = "tv"
addresses = ["127.0.0.3"]
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
[[lists]]
name = "lg"
vendor = "LG"
entries = ["||lgtv.example^"]
[[lists]]
name = "xiaomi-cloud"
vendor = "Xiaomi"
enabled = false
breaks = ["push"]
sources = ["builtin:xiaomi-cloud"]
[[lists]]
name = "lg-cloud"
vendor = "LG"
enabled = false
breaks = ["updates"]
sources = ["builtin:lg-cloud"]
[[groups]]
name = "tvs"
clients = ["tv"]
lists = ["lg", "lg-cloud"]
[[groups]]
name = "default"
lists = ["xiaomi", "lg"]
`)
	body, _ := os.ReadFile(cfgPath)
	body = []byte(strings.Replace(string(body), "[http]\n", "[http]\ntoken = \""+token+"\"\n", 1))
	if err := os.WriteFile(cfgPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	ask := func(src, name string) string {
		r, _, err := sendFromT(src).Exchange(rt.Question(name, dns.TypeA), addr)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s from %s: %v", name, src, err)
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	for _, q := range []struct {
		src, name string
		n         int
	}{{"127.0.0.1", "a.xiaomi.example", 3}, {"127.0.0.2", "b.xiaomi.example", 2}, {"127.0.0.2", "lgtv.example", 1}, {"127.0.0.3", "c.lgtv.example", 4}} {
		for range q.n {
			ask(q.src, q.name)
		}
	}
	waitFor(t, "the log", func() bool { return inst.qlog.Stats().Written == 10 })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	base := "http://" + inst.apiAddr + "/"
	// The first run starts the browser: no timeout on its context.
	if err := chromedp.Do(bctx, chromedp.Navigate(base)); err != nil {
		// The browser itself would not start (a machine without what
		// Chromium needs): that says nothing about the dashboard.
		t.Skipf("chromium at %s did not start: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	shots := os.Getenv("VIGIL_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "vigil-screenshots")
	}
	_ = os.MkdirAll(shots, 0o755)
	shot := func(name string, w, h int64) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h), chromedp.Sleep(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", path)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(expr string) chromedp.Action[chromedp.Void] { return chromedp.Poll[chromedp.Void](expr) }

	// Overview: totals, vendors and clients.
	do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#logged-blocked")))
	logged, vendors, clients := text("#logged-blocked"), text("#top-vendors"), text("#top-clients")
	if names := text("#top-names"); !strings.Contains(names, "lgtv.example") || strings.Contains(names, "example.") {
		t.Errorf("top names %q: want them without the final dot", names)
	}
	if blocked, queries := text("#total-blocked"), text("#total-queries"); blocked != "10" || queries != "10" {
		t.Errorf("overview: %s queries and %s blocked in 24 h, want 10 and 10", queries, blocked)
	}
	// The charts fill their windows (24 hours, 7 days: the hours without
	// data too) and carry a count scale and time labels.
	do(poll(`(() => {
		const c = document.querySelectorAll("svg.chart");
		return c.length === 3 && c[0].querySelectorAll("g").length === 24 && c[1].querySelectorAll("g").length === 7 && c[2].querySelectorAll("g").length === 30 &&
			c[0].querySelectorAll("text.axis").length >= 3 + 4 && c[1].querySelectorAll("text.axis").length === 3 + 7;
	})()`))
	shot("overview-desktop", 1280, 900)
	shot("overview-phone", 390, 844)
	// The list sources say which lists are off, which apply only to the
	// groups naming them, and what each breaks.
	if ls := text("main"); !strings.Contains(ls, "off; turning it on breaks push") ||
		!strings.Contains(ls, "off for everyone, on for the groups that name it") || !strings.Contains(ls, "breaks there updates") {
		t.Errorf("list sources lack the on/off labels: %q", ls)
	}
	if logged != "10" || !strings.Contains(vendors, "Xiaomi") || !strings.Contains(vendors, "LG") || !strings.Contains(clients, "tv") {
		t.Errorf("overview: logged %q, vendors %q, clients %q", logged, vendors, clients)
	}

	// The devices page and one device's lookups with vendors.
	do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"#/devices"), chromedp.WaitVisible(chromedp.CSS("#devices")))
	devices := text("#devices")
	shot("devices-desktop", 1280, 900)
	shot("devices-phone", 390, 844)
	do(chromedp.Navigate(base+"#/device/tv"), chromedp.WaitVisible(chromedp.CSS("#lookups")))
	lookups := text("#lookups")
	shot("device-desktop", 1280, 900)
	shot("device-phone", 390, 844)
	// On a phone every row has as many visible cells as the heading, so
	// Vendor and the Allow button stay under their headings.
	do(chromedp.EmulateViewport(390, 844), poll(`(() => {
		const vis = (el) => getComputedStyle(el).display !== "none";
		const heads = [...document.querySelectorAll("#lookups thead th")].filter(vis).length;
		return [...document.querySelectorAll("#lookups tbody tr")].every((tr) => [...tr.children].filter(vis).length === heads);
	})()`))
	for _, d := range []string{"127.0.0.1", "redmi-note-12", "Xiaomi Communications Co Ltd", "DHCP lease", "tv", "configuration"} {
		if !strings.Contains(devices, d) {
			t.Errorf("devices page lacks %s: %q", d, devices)
		}
	}
	// Each lookup shows its query type.
	// The four lookups of one name are one row: 4 times, type A.
	do(poll(`(() => { const r = [...document.querySelectorAll("#lookups tbody tr")];
		return r.length === 1 && r[0].children[2].textContent === "4" && r[0].children[3].textContent === "A"; })()`))
	if n := strings.Count(lookups, "c.lgtv.example"); n != 1 || !strings.Contains(lookups, "LG") {
		t.Errorf("device tv: %d rows for c.lgtv.example, want 1 (grouped) with vendor LG: %q", n, lookups)
	}

	// Changes are refused without credentials...
	resp, err := http.Post(base+"api/v1/pause?duration=5m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated pause: %s, want 401", resp.Status)
	}
	if got := ask("127.0.0.1", "a.xiaomi.example"); got != "0.0.0.0" {
		t.Fatalf("not blocked after a refused pause: %s", got)
	}

	// ...and the dashboard asks to log in, then pauses.
	do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#pause-all")),
		chromedp.Click(chromedp.CSS("#pause-all")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-submit")),
		poll(`(document.getElementById("blocking-state")||{textContent:""}).textContent.startsWith("paused")`))
	if got := ask("127.0.0.1", "a.xiaomi.example"); got != "192.0.2.1" {
		t.Errorf("after pausing in the dashboard: %s, want the real answer", got)
	}
	do(chromedp.Click(chromedp.CSS("#resume-all")), poll(`(document.getElementById("blocking-state")||{textContent:""}).textContent === "on"`))
	if got := ask("127.0.0.1", "a.xiaomi.example"); got != "0.0.0.0" {
		t.Errorf("after resuming: %s, want blocked", got)
	}

	// One device paused from its page: its page and the overview say so,
	// and its page resumes it.
	do(chromedp.Navigate(base+"#/device/tv"), chromedp.WaitVisible(chromedp.CSS("#pause-device")),
		chromedp.Click(chromedp.CSS("#pause-device")),
		poll(`!!document.getElementById("device-paused") && !!document.getElementById("resume-device")`))
	if got := ask("127.0.0.3", "c.lgtv.example"); got != "192.0.2.1" {
		t.Errorf("tv paused from its page: %s, want the real answer", got)
	}
	do(chromedp.Navigate(base), poll(`(document.getElementById("blocking-state")||{textContent:""}).textContent === "on, paused for 1 device"`))
	do(chromedp.Navigate(base+"#/device/tv"), chromedp.WaitVisible(chromedp.CSS("#resume-device")),
		chromedp.Click(chromedp.CSS("#resume-device")),
		poll(`!document.getElementById("device-paused") && !!document.getElementById("pause-device")`))
	if got := ask("127.0.0.3", "c.lgtv.example"); got != "0.0.0.0" {
		t.Errorf("tv resumed from its page: %s, want blocked", got)
	}

	// Allow a name now.
	do(chromedp.Navigate(base+"#/tools"), chromedp.WaitVisible(chromedp.CSS("#a-name")),
		chromedp.SendKeys(chromedp.CSS("#a-name"), "a.xiaomi.example"),
		chromedp.Click(chromedp.CSS("#allow-submit")),
		poll(`(document.getElementById("allowed")||{textContent:""}).textContent.includes("a.xiaomi.example")`))
	if got := ask("127.0.0.1", "a.xiaomi.example"); got != "192.0.2.1" {
		t.Errorf("after allow-now: %s, want the real answer", got)
	}
	if got := ask("127.0.0.1", "other.xiaomi.example"); got != "0.0.0.0" {
		t.Errorf("allow-now is for that name only: other.xiaomi.example %s", got)
	}

	// A device's page shows its groups; "Allow here" unblocks a name for
	// that device only; the device moves to another group in a few clicks.
	if got := ask("127.0.0.3", "b.xiaomi.example"); got != "192.0.2.1" {
		t.Errorf("tv (group tvs: LG only) asks a Xiaomi name: %s, want the real answer", got)
	}
	do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"#/device/tv"),
		poll(`(document.getElementById("device-groups")||{textContent:""}).textContent.includes("tvs")`),
		chromedp.Click(chromedp.CSS("#lookups button.allow-here")),
		poll(`(document.getElementById("device-exceptions")||{textContent:""}).textContent.includes("c.lgtv.example")`))
	if got := ask("127.0.0.3", "c.lgtv.example"); got != "192.0.2.1" {
		t.Errorf("allowed here for tv: %s, want the real answer", got)
	}
	if got := ask("127.0.0.1", "c.lgtv.example"); got != "0.0.0.0" {
		t.Errorf("allowed for tv only, yet another device gets %s", got)
	}
	shot("device-groups-desktop", 1280, 900)
	do(chromedp.Click(chromedp.CSS(`#move input[value="tvs"]`)), chromedp.Click(chromedp.CSS(`#move input[value="default"]`)),
		chromedp.Click(chromedp.CSS("#move-submit")),
		poll(`(() => { const g = (document.getElementById("device-groups")||{textContent:""}).textContent;
			return g.includes("default") && g.includes("moved here by hand"); })()`))
	if got := ask("127.0.0.3", "b.xiaomi.example"); got != "0.0.0.0" {
		t.Errorf("tv moved to default (Xiaomi too): %s, want blocked", got)
	}
	do(chromedp.Navigate(base+"#/tools"), chromedp.WaitVisible(chromedp.CSS("#groups")))
	if g := text("#groups"); !strings.Contains(g, "tv (moved out)") || !strings.Contains(g, "tv (moved in)") {
		t.Errorf("tools' groups table: %q, want tvs and tv moved into default", g)
	}
	shot("tools-desktop", 1280, 900)
	fmt.Fprintln(os.Stderr, "dashboard screenshots in", shots)
}
