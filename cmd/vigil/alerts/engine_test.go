package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// receiver is a webhook on loopback that keeps what it got; fail makes it
// answer 500 to the first n requests.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	fail   int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, b)
		r.heads = append(r.heads, req.Header.Clone())
		if r.fail > 0 {
			r.fail--
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() ([][]byte, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies), slices.Clone(r.heads)
}

// world is a store, a per-client log (its writer running) and a clock
// for the engine.
type world struct {
	t        *testing.T
	dir      string
	st       *store.Store
	log      *querylog.Log
	stop     context.CancelFunc
	recorded uint64
	now      time.Time
	lists    *fakeLists
	devs     []neighbors.Device
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, dir: t.TempDir(), now: time.Now().Truncate(time.Second), lists: &fakeLists{}}
	w.open()
	t.Cleanup(w.close)
	return w
}

func (w *world) open() {
	cfg := store.DefaultConfig()
	cfg.Dir = w.dir
	st, err := store.Open(cfg, zap.NewNop())
	if err != nil {
		w.t.Fatal(err)
	}
	qcfg := querylog.DefaultConfig()
	qcfg.LogLines, qcfg.FlushInterval, qcfg.LogAllowed = false, 5*time.Millisecond, true
	q, err := querylog.Open(w.dir, qcfg, zap.NewNop())
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go q.Run(ctx)
	w.st, w.log, w.stop, w.recorded = st, q, cancel, 0
}

func (w *world) close() {
	if w.log == nil {
		return
	}
	w.stop()
	<-w.log.Done()
	w.log.Close()
	w.st.Close()
	w.log, w.st = nil, nil
}

// record writes entries to the log at the world's time and waits until
// they are written.
func (w *world) record(es ...querylog.Entry) {
	for _, e := range es {
		if e.Time.IsZero() {
			e.Time = w.now
		}
		if e.QType == "" {
			e.QType, e.Proto = "A", "udp"
		}
		w.log.Record(e)
		w.recorded++
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.log.Stats().Written < w.recorded {
		if time.Now().After(deadline) {
			w.t.Fatalf("the log wrote %d of %d entries", w.log.Stats().Written, w.recorded)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *world) engine(cfg Config) *Engine {
	return New(cfg, Deps{Store: w.st, Log: w.log, Lists: w.lists, AllowedLogged: true, Logger: zaptest.NewLogger(w.t),
		Now: func() time.Time { return w.now }, Backoff: []time.Duration{time.Millisecond, time.Millisecond},
		Devices: func() []neighbors.Device { return w.devs }})
}

type fakeLists struct {
	status []blocklists.SourceStatus
	rules  int
}

func (f *fakeLists) Status() []blocklists.SourceStatus { return f.status }
func (f *fakeLists) Current() *blocklists.Set {
	b := blocklists.NewBuilder()
	i, _ := b.AddList(blocklists.ListInfo{Name: "l"})
	for n := range f.rules {
		b.Add(i, blocklists.Rule{Name: strings.Repeat("x", n+1) + ".example"})
	}
	m, _ := b.Build()
	return &blocklists.Set{Matcher: m}
}

func blocked(name, addr, mac, vendor, qname string) querylog.Entry {
	return querylog.Entry{ClientName: name, ClientAddr: netip.MustParseAddr(addr), MAC: mac, QName: qname,
		Blocked: true, Vendor: vendor, List: strings.ToLower(vendor), Reason: querylog.ReasonName}
}

func rules(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule+" "+a.Client+" "+a.Vendor)
	}
	slices.Sort(out)
	return out
}

// Each rule fires exactly once for its scenario and not for its near
// misses; what the log held before alerts were on is not news; a restart
// repeats nothing; the webhook's body is signed.
func TestRulesFireOnceAndSurviveRestarts(t *testing.T) {
	w := newWorld(t)
	hook := newReceiver(t)
	cfg := DefaultConfig()
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: hook.URL, Secret: "s3cret"}}
	w.record(blocked("tv", "192.168.1.10", "", "LG", "ads.lg.example."))
	e := w.engine(cfg)
	if got := e.Check(context.Background()); len(got) != 0 {
		t.Fatalf("the first check announced the past: %v", rules(got))
	}

	w.now = w.now.Add(time.Minute)
	w.record(
		blocked("tv", "192.168.1.10", "", "LG", "ads.lg.example."),           // seen: no alert
		blocked("tv", "192.168.1.99", "", "LG", "ads.lg.example."),           // a known device on a new address
		blocked("tv", "192.168.1.10", "", "Samsung", "ads.samsung.example."), // a new vendor for it
		blocked("", "192.168.1.20", "aa:bb:cc:00:00:01", "Xiaomi", "tracking.miui.example."),
		blocked("", "192.168.1.21", "aa:bb:cc:00:00:01", "Xiaomi", "tracking.miui.example."), // the same MAC, another address
	)
	w.devs = []neighbors.Device{{Addr: netip.MustParseAddr("192.168.1.30"), Name: "robot", MAC: "aa:bb:cc:00:00:02"},
		{Addr: netip.MustParseAddr("192.168.1.20"), MAC: "aa:bb:cc:00:00:01"}} // already seen in the log
	got := rules(e.Check(context.Background()))
	want := []string{"new_device 192.168.1.20 ", "new_device robot ", "new_vendor 192.168.1.20 Xiaomi", "new_vendor tv Samsung"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %q\nwant %q", got, want)
	}
	if again := e.Check(context.Background()); len(again) != 0 {
		t.Errorf("the next check repeated: %v", rules(again))
	}

	bodies, heads := hook.got()
	if len(bodies) != 4 {
		t.Fatalf("the webhook got %d bodies, want 4", len(bodies))
	}
	for i, b := range bodies {
		if heads[i].Get(SignatureHeader) != Sign("s3cret", b) {
			t.Errorf("body %d: signature %q does not verify", i, heads[i].Get(SignatureHeader))
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"rule", "client", "message", "time"} {
			if m[k] == nil || m[k] == "" {
				t.Errorf("body %d lacks %s: %s", i, k, b)
			}
		}
	}
	if fired, _ := e.Counts(); fired[RuleNewDevice] != 2 || fired[RuleNewVendor] != 2 {
		t.Errorf("counts %v", fired)
	}

	// A restart: a new engine over the same store says nothing of the
	// same things, and the history keeps the four.
	w.close()
	w.open()
	e2 := w.engine(cfg)
	w.now = w.now.Add(time.Minute)
	if got := e2.Check(context.Background()); len(got) != 0 {
		t.Errorf("after a restart: %v", rules(got))
	}
	if h, err := e2.History(time.Time{}, 100); err != nil || len(h) != 4 {
		t.Errorf("history %d alerts, %v; want 4", len(h), err)
	}
}

// A receiver failing now and then gets the alert in the end; one failing
// always is given up on after the retries, and the failure counted.
func TestDeliveryRetries(t *testing.T) {
	w := newWorld(t)
	flaky, dead := newReceiver(t), newReceiver(t)
	flaky.fail, dead.fail = 2, 1000
	cfg := DefaultConfig()
	cfg.Destinations = []DestinationConfig{{Name: "flaky", Kind: KindWebhook, URL: flaky.URL}, {Name: "dead", Kind: KindWebhook, URL: dead.URL}}
	e := w.engine(cfg)
	e.Check(context.Background())
	w.now = w.now.Add(time.Minute)
	w.record(blocked("tv", "192.168.1.10", "", "", "x.example."))
	if got := e.Check(context.Background()); len(got) != 1 {
		t.Fatalf("alerts %v", rules(got))
	}
	if b, _ := flaky.got(); len(b) != 3 {
		t.Errorf("the flaky receiver got %d attempts, want 3 (two 500s, then 200)", len(b))
	}
	if b, _ := dead.got(); len(b) != 3 {
		t.Errorf("the dead receiver got %d attempts, want 3 (then given up)", len(b))
	}
	if _, failed := e.Counts(); failed["dead"] != 1 || failed["flaky"] != 0 {
		t.Errorf("failed deliveries %v", failed)
	}
}

// With a digest, the alerts of an interval go as one message.
func TestDigest(t *testing.T) {
	w := newWorld(t)
	hook := newReceiver(t)
	cfg := DefaultConfig()
	cfg.Digest = 10 * time.Minute
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: hook.URL}}
	e := w.engine(cfg)
	e.Check(context.Background())
	for i, ip := range []string{"192.168.1.40", "192.168.1.41", "192.168.1.42"} {
		w.now = w.now.Add(time.Minute)
		w.record(blocked("", ip, "", "", "x.example."))
		e.Check(context.Background())
		if b, _ := hook.got(); len(b) != 0 {
			t.Fatalf("sent before the digest's interval (check %d)", i)
		}
	}
	w.now = w.now.Add(10 * time.Minute)
	e.Check(context.Background())
	b, _ := hook.got()
	if len(b) != 1 || !strings.Contains(string(b[0]), `"rule":"digest"`) || strings.Count(string(b[0]), `"rule":"new_device"`) != 3 {
		t.Errorf("digest: %d messages: %s", len(b), b)
	}
}

// A source failing past the threshold is announced once per run of
// failures; one failing for less is not; no rules in use is announced.
func TestOperationalRules(t *testing.T) {
	w := newWorld(t)
	cfg := DefaultConfig()
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: newReceiver(t).URL}}
	e := w.engine(cfg)
	e.Check(context.Background())
	w.lists.rules = 1
	w.lists.status = []blocklists.SourceStatus{
		{ID: "a", List: "xiaomi", Enabled: true, FailedSince: w.now.Add(-7 * time.Hour), HasCopy: true, Error: "404"},
		{ID: "b", List: "lg", Enabled: true, FailedSince: w.now.Add(-time.Hour)},
	}
	w.now = w.now.Add(time.Minute)
	if got := rules(e.Check(context.Background())); !slices.Equal(got, []string{"list_failing  "}) {
		t.Errorf("alerts %q, want one list_failing", got)
	}
	if got := e.Check(context.Background()); len(got) != 0 {
		t.Errorf("repeated: %v", rules(got))
	}
	w.lists.rules = 0
	if got := rules(e.Check(context.Background())); !slices.Equal(got, []string{"no_rules  "}) {
		t.Errorf("alerts %q, want no_rules", got)
	}
}

// Every kind of destination gets the alert in its own form.
func TestDestinationKinds(t *testing.T) {
	a := Alert{Rule: RuleNewVendor, Client: "tv", Vendor: "Samsung", Message: "tv contacted Samsung for the first time", Time: time.Now()}
	for _, tc := range []struct {
		kind  string
		check func(path string, h http.Header, body string) bool
	}{
		{KindNtfy, func(p string, h http.Header, b string) bool {
			return b == a.Message && h.Get("Title") == "Vigil: new vendor" && h.Get("Authorization") == "Bearer tok"
		}},
		{KindGotify, func(p string, h http.Header, b string) bool {
			return p == "/message" && h.Get("X-Gotify-Key") == "tok" && strings.Contains(b, `"priority":5`)
		}},
		{KindMatrix, func(p string, h http.Header, b string) bool {
			return strings.HasPrefix(p, "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/vigil-") &&
				h.Get("Authorization") == "Bearer tok" && strings.Contains(b, `"msgtype":"m.text"`)
		}},
		{KindSlack, func(p string, h http.Header, b string) bool {
			return strings.Contains(b, `"text":"*Vigil: new vendor*\ntv contacted Samsung`)
		}},
	} {
		var (
			mu   sync.Mutex
			path string
			head http.Header
			body string
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			path, head, body = r.URL.Path, r.Header.Clone(), string(b)
			mu.Unlock()
		}))
		d := DestinationConfig{Name: tc.kind, Kind: tc.kind, URL: srv.URL, Token: "tok", Room: "!room:example.org"}
		if err := deliver(context.Background(), http.DefaultClient, d, single(a), nil); err != nil {
			t.Errorf("%s: %v", tc.kind, err)
		}
		mu.Lock()
		if !tc.check(path, head, body) {
			t.Errorf("%s: got %s %v %q", tc.kind, path, head, body)
		}
		mu.Unlock()
		srv.Close()
	}
}

// A spike is an hour far above the device's usual hours, and above the
// floor; a busy hour below the floor, or a device always this busy, is not.
func TestSpike(t *testing.T) {
	w := newWorld(t)
	cfg := DefaultConfig()
	cfg.Rules = []string{RuleSpike}
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: newReceiver(t).URL}}
	hour := w.now.Truncate(time.Hour)
	var es []querylog.Entry
	add := func(client, addr string, at time.Time, n int) {
		for i := range n {
			e := blocked(client, addr, "", "Xiaomi", "x.example.")
			e.Time = at.Add(time.Duration(i) * time.Second)
			es = append(es, e)
		}
	}
	for h := 1; h <= 7*24; h++ { // the week before: 3 an hour for both
		add("quiet", "10.0.0.1", hour.Add(-time.Duration(h+1)*time.Hour), 3)
		add("busy", "10.0.0.2", hour.Add(-time.Duration(h+1)*time.Hour), 40)
	}
	add("quiet", "10.0.0.1", hour.Add(-time.Hour), 80) // 80 > 5 × 3 and > 50
	add("busy", "10.0.0.2", hour.Add(-time.Hour), 90)  // 90 < 5 × 40
	add("small", "10.0.0.3", hour.Add(-time.Hour), 20) // a first hour, but under the floor
	w.record(es...)
	e := w.engine(cfg)
	e.Check(context.Background()) // the baseline
	w.now = hour.Add(time.Minute)
	if got := rules(e.Check(context.Background())); !slices.Equal(got, []string{"spike quiet "}) {
		t.Errorf("alerts %q, want one spike for quiet", got)
	}
	w.now = w.now.Add(time.Minute)
	if got := e.Check(context.Background()); len(got) != 0 {
		t.Errorf("the same hour again: %v", rules(got))
	}
}

// A device asking a blocked name at a steady interval through the night
// raises idle_beacon once the night is over; irregular lookups do not.
func TestIdleBeacon(t *testing.T) {
	w := newWorld(t)
	cfg := DefaultConfig()
	cfg.Rules = []string{RuleIdleBeacon}
	cfg.Night = [2]string{"01:00", "04:00"}
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: newReceiver(t).URL}}
	local := time.Now().In(time.Local)
	night := time.Date(local.Year(), local.Month(), local.Day(), 1, 0, 0, 0, time.Local)
	var es []querylog.Entry
	for i := range 12 { // every 15 minutes, 01:00 to 03:45
		e := blocked("tv", "10.0.0.5", "", "LG", "beacon.lg.example.")
		e.Time = night.Add(time.Duration(i) * 15 * time.Minute)
		es = append(es, e)
	}
	for i, m := range []int{0, 3, 50, 52, 120, 170} { // irregular
		e := blocked("phone", "10.0.0.6", "", "Xiaomi", "x.example.")
		e.Time = night.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second)
		es = append(es, e)
	}
	w.now = night.Add(-time.Hour)
	e := w.engine(cfg)
	e.Check(context.Background()) // the baseline, before the night
	w.record(es...)
	w.now = night.Add(2 * time.Hour) // still night: nothing yet
	if got := e.Check(context.Background()); len(got) != 0 {
		t.Errorf("during the night: %v", rules(got))
	}
	w.now = night.Add(3*time.Hour + 5*time.Minute)
	got := e.Check(context.Background())
	if len(got) != 1 || got[0].Rule != RuleIdleBeacon || got[0].Client != "tv" || !strings.Contains(got[0].Message, "every 15m0s") {
		t.Errorf("after the night: %+v", got)
	}
	w.now = w.now.Add(time.Hour)
	if again := e.Check(context.Background()); len(again) != 0 {
		t.Errorf("the same night again: %v", rules(again))
	}
}

// Upstreams down for a minute, the log dropping entries and a full disk
// are each told once.
func TestOperationalHealth(t *testing.T) {
	w := newWorld(t)
	cfg := DefaultConfig()
	cfg.Rules = []string{RuleUpstreamsDown, RuleLogDropping, RuleLowDisk}
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: newReceiver(t).URL}}
	var (
		down, low bool
		dropped   uint64
	)
	e := New(cfg, Deps{Store: w.st, Log: w.log, Lists: w.lists, Now: func() time.Time { return w.now }, Backoff: []time.Duration{},
		UpstreamsDown: func() bool { return down }, LowDisk: func() bool { return low },
		LogStats: func() querylog.Stats { return querylog.Stats{Dropped: dropped} }})
	e.Check(context.Background())
	step := func(d time.Duration) []string {
		w.now = w.now.Add(d)
		return rules(e.Check(context.Background()))
	}
	down = true
	if got := step(20 * time.Second); len(got) != 0 {
		t.Errorf("down for a moment: %q", got)
	}
	if got := step(time.Minute); !slices.Equal(got, []string{"upstreams_down  "}) {
		t.Errorf("down for a minute: %q", got)
	}
	if got := step(time.Minute); len(got) != 0 {
		t.Errorf("still down: %q", got)
	}
	down, dropped, low = false, 5, true
	if got := step(time.Minute); !slices.Equal(got, []string{"log_dropping  ", "low_disk  "}) {
		t.Errorf("drops and a full disk: %q", got)
	}
	if got := step(time.Minute); len(got) != 0 {
		t.Errorf("nothing new: %q", got)
	}
}

// In quiet hours alerts are held, and sent as one message when they end.
func TestQuietHours(t *testing.T) {
	w := newWorld(t)
	hook := newReceiver(t)
	cfg := DefaultConfig()
	cfg.Rules = []string{RuleNewDevice}
	local := time.Now().In(time.Local)
	w.now = time.Date(local.Year(), local.Month(), local.Day(), 23, 0, 0, 0, time.Local)
	cfg.Quiet = []string{"22:00", "07:00"}
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: hook.URL}}
	e := w.engine(cfg)
	e.Check(context.Background())
	for _, ip := range []string{"10.0.0.7", "10.0.0.8"} {
		w.now = w.now.Add(time.Minute)
		w.record(blocked("", ip, "", "", "x.example."))
		if got := e.Check(context.Background()); len(got) != 1 {
			t.Fatalf("raised %v", rules(got))
		}
	}
	if b, _ := hook.got(); len(b) != 0 {
		t.Fatalf("sent during quiet hours: %s", b)
	}
	w.now = time.Date(local.Year(), local.Month(), local.Day(), 7, 1, 0, 0, time.Local).Add(24 * time.Hour)
	e.Check(context.Background())
	b, _ := hook.got()
	if len(b) != 1 || strings.Count(string(b[0]), `"rule":"new_device"`) != 2 {
		t.Errorf("after quiet hours: %d messages %s", len(b), b)
	}
}

// With [alerts] groups, only the devices in them raise device alerts;
// [alerts.scope] gives one rule groups of its own.
func TestAlertsScopedToGroups(t *testing.T) {
	w := newWorld(t)
	cfg := DefaultConfig()
	cfg.Groups = []string{"kids"}
	cfg.Scope = map[string][]string{RuleNewVendor: {"adults"}}
	cfg.Destinations = []DestinationConfig{{Name: "home", Kind: KindWebhook, URL: newReceiver(t).URL}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := New(cfg, Deps{Store: w.st, Log: w.log, Lists: w.lists, Now: func() time.Time { return w.now }, Backoff: []time.Duration{},
		GroupsOf: func(name string, addr netip.Addr, mac string) []string {
			switch name {
			case "kids-tablet":
				return []string{"kids"}
			case "dad-phone":
				return []string{"adults"}
			}
			return nil
		}})
	e.Check(context.Background())
	w.now = w.now.Add(time.Minute)
	w.record(blocked("kids-tablet", "10.0.0.2", "", "TikTok", "t.example."), blocked("dad-phone", "10.0.0.3", "", "Xiaomi", "x.example."))
	if got := rules(e.Check(context.Background())); !slices.Equal(got, []string{"new_device kids-tablet ", "new_vendor dad-phone Xiaomi"}) {
		t.Errorf("alerts %q, want the kids' tablet's new device and dad's new vendor", got)
	}
	bad := cfg
	bad.Scope = map[string][]string{RuleLowDisk: {"kids"}}
	if err := bad.Validate(); err == nil {
		t.Error("a scope for an operational rule was accepted")
	}
}
