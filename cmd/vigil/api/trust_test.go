package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/store/querylog"
)

// request sends one request to base+path with the given headers and
// returns the status and body.
func request(t *testing.T, method, url string, header map[string]string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCrossOriginChangesRefused: with the default configuration (no token,
// API on loopback) a page on another site must not be able to pause
// blocking or allow a name; Vigil's own page and the CLI still can.
func TestCrossOriginChangesRefused(t *testing.T) {
	deps := testDeps(t)
	var allowed atomic.Int32
	deps.Lists = &fakeLists{set: testSet(t), allowNow: func(string) error { allowed.Add(1); return nil }}
	c, base := newTestAPI(t, deps)
	self := base // the API's own origin, as a browser spells it
	refused := []struct {
		name   string
		header map[string]string
	}{
		{"evil origin", map[string]string{"Origin": "http://evil.example"}},
		{"evil origin with the client header", map[string]string{"Origin": "http://evil.example", ClientHeader: "x"}},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch (another port)", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}},
		{"null origin", map[string]string{"Origin": "null"}},
		{"no browser headers and no client header (an old browser's form)", nil},
	}
	for _, tc := range refused {
		for _, path := range []string{"/api/v1/pause?duration=168h", "/api/v1/allow?name=x.example", "/api/v1/login"} {
			if code, body := request(t, http.MethodPost, base+path, tc.header, nil); code != http.StatusForbidden {
				t.Errorf("%s: POST %s: %d %s, want 403", tc.name, path, code, body)
			}
		}
	}
	if st := deps.Pause.Status(); !st.All.IsZero() || len(st.Clients) != 0 {
		t.Errorf("a refused request paused blocking: %+v", st)
	}
	if n := allowed.Load(); n != 0 {
		t.Errorf("a refused request allowed a name (%d calls)", n)
	}

	// Vigil's own page: the browser says same-origin, or sends its origin.
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "same-origin", "Origin": self},
		{"Origin": self},
	} {
		if code, body := request(t, http.MethodPost, base+"/api/v1/pause?duration=1m", h, nil); code != http.StatusOK {
			t.Errorf("same-origin pause %v: %d %s", h, code, body)
		}
	}
	// The CLI and scripts: no Origin, the client header.
	if code, body := request(t, http.MethodPost, base+"/api/v1/resume", map[string]string{ClientHeader: "curl"}, nil); code != http.StatusOK {
		t.Errorf("scripted resume: %d %s", code, body)
	}
	if _, err := c.Pause(context.Background(), "", time.Minute); err != nil {
		t.Errorf("CLI pause: %v", err)
	}
	// Cross-site reads of the API are refused too (a no-cors fetch cannot
	// read the answer, but it can make Vigil do the work).
	if code, _ := request(t, http.MethodGet, base+"/api/v1/clients", map[string]string{"Sec-Fetch-Site": "cross-site"}, nil); code != http.StatusForbidden {
		t.Errorf("cross-site read: %d, want 403", code)
	}
	// ...but a link from elsewhere still opens the dashboard.
	if code, _ := request(t, http.MethodGet, base+"/", map[string]string{"Sec-Fetch-Site": "cross-site"}, nil); code != http.StatusOK {
		t.Errorf("dashboard from a link: %d, want 200", code)
	}
}

// TestRebindingHostRefused: a page on rebind.evil.example whose name
// resolves to 127.0.0.1 sends Host: rebind.evil.example; on a loopback
// listener only loopback names, IP addresses and http.allowed_hosts are
// this API's.
func TestRebindingHostRefused(t *testing.T) {
	deps := testDeps(t)
	deps.Config.AllowedHosts = []string{"vigil.home.arpa"}
	deps.Config.Token = "a-token-for-pprof-0"
	_, base := newTestAPI(t, deps)
	port := base[strings.LastIndex(base, ":")+1:]
	bearer := "Bearer " + deps.Config.Token
	paths := []string{"/api/v1/blocked", "/api/v1/clients", "/metrics", "/debug/pprof/", "/"}
	for _, path := range paths {
		for _, host := range []string{"rebind.evil.example:" + port, "rebind.evil.example", "localhost.evil.example:" + port} {
			if code, body := request(t, http.MethodGet, base+path, map[string]string{"Host": host, "Authorization": bearer}, nil); code != http.StatusForbidden {
				t.Errorf("GET %s Host %s: %d %.80s, want 403", path, host, code, body)
			}
		}
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST.:" + port, "[::1]:" + port, "vigil.home.arpa:" + port} {
			if code, body := request(t, http.MethodGet, base+path, map[string]string{"Host": host, "Authorization": bearer}, nil); code != http.StatusOK {
				t.Errorf("GET %s Host %s: %d %.80s, want 200", path, host, code, body)
			}
		}
	}
	if code, _ := request(t, http.MethodPost, base+"/api/v1/pause?duration=1h", map[string]string{
		"Host": "rebind.evil.example:" + port, "Origin": "http://rebind.evil.example:" + port, "Sec-Fetch-Site": "same-origin",
	}, nil); code != http.StatusForbidden {
		t.Errorf("rebound pause: %d, want 403", code)
	}
}

// TestPprofNeedsToken: profiles show memory contents and cost CPU, so they
// are served only to the token's holder, and not at all without a token.
func TestPprofNeedsToken(t *testing.T) {
	_, base := newTestAPI(t, testDeps(t))
	if code, _ := request(t, http.MethodGet, base+"/debug/pprof/", nil, nil); code != http.StatusNotFound {
		t.Errorf("pprof without a configured token: %d, want 404", code)
	}
	deps := testDeps(t)
	deps.Config.Token = "a-token-for-pprof-0"
	_, base = newTestAPI(t, deps)
	if code, _ := request(t, http.MethodGet, base+"/debug/pprof/", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("pprof without credentials on loopback: %d, want 401", code)
	}
	if code, _ := request(t, http.MethodGet, base+"/debug/pprof/", map[string]string{"Authorization": "Bearer " + deps.Config.Token}, nil); code != http.StatusOK {
		t.Errorf("pprof with the token: %d, want 200", code)
	}
}

// window records the windows and limits the API hands the log.
type window struct {
	mu           sync.Mutex
	since, until []time.Time
	limits       []int
}

func (w *window) add(since, until time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since, w.until = append(w.since, since), append(w.until, until)
}

type windowLog struct {
	w *window
}

func (f windowLog) Clients(since, until time.Time) ([]querylog.ClientSummary, error) {
	f.w.add(since, until)
	return nil, nil
}
func (f windowLog) Client(c string, since, until time.Time) (querylog.ClientSummary, error) {
	f.w.add(since, until)
	return querylog.ClientSummary{}, nil
}
func (f windowLog) ClientDays(c string, since, until time.Time) ([]querylog.VendorDay, error) {
	f.w.add(since, until)
	return nil, nil
}
func (f windowLog) TopAllowed(since, until time.Time, n int) (querylog.TopReport, error) {
	return f.Top(since, until, n)
}
func (f windowLog) Top(since, until time.Time, n int) (querylog.TopReport, error) {
	f.w.add(since, until)
	f.w.mu.Lock()
	f.w.limits = append(f.w.limits, n)
	f.w.mu.Unlock()
	return querylog.TopReport{}, nil
}
func (f windowLog) Entries(fl querylog.Filter) (querylog.Page, error) {
	f.w.add(fl.Since, fl.Until)
	return querylog.Page{}, nil
}
func (f windowLog) AllowedCounts(since, until time.Time) (map[string]int, error) {
	f.w.add(since, until)
	return nil, nil
}
func (f windowLog) Identities(time.Time) ([]string, error) { return []string{"tv"}, nil }

// TestWindowsClamped: a window from year 1 to year 9999 made the log
// build one row per day, 3.6 million of them (14.5 s, 256 MB); every
// window is now clamped to what the log keeps, and every limit to 1000.
func TestWindowsClamped(t *testing.T) {
	deps := testDeps(t)
	deps.Retention = 30 * 24 * time.Hour
	w := &window{}
	deps.Log = windowLog{w: w}
	_, base := newTestAPI(t, deps)
	start := time.Now()
	for _, q := range []string{
		"since=0001-01-01T00:00:00Z&until=9999-12-31T00:00:00Z",
		"since=1000000d",
		"since=2000000h",
		"since=99999999999999d",
		"",
	} {
		for _, path := range []string{"/api/v1/clients/tv/days", "/api/v1/clients/tv", "/api/v1/clients", "/api/v1/top", "/api/v1/blocked"} {
			if code, body := request(t, http.MethodGet, base+path+"?"+q, nil, nil); code != http.StatusOK {
				t.Errorf("GET %s?%s: %d %s", path, q, code, body)
			}
		}
	}
	end := time.Now()
	floor := start.Add(-deps.Retention)
	for i := range w.since {
		if w.since[i].Before(floor) || w.since[i].After(end) {
			t.Errorf("window %d: since %v, want within the retention (after %v)", i, w.since[i], floor)
		}
		if w.until[i].After(end) {
			t.Errorf("window %d: until %v, want not after now", i, w.until[i])
		}
	}
	w.limits = nil
	request(t, http.MethodGet, base+"/api/v1/top?limit=100000000", nil, nil)
	if len(w.limits) != 1 || w.limits[0] > 1000 || w.limits[0] < 1 {
		t.Errorf("top limit 100000000 reached the log as %v, want at most 1000", w.limits)
	}
}

// TestLoginTakesASmallFormOnly: a 100 MB multipart login raised the
// server's memory by 140 MB and wrote temporary files. Login now reads a
// small form or JSON body and refuses anything else before reading it.
func TestLoginTakesASmallFormOnly(t *testing.T) {
	deps := testDeps(t)
	deps.Config.Token = "a-token-for-login-0"
	_, base := newTestAPI(t, deps)
	h := map[string]string{ClientHeader: "test"}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("token", "big")
	_, _ = fw.Write(bytes.Repeat([]byte("x"), 8<<20))
	_ = mw.WriteField("token", deps.Config.Token)
	_ = mw.Close()
	h["Content-Type"] = mw.FormDataContentType()
	if code, body := request(t, http.MethodPost, base+"/api/v1/login", h, &mp); code != http.StatusUnsupportedMediaType {
		t.Errorf("multipart login: %d %s, want 415", code, body)
	}

	h["Content-Type"] = "application/x-www-form-urlencoded"
	big := "token=" + deps.Config.Token + "&pad=" + strings.Repeat("x", 1<<20)
	if code, body := request(t, http.MethodPost, base+"/api/v1/login", h, strings.NewReader(big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MB form login: %d %s, want 413", code, body)
	}
	h["Content-Type"] = "application/json"
	bigJSON := fmt.Sprintf(`{"token": %q, "pad": %q}`, deps.Config.Token, strings.Repeat("x", 1<<20))
	if code, body := request(t, http.MethodPost, base+"/api/v1/login", h, strings.NewReader(bigJSON)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MB JSON login: %d %s, want 413", code, body)
	}

	for ct, body := range map[string]string{
		"application/x-www-form-urlencoded":               url.Values{"token": {deps.Config.Token}}.Encode(),
		"application/x-www-form-urlencoded;charset=UTF-8": url.Values{"token": {deps.Config.Token}}.Encode(),
		"application/json":                                `{"token": "` + deps.Config.Token + `"}`,
	} {
		h["Content-Type"] = ct
		if code, b := request(t, http.MethodPost, base+"/api/v1/login", h, strings.NewReader(body)); code != http.StatusOK {
			t.Errorf("login as %s: %d %s", ct, code, b)
		}
	}
	// The token belongs in the body, never in the URL (where logs keep it).
	delete(h, "Content-Type")
	if code, _ := request(t, http.MethodPost, base+"/api/v1/login?token="+deps.Config.Token, h, nil); code == http.StatusOK {
		t.Error("login with the token in the URL succeeded")
	}
}

// testLimits are DefaultLimits scaled down so the test takes a second.
func testLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 2 * time.Second, IdleTimeout: 500 * time.Millisecond,
		MaxConns: 8, MaxHeaderBytes: 8 << 10,
	}
}

// serveLimited serves New(deps) the way serve does, with l, on 127.0.0.1.
func serveLimited(t *testing.T, deps Deps, l Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(New(deps), l, nil)
	go func() { _ = srv.Serve(LimitListener(ln, l.MaxConns)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestSlowClientsCutOff: a thousand logins that send their headers and
// then trickle the body were held for ever, each an open file that DNS
// needed. Now the timeouts close them, the connection cap bounds how many
// are open at once, and a normal request still gets through.
func TestSlowClientsCutOff(t *testing.T) {
	l := testLimits()
	addr := serveLimited(t, testDeps(t), l)

	const slow = 40 // five times the cap
	type result struct {
		held time.Duration
		err  error
	}
	results := make(chan result, slow)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range slow {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			t0 := time.Now()
			switch i % 3 {
			case 0: // headers, then a body one byte at a time
				fmt.Fprintf(c, "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vigil-Client: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n")
			case 1: // headers one byte at a time
				fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\n")
			case 2: // nothing at all
			}
			buf := make([]byte, 512)
			for time.Since(t0) < 10*time.Second {
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, err := c.Read(buf); err != nil && !isTimeout(err) {
					results <- result{held: time.Since(t0)} // closed by the server
					return
				}
				if _, err := c.Write([]byte("x")); err != nil {
					results <- result{held: time.Since(t0)}
					return
				}
			}
			results <- result{held: time.Since(t0), err: errors.New("still open after 10 s")}
		})
	}
	// A normal request gets through while they trickle.
	time.Sleep(100 * time.Millisecond)
	client := NewClient(mustAddrPort(t, addr), "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t1 := time.Now()
	if err := client.Health(ctx); err != nil {
		t.Errorf("a normal request among slow ones: %v", err)
	}
	t.Logf("normal request answered in %v", time.Since(t1).Round(time.Millisecond))
	wg.Wait()
	close(results)
	var longest time.Duration
	for r := range results {
		if r.err != nil {
			t.Error(r.err)
		}
		longest = max(longest, r.held)
	}
	// Accepted connections are cut within ReadTimeout; the others wait in
	// the kernel's queue for a slot, a few rounds of it.
	if limit := time.Duration(slow/l.MaxConns+2) * l.ReadTimeout; longest > limit {
		t.Errorf("a slow connection was held %v, want under %v", longest, limit)
	}
	t.Logf("%d slow connections all closed within %v (%v overall)", slow, longest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// isTimeout says whether err is only our own read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestLimitListener: past the cap, Accept waits until a connection
// closes, so the API never holds more than MaxConns descriptors.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	defer ln.Close()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted past the cap of 2")
	case <-time.After(200 * time.Millisecond):
	}
	_ = first.Close()
	_ = first.Close() // a second Close must not free a second slot
	select {
	case c := <-accepted:
		_ = c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("closing a connection did not free its slot")
	}
	_ = second.Close()
	_ = ln.Close()
	for range accepted { // Accept returns once the listener is closed
	}
}

// TestIdleConnectionsClosed: an idle keep-alive connection gives its slot
// back after IdleTimeout.
func TestIdleConnectionsClosed(t *testing.T) {
	l := testLimits()
	addr := serveLimited(t, testDeps(t), l)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	if held := time.Since(t0); held > l.IdleTimeout+time.Second {
		t.Errorf("idle connection held %v, want about %v", held, l.IdleTimeout)
	}
}

// TestDefaultLimits: the limits serve uses are bounded, and long enough
// for the largest legitimate page.
func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if l.ReadHeaderTimeout <= 0 || l.ReadTimeout <= 0 || l.IdleTimeout <= 0 || l.MaxConns <= 0 || l.MaxHeaderBytes <= 0 {
		t.Errorf("unbounded: %+v", l)
	}
	if l.WriteTimeout < 30*time.Second {
		t.Errorf("write timeout %v: shorter than a 30 s CPU profile", l.WriteTimeout)
	}
	srv := NewServer(http.NotFoundHandler(), l, nil)
	if srv.ReadHeaderTimeout != l.ReadHeaderTimeout || srv.ReadTimeout != l.ReadTimeout || srv.WriteTimeout != l.WriteTimeout ||
		srv.IdleTimeout != l.IdleTimeout || srv.MaxHeaderBytes != l.MaxHeaderBytes {
		t.Errorf("server %+v does not carry %+v", srv, l)
	}
}
