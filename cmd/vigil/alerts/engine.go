package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Store is what the engine keeps in the store (*store.Store).
type Store interface {
	AlertSeen(prefix string) (map[string]bool, error)
	MarkAlertSeen(keys []string) error
	UnmarkAlertSeen(keys []string) error
	PutAlertData(name string, v []byte) error
	AlertData(name string) ([]byte, error)
	PutAlert(t time.Time, seq uint32, body []byte) error
	ListAlerts(since time.Time, limit int) ([][]byte, error)
}

// LogScanner reads the per-client log (*querylog.Log).
type LogScanner interface {
	Scan(allowed bool, since, until time.Time, fn func(*querylog.Entry)) error
	ScanSummaries(allowed bool, since, until time.Time, fn func(*querylog.BlockSummary) bool) error
}

// ListState is what the engine reads of the lists (*blocklists.Manager).
type ListState interface {
	Status() []blocklists.SourceStatus
	Current() *blocklists.Set
}

// Deps is what the engine works with.
type Deps struct {
	Store Store
	Log   LogScanner
	Lists ListState
	// Devices lists what the network told about devices; nil for none.
	Devices func() []neighbors.Device
	// AllowedLogged says the allowed lookups are logged too, so a device
	// that is never blocked is seen as well.
	AllowedLogged bool
	// UpstreamsDown reports whether every upstream is failing; LogStats
	// the log writer's counters; LowDisk whether the disk is almost full.
	// Each may be nil.
	UpstreamsDown func() bool
	LogStats      func() querylog.Stats
	LowDisk       func() bool
	// GroupsOf names the [[groups]] of a device (its name, address and
	// MAC), for [alerts] groups; nil when there are none.
	GroupsOf func(name string, addr netip.Addr, mac string) []string
	Logger   *zap.Logger
	// FlushInterval is the log's (querylog.flush_interval): entries reach
	// the log up to that late, so each check reads back a little more.
	FlushInterval time.Duration
	// Now and Backoff replace the clock and the retry waits in tests.
	Now     func() time.Time
	Backoff []time.Duration
	// Client sends the deliveries; nil for a default with a 10 s timeout.
	Client *http.Client
}

// readBack is how far before the last check each check reads the log
// again: more than the log's flush interval, so an entry handed over late
// is still read. One written later still (a stalled disk) is missed, and
// the device's next lookup tells instead: a delay, not a loss.
const readBack = 2 * time.Second

// baselineKey marks that the engine has looked at the history once:
// what was there before alerts were on is not news.
const baselineKey = "base/done"

// Engine evaluates the rules and delivers alerts. Run is its one loop;
// the rest is safe for concurrent use.
type Engine struct {
	cfg Config
	d   Deps

	mu      sync.Mutex // one evaluation at a time; guards seen, last, pending, seq
	seen    map[string]bool
	last    time.Time
	pending []Alert // the digest being gathered
	flushed time.Time
	seq     uint32

	// hourly counts blocked lookups per device and hour (hours since
	// 1970), for spike; counted is where counting stopped, so that what
	// is read twice is counted once.
	hourly  map[string]map[int64]int
	who     map[string]string // a device key's name, for messages
	counted time.Time
	// historyFrom, when set, is when counting began without the week
	// before: spikes reads the week up to it once.
	historyFrom time.Time
	// processed are the log's blocks already looked at, by position, with
	// their newest entry's time (forgotten once out of the window read).
	processed map[string]time.Time

	downSince  time.Time // every upstream failing since, zero when not
	dropped    uint64    // the log's drops at the last check
	dropsKnown bool
	spikeHour  time.Time // the last hour looked at for spikes
	nightDone  string    // the last date whose night was looked at

	fired  sync.Map // rule -> *atomic.Uint64
	failed sync.Map // destination -> *atomic.Uint64
}

// New returns an engine for cfg.
func New(cfg Config, d Deps) *Engine {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Backoff == nil {
		d.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	return &Engine{cfg: cfg, d: d}
}

// Run evaluates every cfg.Interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		e.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deviceKey is how a device is known to the rules: its MAC when the
// network told it (so a known device on a new address is not new), else
// its name, else its address.
func deviceKey(mac, name, addr string) string {
	switch {
	case mac != "":
		return "mac " + mac
	case name != "":
		return "name " + name
	}
	return "addr " + addr
}

// Check evaluates the rules once and delivers what is new; it returns the
// alerts raised. The first check ever only takes note of what the log
// already holds.
func (e *Engine) Check(ctx context.Context) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.d.Now()
	if e.seen == nil {
		seen, err := e.d.Store.AlertSeen("")
		if err != nil {
			e.d.Logger.Warn("alerts: reading what was seen", zap.Error(err))
			return nil
		}
		e.seen = seen
		e.hourly, e.who, e.processed = map[string]map[int64]int{}, map[string]string{}, map[string]time.Time{}
		if e.cfg.RuleOn(RuleSpike) {
			// The week's hourly counts the spike rule compares with come
			// from the store; without them (the first start) the week's
			// log is read once, at the first hour's end rather than now,
			// when DNS is starting. Each check adds what it reads.
			e.counted = now
			if !e.loadHourly() {
				e.historyFrom = now
			}
		}
		if !seen[baselineKey] {
			// Everything already in the log is known; only what comes
			// after is news.
			e.observe(now.Add(-400*24*time.Hour), now.Add(time.Minute), nil)
			e.mark([]string{baselineKey})
			e.last = now
			return nil
		}
		e.last = now.Add(-10 * time.Minute) // what happened while Vigil was down
	}
	var raised []Alert
	// Entries are stamped when asked and written a little later (the
	// log's lanes hand them over at each flush): read a few seconds back
	// each time; what was seen is not raised twice. Reading only that
	// keeps the cost per check proportional to the lookups since the last.
	e.observe(e.last.Add(-max(readBack, e.d.FlushInterval+time.Second)), now.Add(time.Minute), &raised)
	e.last = now
	raised = append(raised, e.operational(now)...)
	raised = append(raised, e.spikes(now)...)
	raised = append(raised, e.idleBeacons(now)...)
	for i := range raised {
		e.count(raised[i].Rule)
	}
	e.dispatch(ctx, raised, now)
	return raised
}

// observe reads the log (and the network's devices) over [since, until)
// and marks what it had not seen; with raised, it also raises alerts.
func (e *Engine) observe(since, until time.Time, raised *[]Alert) {
	o := &observation{e: e, raised: raised, macOf: map[netip.Addr]string{}, countFrom: e.counted}
	// The MAC the network gives each address, for entries logged before
	// it was known: one device, one key.
	var devices []neighbors.Device
	if e.d.Devices != nil {
		devices = e.d.Devices()
		for _, dv := range devices {
			if dv.MAC != "" {
				o.macOf[dv.Addr] = dv.MAC
			}
		}
	}
	for k, newest := range e.processed {
		if newest.Before(since) {
			delete(e.processed, k) // out of the window read: never met again
		}
	}
	if err := e.d.Log.ScanSummaries(false, since, until, o.block(true)); err != nil {
		e.d.Logger.Warn("alerts: reading the log", zap.Error(err))
	}
	if e.hourly != nil && until.After(e.counted) {
		e.counted = until
	}
	if e.d.AllowedLogged {
		if err := e.d.Log.ScanSummaries(true, since, until, o.block(false)); err != nil {
			e.d.Logger.Warn("alerts: reading the log", zap.Error(err))
		}
	}
	for _, dv := range devices {
		o.device(dv)
	}
	e.mark(o.newKeys)
}

// observation is one pass of observe: the keys it marked seen and the
// alerts it raised.
type observation struct {
	e *Engine
	// raised collects the alerts; nil marks without raising.
	raised  *[]Alert
	newKeys []string
	macOf   map[netip.Addr]string
	// countFrom is where the hourly counts stood before this pass.
	countFrom time.Time
}

// see marks key seen and raises the alert when the rule is on and the
// device in its scope (a device out of scope is still marked, so a change
// of scope does not announce the past).
func (o *observation) see(key string, a func() Alert, rule string, inScope func(rule string) bool) {
	e := o.e
	if e.seen[key] {
		return
	}
	e.seen[key] = true
	o.newKeys = append(o.newKeys, key)
	if o.raised != nil && e.cfg.RuleOn(rule) && inScope(rule) {
		if al := a(); !e.muted(al) {
			*o.raised = append(*o.raised, al)
		}
	}
}

// block looks at each block of the log once, from its summary (the
// distinct clients and vendors it holds, with counts); only a block with
// something new in it is decoded, for the message's details.
func (o *observation) block(blocked bool) func(bs *querylog.BlockSummary) bool {
	return func(bs *querylog.BlockSummary) bool {
		if _, done := o.e.processed[bs.Pos]; done {
			return true
		}
		o.e.processed[bs.Pos] = bs.Newest
		for _, l := range bs.Lines {
			o.line(bs, l, blocked)
		}
		return true
	}
}

// line takes one line of a block's summary: one client with one vendor.
func (o *observation) line(bs *querylog.BlockSummary, l querylog.Summary, blocked bool) {
	e := o.e
	scope := func(rule string) bool { return e.inScope(rule, l.Name, l.Addr, l.MAC) }
	mac := l.MAC
	if mac == "" {
		mac = o.macOf[l.Addr]
	}
	dev := deviceKey(mac, l.Name, l.Addr.String())
	who := l.Name
	if who == "" {
		who = l.Addr.String()
	}
	if blocked && e.hourly != nil && !bs.First.Before(o.countFrom) {
		h := e.hourly[dev]
		if h == nil {
			h = map[int64]int{}
			e.hourly[dev] = h
			e.who[dev] = who
		}
		h[bs.First.Unix()/3600] += l.Count
	}
	// The first of the line's entries, for the message.
	first := func() (string, time.Time) {
		for _, en := range bs.Entries() {
			if en.ClientName == l.Name && en.ClientAddr == l.Addr && en.Vendor == l.Vendor {
				return en.QName, en.Time
			}
		}
		return "", bs.First
	}
	o.see("dev/"+dev, func() Alert {
		qname, at := first()
		return Alert{Rule: RuleNewDevice, Client: who, Name: qname, Time: at, Link: "#/device/" + who,
			Message: fmt.Sprintf("A new device, %s, is on the network (first lookup: %s)", who, trimDot(qname))}
	}, RuleNewDevice, scope)
	if blocked && l.Vendor != "" {
		vendor := l.Vendor
		o.see("ven/"+dev+"\x00"+vendor, func() Alert {
			qname, at := first()
			return Alert{Rule: RuleNewVendor, Client: who, Vendor: vendor, Name: qname, Time: at, Link: "#/device/" + who,
				Message: fmt.Sprintf("%s contacted %s for the first time (%s, blocked)", who, vendor, trimDot(qname))}
		}, RuleNewVendor, scope)
	}
}

// device takes one device the network knows, seen in the log or not.
func (o *observation) device(dv neighbors.Device) {
	e := o.e
	scope := func(rule string) bool { return e.inScope(rule, dv.Name, dv.Addr, dv.MAC) }
	who := dv.Name
	if who == "" {
		who = dv.Addr.String()
	}
	o.see("dev/"+deviceKey(dv.MAC, dv.Name, dv.Addr.String()), func() Alert {
		what := who
		if dv.Vendor.Name != "" {
			what += " (" + dv.Vendor.Name + ")"
		}
		return Alert{Rule: RuleNewDevice, Client: who, Time: e.d.Now(), Link: "#/device/" + who,
			Message: fmt.Sprintf("A new device, %s, joined the network", what)}
	}, RuleNewDevice, scope)
}

// once raises a (rule on) unless key was seen, and marks it.
func (e *Engine) once(key string, a Alert, out *[]Alert) {
	if !e.cfg.RuleOn(a.Rule) || e.seen[key] || e.muted(a) {
		return
	}
	e.seen[key] = true
	e.mark([]string{key})
	*out = append(*out, a)
}

// operational raises list_failing, no_rules, upstreams_down,
// log_dropping and low_disk.
func (e *Engine) operational(now time.Time) []Alert {
	var out []Alert
	if e.d.UpstreamsDown != nil {
		switch {
		case !e.d.UpstreamsDown():
			e.downSince = time.Time{}
		case e.downSince.IsZero():
			e.downSince = now
		case now.Sub(e.downSince) >= time.Minute:
			e.once(fmt.Sprintf("updown/%d", e.downSince.Unix()), Alert{Rule: RuleUpstreamsDown, Time: now,
				Message: fmt.Sprintf("No upstream has answered since %s: forwarded names fail (cached and blocked ones are still answered)", e.downSince.Format(time.TimeOnly))}, &out)
		}
	}
	if e.d.LogStats != nil {
		st := e.d.LogStats()
		d := st.Dropped + st.LowDiskDropped
		if e.dropsKnown && d > e.dropped {
			e.once("logdrop/"+now.UTC().Format("2006-01-02T15"), Alert{Rule: RuleLogDropping, Time: now,
				Message: fmt.Sprintf("The per-client log dropped %d entries since the last check (queue full or disk almost full)", d-e.dropped)}, &out)
		}
		e.dropped, e.dropsKnown = d, true
	}
	if e.d.LowDisk != nil && e.d.LowDisk() {
		e.once("lowdisk/"+now.UTC().Format("2006-01-02"), Alert{Rule: RuleLowDisk, Time: now,
			Message: "The disk is almost full: list updates, the log and the saved cache are not being kept (DNS goes on)"}, &out)
	}
	if e.cfg.RuleOn(RuleListFailing) {
		var keys []string
		for _, st := range e.d.Lists.Status() {
			if !st.Enabled || st.FailedSince.IsZero() || now.Sub(st.FailedSince) < e.cfg.ListFailingAfter {
				continue
			}
			key := fmt.Sprintf("src/%s/%d", st.ID, st.FailedSince.Unix())
			if e.seen[key] {
				continue
			}
			e.seen[key] = true
			keys = append(keys, key)
			kept := "no copy to fall back on"
			if st.HasCopy {
				kept = "its last good copy is in use"
			}
			out = append(out, Alert{Rule: RuleListFailing, Time: now, Link: "#/lists",
				Message: fmt.Sprintf("List %s has failed to update since %s (%s): %s", st.List, st.FailedSince.Format(time.RFC3339), kept, st.Error)})
		}
		e.mark(keys)
	}
	if e.cfg.RuleOn(RuleNoRules) {
		set := e.d.Lists.Current()
		enabled := false
		for _, st := range e.d.Lists.Status() {
			enabled = enabled || st.Enabled
		}
		key := "norules/" + now.UTC().Format("2006-01-02")
		if set.Matcher.Len() == 0 && enabled && !e.seen[key] {
			e.seen[key] = true
			e.mark([]string{key})
			out = append(out, Alert{Rule: RuleNoRules, Time: now, Link: "#/lists",
				Message: "Nothing is blocked: lists are configured but no rule is in use (no list could be fetched?)"})
		}
	}
	return out
}

func (e *Engine) mark(keys []string) {
	if err := e.d.Store.MarkAlertSeen(keys); err != nil {
		e.d.Logger.Warn("alerts: recording what was seen", zap.Error(err))
	}
}

// dispatch delivers the alerts now, or gathers them for the digest.
// e.mu is held.
func (e *Engine) dispatch(ctx context.Context, raised []Alert, now time.Time) {
	quiet := false
	if len(e.cfg.Quiet) == 2 {
		from, _ := clock(e.cfg.Quiet[0])
		to, _ := clock(e.cfg.Quiet[1])
		quiet = inWindow(now.In(time.Local), from, to)
	}
	if e.cfg.Digest > 0 || quiet || len(e.pending) > 0 {
		// Held: for the digest's interval, through quiet hours, and
		// behind what is held already (so the order stays).
		e.pending = append(e.pending, raised...)
		if e.flushed.IsZero() {
			e.flushed = now
		}
		if len(e.pending) == 0 || quiet || now.Sub(e.flushed) < e.cfg.Digest {
			return
		}
		e.send(ctx, digest(e.pending, now), e.pending)
		e.pending, e.flushed = nil, now
		return
	}
	for _, a := range raised {
		e.send(ctx, single(a), []Alert{a})
	}
}

// send delivers m to every destination and records its alerts.
func (e *Engine) send(ctx context.Context, m message, as []Alert) {
	for _, d := range e.cfg.Destinations {
		if err := deliver(ctx, e.d.Client, d, m, e.d.Backoff); err != nil {
			e.counter(&e.failed, d.Name).Add(1)
			e.d.Logger.Warn("alerts: delivery failed", zap.String("destination", d.Name), zap.Error(err))
		}
	}
	for _, a := range as {
		e.seq++
		a.ID = fmt.Sprintf("%x-%x", a.Time.UnixNano(), e.seq)
		body, _ := json.Marshal(a)
		if err := e.d.Store.PutAlert(a.Time, e.seq, body); err != nil {
			e.d.Logger.Warn("alerts: recording an alert", zap.Error(err))
		}
	}
}

// Test sends a sample alert to the destination named (every one for
// ""), and says which failed.
func (e *Engine) Test(ctx context.Context, destination string) error {
	a := Alert{Rule: "test", Client: "vigil", Time: e.d.Now(), Message: "A test alert from Vigil: this destination works."}
	found := false
	var errs []error
	for _, d := range e.cfg.Destinations {
		if destination != "" && d.Name != destination {
			continue
		}
		found = true
		if err := deliver(ctx, e.d.Client, d, single(a), e.d.Backoff); err != nil {
			errs = append(errs, err)
		}
	}
	if !found {
		return fmt.Errorf("no destination %q in [[alerts.destinations]]", destination)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// History returns the alerts raised since, newest first, at most limit.
func (e *Engine) History(since time.Time, limit int) ([]Alert, error) {
	raw, err := e.d.Store.ListAlerts(since, limit)
	if err != nil {
		return nil, err
	}
	acked, err := e.d.Store.AlertSeen("ack/")
	if err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(raw))
	for _, r := range raw {
		var a Alert
		if json.Unmarshal(r, &a) == nil {
			a.Acked = acked["ack/"+a.ID]
			out = append(out, a)
		}
	}
	return out, nil
}

// Ack marks the alert with id as seen by the user.
func (e *Engine) Ack(id string) error { return e.d.Store.MarkAlertSeen([]string{"ack/" + id}) }

// Mute stops rule raising alerts for client ("" for every client), until
// Unmute; kept in the store.
func (e *Engine) Mute(rule, client string) error {
	if rule != "" && !slices.Contains(Rules, rule) {
		return fmt.Errorf("no rule %q: want one of %s", rule, strings.Join(Rules, ", "))
	}
	return e.d.Store.MarkAlertSeen([]string{muteKey(rule, client)})
}

// Unmute lifts a mute.
func (e *Engine) Unmute(rule, client string) error {
	return e.d.Store.UnmarkAlertSeen([]string{muteKey(rule, client)})
}

// Mutes lists the mutes in force, as "rule client" ("*" for any).
func (e *Engine) Mutes() ([]Mute, error) {
	keys, err := e.d.Store.AlertSeen("mute/")
	if err != nil {
		return nil, err
	}
	var out []Mute
	for k := range keys {
		rule, client, _ := strings.Cut(strings.TrimPrefix(k, "mute/"), "/")
		out = append(out, Mute{Rule: rule, Client: client})
	}
	slices.SortFunc(out, func(a, b Mute) int { return strings.Compare(a.Rule+"/"+a.Client, b.Rule+"/"+b.Client) })
	return out, nil
}

// Mute is a rule silenced for a client ("" for every one).
type Mute struct {
	Rule   string `json:"rule"`
	Client string `json:"client,omitempty"`
}

func muteKey(rule, client string) string { return "mute/" + rule + "/" + client }

// muted reports whether a is silenced: its rule for its client, or for
// every client. e.mu is held (seen holds the mutes loaded at start and
// those made since through the store: Mute marks both).
func (e *Engine) muted(a Alert) bool {
	mutes, err := e.d.Store.AlertSeen("mute/")
	if err != nil || len(mutes) == 0 {
		return false
	}
	return mutes[muteKey(a.Rule, a.Client)] || mutes[muteKey(a.Rule, "")]
}

// Counts returns the alerts raised per rule, and the failed deliveries
// per destination, since start.
func (e *Engine) Counts() (fired, failed map[string]uint64) {
	fired, failed = map[string]uint64{}, map[string]uint64{}
	e.fired.Range(func(k, v any) bool { fired[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	e.failed.Range(func(k, v any) bool { failed[k.(string)] = v.(*atomic.Uint64).Load(); return true })
	return fired, failed
}

func (e *Engine) count(rule string) { e.counter(&e.fired, rule).Add(1) }

func (e *Engine) counter(m *sync.Map, key string) *atomic.Uint64 {
	v, _ := m.LoadOrStore(key, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// spikes looks, once per hour, at the hour just ended: a device whose
// blocked lookups in it exceed SpikeFactor times its hourly median over
// the 7 days before (hours without any included) and SpikeFloor raises
// spike. The counts are kept as the checks read the log, so this reads
// nothing.
func (e *Engine) spikes(now time.Time) []Alert {
	hour := now.Truncate(time.Hour).Add(-time.Hour)
	if !e.cfg.RuleOn(RuleSpike) || !hour.After(e.spikeHour) || e.hourly == nil {
		return nil
	}
	e.spikeHour = hour
	const week = 7 * 24
	h := hour.Unix() / 3600
	if !e.historyFrom.IsZero() {
		e.readHistory(hour.Add(-week*time.Hour), e.historyFrom)
		e.historyFrom = time.Time{}
	}
	defer e.saveHourly()
	var out []Alert
	for dev, counts := range e.hourly {
		for k := range counts {
			if k < h-week-1 {
				delete(counts, k) // older than the week compared with
			}
		}
		if len(counts) == 0 {
			delete(e.hourly, dev)
			continue
		}
		n := counts[h]
		if n < e.cfg.SpikeFloor {
			continue
		}
		prior := make([]int, week)
		for i := range week {
			prior[i] = counts[h-int64(week)+int64(i)]
		}
		slices.Sort(prior)
		median := float64(prior[week/2])
		if float64(n) <= e.cfg.SpikeFactor*median {
			continue
		}
		who := e.who[dev]
		if !e.devInScope(RuleSpike, dev) {
			continue
		}
		e.once(fmt.Sprintf("spike/%s/%d", dev, hour.Unix()), Alert{Rule: RuleSpike, Client: who, Time: now, Link: "#/device/" + who,
			Message: fmt.Sprintf("%s made %d blocked lookups between %s and %s, against %g an hour usually", who, n,
				hour.Local().Format("15:04"), hour.Add(time.Hour).Local().Format("15:04"), median)}, &out)
	}
	return out
}

// idleBeacons looks, once a day after the night window, at the night: a
// device that looked a blocked name up at a steady interval through it
// (at least 6 times, the gaps within a fifth of their mean) raises
// idle_beacon: that is how phoning home looks when nobody uses the device.
func (e *Engine) idleBeacons(now time.Time) []Alert {
	if !e.cfg.RuleOn(RuleIdleBeacon) {
		return nil
	}
	local := now.In(time.Local)
	from, _ := clock(e.cfg.Night[0])
	to, _ := clock(e.cfg.Night[1])
	day := local.Format("2006-01-02")
	if e.nightDone == day || inWindow(local, from, to) || local.Hour()*60+local.Minute() < to {
		return nil
	}
	e.nightDone = day
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.Local)
	end := midnight.Add(time.Duration(to) * time.Minute)
	start := midnight.Add(time.Duration(from) * time.Minute)
	if from > to {
		start = start.Add(-24 * time.Hour) // the night began the evening before
	}
	type beacon struct {
		who   string
		times []time.Time
	}
	seen := map[string]*beacon{}
	err := e.d.Log.Scan(false, start, end, func(en *querylog.Entry) {
		if !e.inScope(RuleIdleBeacon, en.ClientName, en.ClientAddr, en.MAC) {
			return
		}
		k := deviceKey(en.MAC, en.ClientName, en.ClientAddr.String()) + "\x00" + en.QName
		b := seen[k]
		if b == nil {
			b = &beacon{who: en.Client}
			seen[k] = b
		}
		b.times = append(b.times, en.Time)
	})
	if err != nil {
		e.d.Logger.Warn("alerts: reading the log", zap.Error(err))
		return nil
	}
	var out []Alert
	for k, b := range seen {
		if len(b.times) < 6 {
			continue
		}
		slices.SortFunc(b.times, func(x, y time.Time) int { return x.Compare(y) })
		var sum float64
		gaps := make([]float64, 0, len(b.times)-1)
		for i := 1; i < len(b.times); i++ {
			g := b.times[i].Sub(b.times[i-1]).Seconds()
			gaps = append(gaps, g)
			sum += g
		}
		mean := sum / float64(len(gaps))
		steady := mean > 0
		for _, g := range gaps {
			steady = steady && g >= 0.8*mean && g <= 1.2*mean
		}
		if !steady {
			continue
		}
		_, name, _ := strings.Cut(k, "\x00")
		e.once("idle/"+k+"/"+day, Alert{Rule: RuleIdleBeacon, Client: b.who, Name: name, Time: now, Link: "#/device/" + b.who,
			Message: fmt.Sprintf("%s looked up %s every %s through the night (%d times between %s and %s)", b.who, trimDot(name),
				time.Duration(mean*float64(time.Second)).Round(time.Second), len(b.times), start.Format("15:04"), end.Format("15:04"))}, &out)
	}
	return out
}

// inScope reports whether a device's alerts of rule are wanted: the
// groups [alerts.scope] names for the rule, else [alerts] groups, else
// every device.
func (e *Engine) inScope(rule, name string, addr netip.Addr, mac string) bool {
	groups, ok := e.cfg.Scope[rule]
	if !ok {
		groups = e.cfg.Groups
	}
	if len(groups) == 0 || e.d.GroupsOf == nil {
		return true
	}
	for _, g := range e.d.GroupsOf(name, addr, mac) {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}

// devInScope is inScope for a device known by its key ("mac …",
// "name …", "addr …", as deviceKey makes them).
func (e *Engine) devInScope(rule, dev string) bool {
	kind, v, _ := strings.Cut(dev, " ")
	switch kind {
	case "mac":
		return e.inScope(rule, "", netip.Addr{}, v)
	case "name":
		return e.inScope(rule, v, netip.Addr{}, "")
	}
	a, _ := netip.ParseAddr(v)
	return e.inScope(rule, "", a, "")
}

// hourlyData is how the hourly counts are kept in the store.
type hourlyData struct {
	Counts map[string]map[int64]int `json:"counts"`
	Who    map[string]string        `json:"who"`
}

// loadHourly reads the hourly counts kept at the last hour's end; false
// when there are none.
func (e *Engine) loadHourly() bool {
	raw, err := e.d.Store.AlertData("hourly")
	if err != nil || raw == nil {
		return false
	}
	var d hourlyData
	if json.Unmarshal(raw, &d) != nil || d.Counts == nil {
		return false
	}
	e.hourly, e.who = d.Counts, d.Who
	if e.who == nil {
		e.who = map[string]string{}
	}
	return true
}

// saveHourly keeps the hourly counts for the next start.
func (e *Engine) saveHourly() {
	raw, err := json.Marshal(hourlyData{Counts: e.hourly, Who: e.who})
	if err == nil {
		err = e.d.Store.PutAlertData("hourly", raw)
	}
	if err != nil {
		e.d.Logger.Warn("alerts: keeping the hourly counts", zap.Error(err))
	}
}

// readHistory adds the blocked lookups of [since, until) to the hourly
// counts: the week before counting began, read once.
func (e *Engine) readHistory(since, until time.Time) {
	err := e.d.Log.ScanSummaries(false, since, until, func(bs *querylog.BlockSummary) bool {
		if !bs.First.Before(until) {
			return true // counted as the checks read it
		}
		for _, l := range bs.Lines {
			dev := deviceKey(l.MAC, l.Name, l.Addr.String())
			h := e.hourly[dev]
			if h == nil {
				h = map[int64]int{}
				e.hourly[dev] = h
				e.who[dev] = cmp.Or(l.Name, l.Addr.String())
			}
			h[bs.First.Unix()/3600] += l.Count
		}
		return true
	})
	if err != nil {
		e.d.Logger.Warn("alerts: reading the log", zap.Error(err))
	}
}
