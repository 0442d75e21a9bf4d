package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Fakes are plain structs, with function fields where a test needs other
// behaviour.

type fakeServer struct{}

func (fakeServer) Stats() resolver.ServerStats { return resolver.ServerStats{Queries: 7} }
func (fakeServer) Metrics() resolver.QueryMetrics {
	return resolver.QueryMetrics{ByResult: map[string]map[string]uint64{"udp": {"blocked": 2}}}
}

type fakeUpstreams struct{}

func (fakeUpstreams) Metrics() []resolver.UpstreamMetrics { return nil }
func (fakeUpstreams) Scrubbed() uint64                    { return 0 }
func (fakeUpstreams) RebindDropped() uint64               { return 0 }

type fakeLists struct {
	set      *blocklists.Set
	allowNow func(string) error
}

func (l *fakeLists) Current() *blocklists.Set { return l.set }
func (l *fakeLists) Audit(popular []string) ([]blocklists.ListAudit, error) {
	return []blocklists.ListAudit{{List: "v", Popular: []blocklists.AuditedName{{Name: popular[0], Rank: 1}}}}, nil
}
func (l *fakeLists) Status() []blocklists.SourceStatus {
	return []blocklists.SourceStatus{{ID: "v", Vendor: "V", Kind: blocklists.KindDeny}}
}
func (l *fakeLists) Refresh(ctx context.Context, p blocklists.Progress) []blocklists.SourceStatus {
	st := l.Status()
	p(1, 1, st[0])
	return st
}
func (l *fakeLists) Allowed() ([]string, error) { return []string{"ok.example"}, nil }
func (l *fakeLists) AddException(e store.Exception) error {
	if e.Scope == "" && !e.Block && e.Until.IsZero() {
		return l.allowNow(e.Name)
	}
	return nil
}
func (l *fakeLists) RemoveException(scope, name string) error { return nil }
func (l *fakeLists) Exceptions() ([]store.Exception, error)   { return nil, nil }

type fakeLog struct {
	entries func(querylog.Filter) (querylog.Page, error)
	clients func(since, until time.Time) ([]querylog.ClientSummary, error)
}

func (f fakeLog) Entries(fl querylog.Filter) (querylog.Page, error) { return f.entries(fl) }
func (f fakeLog) Clients(since, until time.Time) ([]querylog.ClientSummary, error) {
	return f.clients(since, until)
}
func (f fakeLog) Client(c string, since, until time.Time) (querylog.ClientSummary, error) {
	return querylog.ClientSummary{Client: c}, nil
}
func (f fakeLog) ClientDays(c string, since, until time.Time) ([]querylog.VendorDay, error) {
	return nil, nil
}
func (f fakeLog) TopAllowed(since, until time.Time, n int) (querylog.TopReport, error) {
	return querylog.TopReport{}, nil
}
func (f fakeLog) Top(since, until time.Time, n int) (querylog.TopReport, error) {
	return querylog.TopReport{Total: n}, nil
}

func (f fakeLog) AllowedCounts(since, until time.Time) (map[string]int, error) {
	return map[string]int{"tv": 5}, nil
}

// Identities: the fake log knows the clients its tests ask about.
func (f fakeLog) Identities(since time.Time) ([]string, error) {
	return []string{"alice-phone", "tv", "127.0.0.1", "127.0.0.2"}, nil
}

type fakeSeries struct{}

func (fakeSeries) Series(since, until time.Time) ([]store.SeriesPoint, error) { return nil, nil }

// testSet compiles one deny rule, ||tracker.example^, in list "v".
func testSet(t *testing.T) *blocklists.Set {
	t.Helper()
	b := blocklists.NewBuilder()
	id, err := b.AddList(blocklists.ListInfo{Name: "v", Vendor: "V"})
	if err != nil {
		t.Fatal(err)
	}
	b.Add(id, blocklists.Rule{Name: "tracker.example", Suffix: true})
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return &blocklists.Set{Matcher: m, Generation: 1, Built: time.Now()}
}

// newTestAPI serves New(deps) on 127.0.0.1 and returns a client of it.
func newTestAPI(t *testing.T, deps Deps) (*Client, string) {
	t.Helper()
	srv := httptest.NewServer(New(deps))
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	return NewClient(ap, deps.Config.Token), srv.URL
}

func testDeps(t *testing.T) Deps {
	return Deps{
		Config:    Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), SessionTTL: time.Hour},
		Metrics:   MetricsConfig{Enabled: true},
		Server:    fakeServer{},
		Upstreams: fakeUpstreams{},
		Lists:     &fakeLists{set: testSet(t), allowNow: func(string) error { return nil }},
		Log: fakeLog{
			entries: func(querylog.Filter) (querylog.Page, error) { return querylog.Page{}, nil },
			clients: func(time.Time, time.Time) ([]querylog.ClientSummary, error) { return nil, nil },
		},
		Series:  fakeSeries{},
		Pause:   resolver.NewPauser(),
		Reload:  func(context.Context) error { return nil },
		Started: time.Now(),
	}
}

// TestClientAgainstAPI drives every endpoint the CLI uses through Client.
func TestClientAgainstAPI(t *testing.T) {
	ctx := context.Background()
	c, _ := newTestAPI(t, testDeps(t))
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	ex, err := c.Explain(ctx, "a.tracker.example")
	if err != nil || !ex.Blocked || ex.List != "v" || ex.Vendor != "V" || ex.Rule != "||tracker.example^" {
		t.Errorf("explain: %+v %v", ex, err)
	}
	rep, err := c.Lists(ctx)
	if err != nil || rep.Rules != 1 || len(rep.Sources) != 1 {
		t.Errorf("lists: %+v %v", rep, err)
	}
	var progress int
	rep, err = c.UpdateLists(ctx, func(done, total int, st blocklists.SourceStatus) { progress++ })
	if err != nil || progress != 1 || rep.Generation != 1 {
		t.Errorf("update: %d progress lines, report %+v, %v", progress, rep, err)
	}
	if top, err := c.Top(ctx, "1h", 3); err != nil || top.Total != 3 {
		t.Errorf("top: %+v %v", top, err)
	}
	if _, err := c.Clients(ctx, "7d"); err != nil {
		t.Errorf("clients: %v", err)
	}
	p, err := c.Pause(ctx, "tv", time.Minute)
	if err != nil || p.Client != "tv" || p.Until.IsZero() || p.Status.Clients["tv"].IsZero() {
		t.Errorf("pause: %+v %v", p, err)
	}
	if st, err := c.Resume(ctx, ""); err != nil || len(st.Clients) != 0 {
		t.Errorf("resume: %+v %v", st, err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Errorf("reload: %v", err)
	}
}

// TestErrorsHaveOneShape checks that failures of every kind answer
// {"error": "..."} with the right status, and that Client reports both.
func TestErrorsHaveOneShape(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	deps.Log = fakeLog{
		entries: func(querylog.Filter) (querylog.Page, error) { return querylog.Page{}, querylog.ErrBadCursor },
		clients: func(time.Time, time.Time) ([]querylog.ClientSummary, error) { return nil, errors.New("disk on fire") },
	}
	deps.Reload = func(context.Context) error { return errors.New(`unknown key "bogus"`) }
	c, base := newTestAPI(t, deps)

	cases := []struct {
		name   string
		call   func() error
		status int
		want   string
	}{
		{"bad window", func() error { _, err := c.Clients(ctx, "yesterday"); return err }, 400, "since: want a duration"},
		{"bad cursor", func() error { _, err := c.Blocked(ctx, url.Values{"cursor": {"zz"}}); return err }, 400, querylog.ErrBadCursor.Error()},
		{"store failure", func() error { _, err := c.Clients(ctx, "1h"); return err }, 500, "reading the log: disk on fire"},
		{"bad name", func() error { _, err := c.Explain(ctx, "bad..example"); return err }, 400, "bad..example"},
		{"no name", func() error { _, err := c.Explain(ctx, ""); return err }, 400, "want ?name="},
		{"rejected reload", func() error { return c.Reload(ctx) }, 400, "bogus"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e *Error
			if err := tc.call(); !errors.As(err, &e) || e.StatusCode != tc.status || !strings.Contains(e.Message, tc.want) {
				t.Errorf("got %v (%#v), want status %d and %q", err, e, tc.status, tc.want)
			}
		})
	}

	// The body itself: "error", plus "status" only where a handler says
	// more (a rejected reload keeps the running configuration).
	for path, keys := range map[string]string{
		"/api/v1/blocked?limit=0": "error",
		"/api/v1/reload":          "error,status",
	} {
		method := http.MethodGet
		if path == "/api/v1/reload" {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set(ClientHeader, "test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		var got []string
		for k := range body {
			got = append(got, k)
		}
		if err != nil || len(got) != len(strings.Split(keys, ",")) || body["error"] == "" {
			t.Errorf("%s: body %v (%v), want keys %s", path, body, err, keys)
		}
	}
}

// TestDashboardAndMetricsServed checks the embedded files and /metrics
// are reachable where the dashboard and Prometheus look for them.
func TestDashboardAndMetricsServed(t *testing.T) {
	_, base := newTestAPI(t, testDeps(t))
	for path, want := range map[string]string{
		"/":          "<html",
		"/app.js":    "/api/v1/",
		"/metrics":   "vigil_list_rules 1",
		"/style.css": "{",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(b)), strings.ToLower(want)) {
			t.Errorf("GET %s: %s, body lacks %q", path, resp.Status, want)
		}
	}
}

// TestExplainNamesFunctionalEndpoints: a name of the curated functional
// allowlist is explained as one, with what blocking it breaks and the
// source, whether the lists in use allow it or block it anyway
// ($important).
func TestExplainNamesFunctionalEndpoints(t *testing.T) {
	build := func(rules ...blocklists.Rule) *blocklists.Matcher {
		t.Helper()
		b := blocklists.NewBuilder()
		deny, _ := b.AddList(blocklists.ListInfo{Name: "xiaomi", Vendor: "Xiaomi"})
		allow, _ := b.AddList(blocklists.ListInfo{Name: "functional", Vendor: "Functional", Allow: true})
		for _, r := range rules {
			idx := deny
			if r.Allow {
				idx = allow
			}
			b.Add(idx, r)
		}
		m, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	const name = "find.api.micloud.xiaomi.net"
	for _, tc := range []struct {
		rules   []blocklists.Rule
		blocked bool
	}{
		{[]blocklists.Rule{{Name: "api.micloud.xiaomi.net", Suffix: true}, {Name: name, Suffix: true, Allow: true}}, false},
		{[]blocklists.Rule{{Name: "api.micloud.xiaomi.net", Suffix: true, Important: true}, {Name: name, Suffix: true, Allow: true}}, true},
	} {
		ex, err := Explain(build(tc.rules...), name)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Blocked != tc.blocked || ex.Functional == nil || ex.Functional.Category != "find-device" || !strings.HasPrefix(ex.Functional.Source, "http") {
			t.Errorf("blocked=%v: %+v (functional %+v); want blocked=%v and the find-device entry with its source", ex.Blocked, ex, ex.Functional, tc.blocked)
		}
	}
	if ex, _ := Explain(build(), "example.com"); ex.Functional != nil {
		t.Errorf("example.com explained as a functional endpoint: %+v", ex.Functional)
	}
}

// TestFunctionalRulesServed: the dashboard gets the curated functional
// allowlist to mark lookups with, each rule with its category and source.
func TestFunctionalRulesServed(t *testing.T) {
	a := &api{now: time.Now, window: maxWindow}
	rec := httptest.NewRecorder()
	if err := a.functional(rec, httptest.NewRequest("GET", "/api/v1/functional", nil)); err != nil {
		t.Fatal(err)
	}
	var out struct{ Rules []FunctionalRule }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range out.Rules {
		if r.Category == "" || !strings.HasPrefix(r.Source, "http") {
			t.Errorf("rule %+v without category or source", r)
		}
		found = found || r.Name == "find.api.micloud.xiaomi.net" && r.Category == "find-device"
	}
	if len(out.Rules) < 50 || !found {
		t.Errorf("%d rules, find.api.micloud.xiaomi.net found %v", len(out.Rules), found)
	}
}
