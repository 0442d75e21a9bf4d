package blocklists

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store"
)

// ListStore is the part of the store the Manager uses.
type ListStore interface {
	PutListGzip(id string, meta store.ListMeta, gz io.Reader) error
	PutListMeta(id string, meta store.ListMeta) error
	GetListMeta(id string) (store.ListMeta, error)
	ReadListBody(id string, fn func(io.Reader) error) error
	ListIDs() ([]string, error)
	DeleteList(id string) error
	PutAllowed(name string) error
	DeleteAllowed(name string) error
	ListAllowed() ([]string, error)
	PutException(e store.Exception) error
	DeleteException(scope, name string) error
	ListExceptions() ([]store.Exception, error)
}

// AllowedNowList names the built-in allowlist of names allowed from the
// dashboard or the API.
const AllowedNowList = "allowed-now"

// AllowNow allows name (and only it) from now on, persisted, and applies
// it at once.
func (m *Manager) AllowNow(name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if err := m.store.PutAllowed(n); err != nil {
		return err
	}
	return m.rebuild()
}

// RemoveAllowed undoes AllowNow.
func (m *Manager) RemoveAllowed(name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	if err := m.store.DeleteAllowed(n); err != nil {
		return err
	}
	return m.rebuild()
}

// Allowed returns the names allowed with AllowNow.
func (m *Manager) Allowed() ([]string, error) { return m.store.ListAllowed() }

// Set is one compiled generation of all lists. It is immutable.
type Set struct {
	// Matcher holds every rule of every list; never nil.
	Matcher *Matcher
	// Generation counts builds since start.
	Generation uint64
	// Built is when the set was compiled.
	Built time.Time
}

// Manager keeps the lists fresh and the compiled Set current. Current is
// one atomic load and safe to call from the query path; everything else
// runs off it.
type Manager struct {
	// conf is the configuration, replaced whole by Reconfigure.
	conf   atomic.Pointer[managerConf]
	store  ListStore
	log    *zap.Logger
	client *http.Client
	now    func() time.Time

	current    atomic.Pointer[Set]
	generation atomic.Uint64
	refreshMu  sync.Mutex // one refresh at a time

	// retry holds, by SourceID, the sources whose latest attempt failed:
	// Run tries them again with backoff, not after RefreshInterval.
	retryMu sync.Mutex
	retry   map[string]retryState
	// pending holds, by SourceID, sources a reload added without a copy:
	// Run fetches each once, at once. Run does it (not a goroutine of
	// Reconfigure's) so that shutdown waits for the fetch and no write
	// reaches a closed store.
	pending map[string]bool
	// retryBase is the first wait before trying a failed source again;
	// it doubles with each failure in a row, up to retryMax.
	retryBase, retryMax time.Duration
	// wake tells Run that the retry schedule changed.
	wake chan struct{}

	// nextExpiry is when the first exception made by hand ends (zero:
	// none will), for Run, which rebuilds the lists then.
	expiryMu   sync.Mutex
	nextExpiry time.Time

	// compiledMu guards savedFP, the fingerprint of the compiled copy
	// the store keeps (compiled.go); nil until first known.
	compiledMu sync.Mutex
	savedFP    []byte
}

// retryState is one failing source's place in the retry schedule.
type retryState struct {
	failures int       // attempts in a row that failed
	next     time.Time // when the next attempt is due
}

// Default retry backoff: a router that boots before its uplink gets its
// lists within seconds of the network coming up, and a source that stays
// broken is tried every few minutes, not every second.
const (
	defaultRetryBase = 10 * time.Second
	defaultRetryMax  = 10 * time.Minute
)

// NewManager returns a Manager for validated lists. Until Load runs,
// Current returns an empty set.
func NewManager(cfg UpdateConfig, lists []ListConfig, st ListStore, log *zap.Logger) *Manager {
	m := &Manager{
		store: st, log: log, now: time.Now, client: &http.Client{},
		retry: map[string]retryState{}, pending: map[string]bool{}, retryBase: defaultRetryBase, retryMax: defaultRetryMax,
		wake: make(chan struct{}, 1),
	}
	m.conf.Store(&managerConf{cfg: cfg, lists: lists})
	empty, _ := NewBuilder().Build()
	m.current.Store(&Set{Matcher: empty, Built: m.now()})
	return m
}

type managerConf struct {
	cfg   UpdateConfig
	lists []ListConfig
}

// Reconfigure replaces the lists and update settings, rebuilds the set
// from what the store holds (and local files), and has Run fetch at once
// the sources that have no copy yet. The old set serves until the swap.
func (m *Manager) Reconfigure(ctx context.Context, cfg UpdateConfig, lists []ListConfig) error {
	m.refreshMu.Lock()
	m.conf.Store(&managerConf{cfg: cfg, lists: lists})
	m.refreshMu.Unlock()
	if err := m.Load(ctx); err != nil {
		return err
	}
	// Under refreshMu, so that a refresh running now either has the copy
	// in place or has not yet picked the source (and will clear it).
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	status := m.Status() // it takes retryMu
	m.retryMu.Lock()
	for _, st := range status {
		if _, failing := m.retry[st.ID]; st.Enabled && IsURL(st.Source) && !st.HasCopy && !failing {
			m.pending[st.ID] = true
		}
	}
	m.retryMu.Unlock()
	m.poke()
	return nil
}

// Current returns the set in use. It never returns nil.
func (m *Manager) Current() *Set { return m.current.Load() }

// SourceID is the store key of one source of one list.
func SourceID(list, source string) string {
	h := sha256.Sum256([]byte(list + "\x00" + source))
	return hex.EncodeToString(h[:8])
}

// Load builds the set from the stored copies, reading file sources from
// disk (they are local, so always worth a look) but never the network, so
// a restart without network blocks from the first query. Disabled lists
// are neither read nor compiled.
func (m *Manager) Load(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	for _, l := range m.conf.Load().lists {
		if !l.InUse() {
			continue
		}
		for _, src := range l.Sources {
			if !IsURL(src) && !IsBuiltin(src) {
				m.update(ctx, &l, src)
			}
		}
	}
	return m.rebuild()
}

// PruneRemoved deletes stored copies of sources no longer configured, so
// the store does not keep lists the user removed. The server calls it at
// start; CLI commands reading the store with another file must not.
func (m *Manager) PruneRemoved() {
	ids, err := m.store.ListIDs()
	if err != nil {
		m.log.Warn("listing stored list copies", zap.Error(err))
		return
	}
	configured := map[string]bool{}
	for _, l := range m.conf.Load().lists {
		for _, src := range l.Sources {
			configured[SourceID(l.Name, src)] = true
		}
	}
	for _, id := range ids {
		if !configured[id] {
			if err := m.store.DeleteList(id); err != nil {
				m.log.Warn("deleting the copy of a removed source", zap.String("id", id), zap.Error(err))
			}
		}
	}
}

// Progress is told about each source as its update finishes.
type Progress func(done, total int, st SourceStatus)

// Refresh checks every source now (conditional GETs for URLs), keeps what
// is good, and rebuilds the set if anything changed. It returns the status
// of every source.
func (m *Manager) Refresh(ctx context.Context, progress Progress) []SourceStatus {
	return m.refresh(ctx, progress, func(string) bool { return true })
}

// retryDue tries again the failed sources whose next attempt is due.
func (m *Manager) retryDue(ctx context.Context) {
	now := m.now()
	m.refresh(ctx, nil, func(id string) bool {
		m.retryMu.Lock()
		defer m.retryMu.Unlock()
		if m.pending[id] {
			delete(m.pending, id)
			return true
		}
		r, ok := m.retry[id]
		return ok && !r.next.After(now)
	})
}

// refresh updates the sources that pick selects (by SourceID), and
// rebuilds the set if anything changed.
func (m *Manager) refresh(ctx context.Context, progress Progress, pick func(id string) bool) []SourceStatus {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	type job struct {
		l   *ListConfig
		src string
	}
	var jobs []job
	conf := m.conf.Load()
	for i := range conf.lists {
		if !conf.lists[i].InUse() {
			continue // a disabled list is never fetched
		}
		for _, src := range conf.lists[i].Sources {
			if id := SourceID(conf.lists[i].Name, src); !IsBuiltin(src) && pick(id) {
				jobs = append(jobs, job{&conf.lists[i], src})
				m.retryMu.Lock()
				delete(m.pending, id) // fetched now: not again for the reload
				m.retryMu.Unlock()
			}
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		done    int
		changed bool
		sem     = make(chan struct{}, conf.cfg.MaxConcurrentDownloads)
	)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			st := m.update(ctx, j.l, j.src)
			mu.Lock()
			defer mu.Unlock()
			done++
			changed = changed || st.Status == StatusUpdated
			if progress != nil {
				progress(done, len(jobs), st)
			}
		}()
	}
	wg.Wait()
	if changed {
		if err := m.rebuild(); err != nil {
			m.log.Error("rebuilding lists after refresh; keeping the previous set", zap.Error(err))
		}
	}
	return m.Status()
}

// Run refreshes the sources every RefreshInterval (plus jitter) until ctx
// ends. The first refresh comes soon after start when a URL source has no
// copy or its copy is older than the interval. A source whose update
// failed (no copy yet, or a failed refresh) is tried again with backoff,
// from seconds up to minutes, until it succeeds: a router that boots
// before its uplink blocks within moments of the network coming up, not a
// day later.
func (m *Manager) Run(ctx context.Context) {
	// A source without a copy is fetched at once; otherwise the first
	// refresh comes when the oldest copy reaches the interval. Jitter
	// spreads the periodic refreshes, never the first fetch.
	interval := m.conf.Load().cfg.RefreshInterval
	wait := interval + m.jitter()
	for _, st := range m.Status() {
		if !st.Enabled || !IsURL(st.Source) {
			continue
		}
		if !st.HasCopy {
			wait = 0
			break
		}
		wait = min(wait, max(0, interval-m.now().Sub(st.FetchedAt)))
	}
	nextRefresh := m.now().Add(wait)
	for {
		wait := nextRefresh.Sub(m.now())
		if due, ok := m.nextRetry(); ok {
			wait = min(wait, due.Sub(m.now()))
		}
		if due, ok := m.expiryDue(); ok {
			wait = min(wait, due.Sub(m.now()))
		}
		t := time.NewTimer(max(0, wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.wake:
			t.Stop()
			continue // the retry schedule changed: wait again
		case <-t.C:
		}
		m.expire()
		if !m.now().Before(nextRefresh) {
			m.Refresh(ctx, nil)
			nextRefresh = m.now().Add(m.conf.Load().cfg.RefreshInterval + m.jitter())
			continue
		}
		m.retryDue(ctx)
	}
}

// nextRetry returns when the earliest retry of a configured source is
// due, if one is scheduled.
func (m *Manager) nextRetry() (time.Time, bool) {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	var next time.Time
	for _, l := range m.conf.Load().lists {
		if !l.InUse() {
			continue
		}
		for _, src := range l.Sources {
			if m.pending[SourceID(l.Name, src)] {
				return m.now(), true
			}
			if r, ok := m.retry[SourceID(l.Name, src)]; ok && (next.IsZero() || r.next.Before(next)) {
				next = r.next
			}
		}
	}
	return next, !next.IsZero()
}

// schedule records the outcome of an attempt at source id and returns
// when the next attempt is due after a failure (zero after a success).
func (m *Manager) schedule(id string, failed bool) time.Time {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	if !failed {
		delete(m.retry, id)
		return time.Time{}
	}
	r := m.retry[id]
	r.failures++
	r.next = m.now().Add(m.backoff(r.failures))
	m.retry[id] = r
	m.poke()
	return r.next
}

// poke tells Run that the retry schedule changed. It never blocks.
func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// backoff is the wait before the next attempt after n failures in a row:
// retryBase doubled per failure, capped at retryMax, then jittered down
// by up to half so that sources (and routers) failing together spread
// out.
func (m *Manager) backoff(n int) time.Duration {
	d := m.retryBase
	for i := 1; i < n && d < m.retryMax; i++ {
		d *= 2
	}
	d = max(0, min(d, m.retryMax))
	return d - rand.N(d/2+1)
}

func (m *Manager) jitter() time.Duration {
	if m.conf.Load().cfg.RefreshJitter <= 0 {
		return 0
	}
	return rand.N(m.conf.Load().cfg.RefreshJitter)
}

// Status returns every configured source's status, in configuration order.
func (m *Manager) Status() []SourceStatus {
	var out []SourceStatus
	for _, l := range m.conf.Load().lists {
		for _, src := range l.Sources {
			id := SourceID(l.Name, src)
			if IsBuiltin(src) {
				out = append(out, builtinStatus(id, &l, src))
				continue
			}
			meta, err := m.store.GetListMeta(id)
			if err != nil {
				meta = store.ListMeta{List: l.Name, Source: src, Status: StatusPending}
			}
			st := newSourceStatus(id, &l, meta)
			if l.InUse() {
				st = m.withRetry(st)
			}
			out = append(out, st)
		}
	}
	return out
}

// withRetry adds the source's place in the retry schedule to its status.
func (m *Manager) withRetry(st SourceStatus) SourceStatus {
	m.retryMu.Lock()
	defer m.retryMu.Unlock()
	if r, ok := m.retry[st.ID]; ok {
		st.Retrying, st.NextAttempt, st.FailedAttempts = true, r.next, r.failures
	}
	return st
}

// Warning is what an operator must see about the lists at a glance, or ""
// when all is well; see Warning.
func (m *Manager) Warning() string { return Warning(m.Current(), m.Status()) }

// Warning is what an operator must see about the lists at a glance ("vigil
// lists", the health endpoint, the dashboard), or "" when all is well: no
// rules in use although sources are configured (nothing is blocked), or
// sources with no copy (their rules are missing), with when the next
// retry is due. Sources of disabled lists do not count.
func Warning(set *Set, sources []SourceStatus) string {
	noCopy, enabled := 0, 0
	var next time.Time
	for _, s := range sources {
		if !s.Enabled {
			continue
		}
		enabled++
		if !s.HasCopy {
			noCopy++
		}
		if s.Retrying && (next.IsZero() || s.NextAttempt.Before(next)) {
			next = s.NextAttempt
		}
	}
	var msg string
	switch {
	case enabled > 0 && (set == nil || set.Matcher.Len() == 0):
		msg = "no rules in use: nothing is blocked"
	case noCopy > 0:
		msg = fmt.Sprintf("%d of %d list sources have no copy: their rules are not in use", noCopy, enabled)
	default:
		return ""
	}
	if !next.IsZero() {
		msg += "; retrying, next attempt at " + next.Format(time.RFC3339)
	}
	return msg
}

// errNotModified is the conditional GET's "nothing new".
var errNotModified = errors.New("not modified")

// update fetches one source, validates it and stores it if it is good.
// Every failure keeps the stored copy.
func (m *Manager) update(ctx context.Context, l *ListConfig, src string) SourceStatus {
	id := SourceID(l.Name, src)
	meta, err := m.store.GetListMeta(id)
	if err != nil {
		meta = store.ListMeta{List: l.Name, Source: src}
	}
	now := m.now()
	meta.CheckedAt = now

	var got fetched
	defer got.gz.free()
	body, size, etag, lastMod, err := m.fetch(ctx, src, meta)
	if err == nil {
		got, err = m.read(l, src, body, size, meta)
		body.Close()
	}
	st := got.stats
	switch {
	case errors.Is(err, errNotModified):
		meta.Status, meta.Error, meta.FailedSince = StatusUnchanged, "", time.Time{}
		if etag != "" {
			meta.ETag = etag
		}
		if lastMod != "" {
			meta.LastModified = lastMod
		}
		m.putMeta(id, meta)
	case err != nil:
		meta.Status = StatusFailedNoCopy
		if meta.HasCopy {
			meta.Status = StatusFailedCached
		}
		meta.Error = err.Error()
		if meta.FailedSince.IsZero() {
			meta.FailedSince = now
		}
		m.putMeta(id, meta)
		next := m.schedule(id, true)
		m.log.Warn("list source update failed; retrying", zap.String("list", l.Name), zap.String("source", src),
			zap.String("status", meta.Status), zap.Error(err), zap.Time("next_attempt", next))
		return m.withRetry(newSourceStatus(id, l, meta))
	default:
		meta = store.ListMeta{
			List: l.Name, Source: src, ETag: etag, LastModified: lastMod,
			FetchedAt: now, CheckedAt: now, Size: got.size, SHA256: got.sum,
			Format: string(st.Format), Entries: st.Entries, Rejected: st.Rejected,
			Status: StatusUpdated, HasCopy: true,
		}
		if err := m.store.PutListGzip(id, meta, got.gz.reader()); err != nil {
			meta.Status, meta.Error, meta.HasCopy = StatusFailedNoCopy, err.Error(), false
			if old, gerr := m.store.GetListMeta(id); gerr == nil && old.HasCopy {
				meta = old
				meta.Status, meta.Error = StatusFailedCached, err.Error()
			}
			next := m.schedule(id, true)
			level := zap.ErrorLevel
			if store.NotSaved(err) {
				level = zap.DebugLevel // a full disk or read-only store: the store reports it once per episode
			}
			if ce := m.log.Check(level, "storing list source; retrying"); ce != nil {
				ce.Write(zap.String("list", l.Name), zap.String("source", src), zap.Error(err), zap.Time("next_attempt", next))
			}
			return m.withRetry(newSourceStatus(id, l, meta))
		}
		m.log.Info("list source updated", zap.String("list", l.Name), zap.String("source", src),
			zap.Int("entries", st.Entries), zap.Int("rejected", st.Rejected), zap.String("format", string(st.Format)))
	}
	m.schedule(id, false)
	return newSourceStatus(id, l, meta)
}

func (m *Manager) putMeta(id string, meta store.ListMeta) {
	if err := m.store.PutListMeta(id, meta); err != nil && !store.NotSaved(err) {
		m.log.Error("storing list status", zap.String("source", meta.Source), zap.Error(err))
	}
}

// fetch opens a source: a file, or a URL with a conditional GET. size is
// the length the source announced (-1 if unknown). The caller closes body.
func (m *Manager) fetch(ctx context.Context, src string, meta store.ListMeta) (body io.ReadCloser, size int64, etag, lastMod string, err error) {
	if !IsURL(src) {
		f, err := os.Open(src)
		if err != nil {
			return nil, 0, "", "", fmt.Errorf("reading list file: %w", err)
		}
		// A file is read at every start and reload. When it is the stored
		// copy, hashing it first saves compressing and parsing it again.
		if meta.HasCopy && meta.SHA256 != "" {
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				f.Close()
				return nil, 0, "", "", fmt.Errorf("reading list file: %w", err)
			}
			if hex.EncodeToString(h.Sum(nil)) == meta.SHA256 {
				f.Close()
				return nil, 0, "", "", errNotModified
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				f.Close()
				return nil, 0, "", "", fmt.Errorf("reading list file: %w", err)
			}
		}
		size := int64(-1)
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		return f, size, "", "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.conf.Load().cfg.DownloadTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		cancel()
		return nil, 0, "", "", fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("User-Agent", "vigil")
	if meta.HasCopy {
		if meta.ETag != "" {
			req.Header.Set("If-None-Match", meta.ETag)
		}
		if meta.LastModified != "" {
			req.Header.Set("If-Modified-Since", meta.LastModified)
		}
	}
	resp, err := m.client.Do(req)
	if err != nil {
		cancel()
		return nil, 0, "", "", fmt.Errorf("downloading: %w", err)
	}
	etag, lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	fail := func(err error) (io.ReadCloser, int64, string, string, error) {
		resp.Body.Close()
		cancel()
		return nil, 0, "", "", err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && meta.HasCopy:
		resp.Body.Close()
		cancel()
		return nil, 0, etag, lastMod, errNotModified
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Errorf("downloading: HTTP %s", resp.Status))
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(strings.ToLower(ct), "text/html") {
		return fail(errors.New("the server sent an HTML page, not a list (a captive portal or an error page?)"))
	}
	return cancelOnClose{resp.Body, cancel}, resp.ContentLength, etag, lastMod, nil
}

// cancelOnClose ends a download's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// fetched is a source read, checked and compressed in one pass.
type fetched struct {
	gz    spool // the body, gzip-compressed as the store keeps it
	size  int   // the body's length
	sum   string
	stats ParseStats
}

// read reads a fetched body once, refusing more than max_list_bytes: it
// is hashed (errNotModified when it is the stored copy), compressed into
// got.gz for the store and parsed for the gates that protect the last
// good copy. The text is never held whole: a five-million-name list is
// some 90 MB of it, compressed four to one. size is the length the
// source announced (-1 if unknown). The caller frees got.gz, also on
// error.
func (m *Manager) read(l *ListConfig, src string, body io.Reader, size int64, old store.ListMeta) (got fetched, err error) {
	cfg := m.conf.Load().cfg
	if size > cfg.MaxListBytes {
		return got, fmt.Errorf("larger than blocklists.max_list_bytes (%d bytes)", cfg.MaxListBytes)
	}
	h := sha256.New()
	zw, _ := gzip.NewWriterLevel(&got.gz, gzip.BestSpeed)
	capped := &cappedReader{r: body, left: cfg.MaxListBytes}
	br := bufio.NewReaderSize(io.TeeReader(capped, io.MultiWriter(h, zw)), 64<<10)
	readErr := func(err error) error {
		if capped.over {
			return fmt.Errorf("larger than blocklists.max_list_bytes (%d bytes)", cfg.MaxListBytes)
		}
		return fmt.Errorf("reading: %w", err)
	}
	if head, err := br.Peek(1024); err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return got, readErr(err)
	} else if looksLikeHTML(head) {
		return got, errors.New("the body is an HTML page, not a list (a captive portal or an error page?)")
	}
	st, perr := Parse(br, ParseOptions{
		Source: src, Format: l.Format, MaxRejected: cfg.MaxRejectedLines, Allow: l.Allow(),
	}, func(Rule) {})
	got.stats = st
	if _, err := io.Copy(io.Discard, br); err != nil { // what the parse left, if it stopped early
		return got, readErr(err)
	}
	if capped.over {
		return got, readErr(nil)
	}
	if err := zw.Close(); err != nil {
		return got, fmt.Errorf("compressing: %w", err)
	}
	got.size, got.sum = int(capped.read), hex.EncodeToString(h.Sum(nil))
	switch {
	case old.HasCopy && got.sum == old.SHA256:
		return got, errNotModified
	case perr != nil:
		return got, perr
	case st.Entries == 0:
		return got, fmt.Errorf("no entries (%d lines, %d rejected)", st.Lines, st.Rejected)
	case st.Rejected > st.Entries:
		return got, fmt.Errorf("mostly invalid: %d rejected lines against %d entries (first: %v)", st.Rejected, st.Entries, st.Errors[0])
	case old.HasCopy && old.Entries > 0 && float64(st.Entries) < float64(old.Entries)*(1-cfg.MaxShrink):
		return got, fmt.Errorf("shrank from %d to %d entries, more than blocklists.max_shrink (%g) allows", old.Entries, st.Entries, cfg.MaxShrink)
	}
	return got, nil
}

// cappedReader reads r until more than left bytes came, then fails.
type cappedReader struct {
	r    io.Reader
	left int64
	read int64
	over bool
}

var errTooLarge = errors.New("too large")

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.over {
		return 0, errTooLarge
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read > c.left {
		c.over = true
		return 0, errTooLarge
	}
	return n, err
}

func looksLikeHTML(body []byte) bool {
	head := bytes.ToLower(bytes.TrimSpace(body[:min(len(body), 1024)]))
	return bytes.HasPrefix(head, []byte("<!doctype html")) || bytes.HasPrefix(head, []byte("<html")) ||
		bytes.Contains(head, []byte("<head>")) || bytes.Contains(head, []byte("<body"))
}

// Rebuild compiles the lists again from what the store holds: after a
// change made elsewhere (another replica of a fleet allowed a name or
// added an exception).
func (m *Manager) Rebuild() error { return m.rebuild() }

// rebuild compiles a new Set from every stored copy and inline entries and
// swaps it in. The old set stays in use until the swap, and is collected
// once the queries using it finish.
func (m *Manager) rebuild() error {
	start := m.now()
	// What the updates before this left behind (a downloaded list's text,
	// its parse) goes back to the OS first: the new table is mapped
	// outside the heap and could not reuse those pages, so without this
	// both would be resident at the peak.
	debug.FreeOSMemory()
	b := NewBuilder()
	b.Grow(m.storedEntries())
	listIdx := map[string]int{}
	for i := range m.conf.Load().lists {
		l := &m.conf.Load().lists[i]
		if !l.InUse() {
			continue // configured but off: its rules are not compiled
		}
		idx, err := b.AddList(ListInfo{Name: l.Name, Vendor: l.Vendor, Allow: l.Allow(), OptIn: l.OptInOnly()})
		if err != nil {
			return err
		}
		listIdx[l.Name] = idx
		if err := m.eachRule(l, func(r Rule) { b.Add(idx, r) }); err != nil {
			return err
		}
	}
	stored := m.storedSources(listIdx)
	unavailable := m.compiledUnavailable()
	if unavailable {
		// Badger cannot be read: the stored sources' rules come from the
		// last compiled copy, if there is one.
		n, err := m.addCompiled(b, stored)
		switch {
		case errors.Is(err, store.ErrNotFound):
			m.log.Warn("the store is unavailable and no compiled copy of the lists exists: blocking with built-in lists and inline entries only")
		case err != nil:
			m.log.Warn("the store is unavailable and its compiled copy of the lists cannot be read", zap.Error(err))
		default:
			m.log.Warn("the store is unavailable: blocking with the last compiled copy of the lists", zap.Int("rules", n))
		}
	}
	if allowed, err := m.store.ListAllowed(); err == nil && len(allowed) > 0 {
		idx, err := b.AddList(ListInfo{Name: AllowedNowList, Allow: true, Scope: ScopeEveryone})
		if err != nil {
			return err
		}
		for _, n := range allowed {
			b.Add(idx, Rule{Name: n})
		}
	}
	if err := m.addExceptions(b); err != nil {
		return err
	}
	mt, err := b.Build()
	if err != nil {
		return err
	}
	set := &Set{Matcher: mt, Generation: m.generation.Add(1), Built: m.now()}
	m.current.Store(set)
	if !unavailable {
		m.saveCompiled(stored)
	}
	// Building a million-name set briefly takes several times the final
	// matcher's memory (list text, parser, builder). Hand it back to the
	// OS now rather than whenever the scavenger gets to it, so the resident
	// size after a refresh is the matcher's, not the build's peak.
	debug.FreeOSMemory()
	fields := []zap.Field{zap.Int("rules", mt.Len()), zap.Int("lists", len(m.conf.Load().lists)),
		zap.Int("bytes", mt.Bytes()), zap.Duration("took", m.now().Sub(start)), zap.Uint64("generation", set.Generation)}
	if mt.Len() == 0 && len(m.conf.Load().lists) > 0 {
		// Lists are configured but nothing is blocked: no source has a
		// copy yet (first start without network?) or every one is empty.
		if next, ok := m.nextRetry(); ok {
			fields = append(fields, zap.Time("next_attempt", next))
		}
		m.log.Warn("lists compiled with no rules: nothing is blocked", fields...)
		return nil
	}
	m.log.Info("lists compiled", fields...)
	return nil
}

// storedEntries is how many rules the enabled lists' stored copies and
// inline entries hold, as counted when they were stored: the builder's
// size hint.
func (m *Manager) storedEntries() int {
	n := 0
	for _, l := range m.conf.Load().lists {
		if !l.InUse() {
			continue
		}
		n += len(l.Entries)
		for _, src := range l.Sources {
			if meta, err := m.store.GetListMeta(SourceID(l.Name, src)); err == nil && meta.HasCopy {
				n += meta.Entries
			}
		}
	}
	return n
}

// eachRule calls add for every rule of l: its sources' copies (built-in
// ones from the binary, the others from the store; a source without a copy
// adds nothing) and its inline entries.
func (m *Manager) eachRule(l *ListConfig, add func(Rule)) error {
	for _, src := range l.Sources {
		parse := func(r io.Reader) error {
			_, err := Parse(r, ParseOptions{Source: src, Format: l.Format, MaxRejected: -1, Allow: l.Allow()}, add)
			return err
		}
		var err error
		if IsBuiltin(src) {
			var body []byte
			if body, err = readBuiltin(src); err == nil { // in the binary: never stored, always there
				err = parse(bytes.NewReader(body))
			}
		} else {
			// Streamed from the store: the list's text is never whole in
			// memory beside the table being built.
			err = m.store.ReadListBody(SourceID(l.Name, src), parse)
		}
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
	}
	if len(l.Entries) > 0 {
		if _, err := parseEntries(l, add); err != nil {
			return err
		}
	}
	return nil
}

// Lists returns the configured lists.
func (m *Manager) Lists() []ListConfig { return slices.Clone(m.conf.Load().lists) }
