package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// send makes one request to the running API with the given headers
// ("Host" sets the Host header) and returns the status and body.
func send(t *testing.T, inst *running, method, path string, header map[string]string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+inst.apiAddr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHostilePage plays a web page open in a browser on the machine that
// runs Vigil with the default configuration (no token, API on loopback):
// it must not pause blocking, allow a name, or read the log through DNS
// rebinding.
func TestHostilePage(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	inst := startServe(t, writeTestConfig(t, up.Addr, ""))
	evil := map[string]string{"Origin": "http://evil.example"}
	if code, b := send(t, inst, http.MethodPost, "/api/v1/pause?duration=168h", evil, nil); code != http.StatusForbidden {
		t.Errorf("cross-origin pause: %d %s, want 403", code, b)
	}
	if code, b := send(t, inst, http.MethodPost, "/api/v1/allow?name=x.example", evil, nil); code != http.StatusForbidden {
		t.Errorf("cross-origin allow: %d %s, want 403", code, b)
	}
	if st := inst.pause.Status(); !st.All.IsZero() {
		t.Errorf("blocking paused by a cross-origin request: %+v", st)
	}
	if names, err := inst.lists.Allowed(); err != nil || len(names) != 0 {
		t.Errorf("names allowed by a cross-origin request: %v %v", names, err)
	}
	port := inst.apiAddr[strings.LastIndex(inst.apiAddr, ":")+1:]
	rebound := map[string]string{"Host": "rebind.evil.example:" + port}
	for _, path := range []string{"/api/v1/blocked", "/api/v1/clients", "/metrics", "/debug/pprof/"} {
		if code, b := send(t, inst, http.MethodGet, path, rebound, nil); code != http.StatusForbidden {
			t.Errorf("rebound GET %s: %d %.60s, want 403", path, code, b)
		}
	}
	if code, _ := send(t, inst, http.MethodGet, "/debug/pprof/", nil, nil); code != http.StatusNotFound {
		t.Errorf("pprof without a token: %d, want 404 (off)", code)
	}
	// The CLI still works.
	if _, err := apiClient(t, inst).Pause(t.Context(), "", time.Minute); err != nil {
		t.Errorf("CLI pause: %v", err)
	}
}

// TestAPIWorkBounded: a window from year 1 to 9999 took 14.5 s and
// answered 256 MB; a 100 MB multipart login raised RSS by 140 MB.
func TestAPIWorkBounded(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	inst := startServe(t, writeTestConfig(t, up.Addr, "[querylog]\nretention = \"720h\"\n"))
	for _, q := range []string{"since=0001-01-01T00:00:00Z&until=9999-12-31T00:00:00Z", "since=1000000d"} {
		t0 := time.Now()
		code, b := send(t, inst, http.MethodGet, "/api/v1/clients/127.0.0.1/days?"+q, nil, nil)
		took := time.Since(t0)
		var out struct {
			Days []json.RawMessage `json:"days"`
		}
		if err := json.Unmarshal(b, &out); code != http.StatusOK || err != nil {
			t.Fatalf("days?%s: %d %v (%d bytes)", q, code, err, len(b))
		}
		t.Logf("days?%s: %d days, %d bytes, %v", q, len(out.Days), len(b), took.Round(time.Millisecond))
		if len(out.Days) > 31 || took > 2*time.Second {
			t.Errorf("days?%s: %d days in %v, want at most 31 (the retention) and quickly", q, len(out.Days), took)
		}
	}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("token", "big")
	_, _ = fw.Write(bytes.Repeat([]byte("x"), 16<<20))
	_ = mw.Close()
	code, b := send(t, inst, http.MethodPost, "/api/v1/login", map[string]string{"Content-Type": mw.FormDataContentType(), "X-Vigil-Client": "t"}, &mp)
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("16 MB multipart login: %d %s, want 415", code, b)
	}

	srv := inst.api
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("the API's http.Server is unbounded: read header %v, read %v, write %v, idle %v, header bytes %d",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}
