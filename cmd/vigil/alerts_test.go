package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// A user who sets one webhook is told, within seconds, when a new device
// phones a vendor home, once; vigil alerts lists it; vigil alerts test
// reaches the webhook.
func TestAlertsEndToEnd(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []map[string]any
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get(alerts.SignatureHeader) != alerts.Sign("hook-secret", b) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}))
	defer hook.Close()
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+`
[alerts]
interval = "1s"
[[alerts.destinations]]
name = "home"
kind = "webhook"
url = "`+hook.URL+`"
secret = "hook-secret"
`)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	for range 3 {
		queryFrom(t, "127.0.0.7", addr, "a.xiaomi.example")
	}
	rulesGot := func() string {
		mu.Lock()
		defer mu.Unlock()
		var rs []string
		for _, b := range bodies {
			rs = append(rs, b["rule"].(string)+":"+b["client"].(string))
		}
		return strings.Join(rs, " ")
	}
	waitFor(t, "the alerts", func() bool { return strings.Count(rulesGot(), ":") >= 2 })
	if got := rulesGot(); got != "new_device:127.0.0.7 new_vendor:127.0.0.7" {
		t.Errorf("webhook got %q, want one new_device and one new_vendor", got)
	}
	if out := cli(t, cfgPath, "alerts"); !strings.Contains(out, "127.0.0.7 contacted Xiaomi for the first time") {
		t.Errorf("vigil alerts:\n%s", out)
	}
	// Muted for this device, a new vendor of it says nothing; seen, an
	// alert is marked so.
	c := apiClient(t, inst)
	var status map[string]string
	if err := c.Call(t.Context(), http.MethodPost, "/api/v1/alerts/mute?rule=new_vendor&client=127.0.0.7", &status); err != nil {
		t.Fatal(err)
	}
	queryFrom(t, "127.0.0.7", addr, "v.tiktok.example")
	var rep struct {
		Alerts []alerts.Alert `json:"alerts"`
		Mutes  []alerts.Mute  `json:"mutes"`
	}
	if err := c.Call(t.Context(), http.MethodGet, "/api/v1/alerts", &rep); err != nil || len(rep.Alerts) != 2 || len(rep.Mutes) != 1 {
		t.Fatalf("alerts %+v, %v", rep, err)
	}
	if err := c.Call(t.Context(), http.MethodPost, "/api/v1/alerts/"+rep.Alerts[0].ID+"/ack", &status); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next check", func() bool {
		var r2 struct {
			Alerts []alerts.Alert `json:"alerts"`
		}
		_ = c.Call(t.Context(), http.MethodGet, "/api/v1/alerts", &r2)
		return len(r2.Alerts) == 2 && r2.Alerts[0].Acked
	})
	time.Sleep(1500 * time.Millisecond) // a check has run since the TikTok lookup
	if got := rulesGot(); strings.Count(got, "new_vendor") != 1 {
		t.Errorf("muted, yet: %q", got)
	}
	if out := cli(t, cfgPath, "alerts", "test"); !strings.Contains(out, "sample alert sent") {
		t.Errorf("vigil alerts test: %s", out)
	}
	if got := rulesGot(); !strings.HasSuffix(got, "test:vigil") {
		t.Errorf("the sample did not arrive: %q", got)
	}
}
