package api

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAPIAuth(t *testing.T) {
	const token = "correct-horse-battery-staple"
	a := newAuth(Config{Token: token, SessionTTL: time.Hour})
	a.readsOpen = true // loopback
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/login", handlerFunc(a.login))
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	mux.HandleFunc("GET /api/v1/stats", ok)
	mux.HandleFunc("POST /api/v1/pause", ok)
	mux.HandleFunc("GET /api/v1/health", ok)
	srv := newLoopbackServer(t, a.wrap(mux))

	do := func(c *http.Client, method, path, bearer string) int {
		req, _ := http.NewRequest(method, srv+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	plain := &http.Client{}
	if got := do(plain, "POST", "/api/v1/pause", ""); got != http.StatusUnauthorized {
		t.Errorf("unauthenticated change: %d, want 401", got)
	}
	if got := do(plain, "POST", "/api/v1/pause", "wrong-token-000"); got != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", got)
	}
	if got := do(plain, "POST", "/api/v1/pause", token); got != http.StatusOK {
		t.Errorf("bearer token: %d", got)
	}
	if got := do(plain, "GET", "/api/v1/stats", ""); got != http.StatusOK {
		t.Errorf("read on loopback: %d, want open", got)
	}

	// A dashboard session: log in with the token, then change things with
	// the cookie alone.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, srv+"/api/v1/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv) // as the dashboard's fetch sends it
	resp, err := browser.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := do(browser, "POST", "/api/v1/pause", ""); got != http.StatusOK {
		t.Errorf("with a session: %d", got)
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) } // the session has expired
	if got := do(browser, "POST", "/api/v1/pause", ""); got != http.StatusUnauthorized {
		t.Errorf("expired session: %d, want 401", got)
	}

	// Beyond loopback, reads need credentials too, except health.
	a.readsOpen = false
	if got := do(plain, "GET", "/api/v1/stats", ""); got != http.StatusUnauthorized {
		t.Errorf("read beyond loopback: %d, want 401", got)
	}
	if got := do(plain, "GET", "/api/v1/health", ""); got != http.StatusOK {
		t.Errorf("health beyond loopback: %d, want open", got)
	}
}

func TestTokenRequiredBeyondLoopback(t *testing.T) {
	c := Config{Listen: netip.MustParseAddrPort("0.0.0.0:8053"), SessionTTL: time.Hour}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "http.token") {
		t.Errorf("listening on 0.0.0.0 without a token: %v", err)
	}
	c.Token = "a-long-enough-token"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func TestAllowedHostsValidated(t *testing.T) {
	c := Config{Listen: netip.MustParseAddrPort("127.0.0.1:8053"), SessionTTL: time.Hour,
		AllowedHosts: []string{"vigil.home.arpa", "Pi.Hole.", "vigil.lan:8053", "http://x", "", "-a.example"}}
	err := c.Validate()
	for _, bad := range []string{"[2]", "[3]", "[4]", "[5]"} {
		if err == nil || !strings.Contains(err.Error(), "http.allowed_hosts"+bad) {
			t.Errorf("allowed_hosts%s not refused: %v", bad, err)
		}
	}
	for _, good := range []string{"[0]", "[1]"} {
		if err != nil && strings.Contains(err.Error(), "http.allowed_hosts"+good) {
			t.Errorf("allowed_hosts%s refused: %v", good, err)
		}
	}
}
