package querylog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter selects log entries. Zero fields match everything.
type Filter struct {
	// Client is the client's identity: its name, or its address if
	// unnamed; several joined with IdentitySep stand for one device known
	// by several (a device named since, whose older entries carry its
	// address or earlier name).
	Client string
	Vendor string    // exact vendor tag
	List   string    // exact list name
	Name   string    // the name and its subdomains
	QType  string    // exact query type ("A", "HTTPS"); any case
	Since  time.Time // inclusive
	Until  time.Time // exclusive; zero means now
	// Allowed reads the log of allowed lookups instead of blocked ones.
	Allowed bool
	// Limit bounds the entries returned (default 100, at most 1000).
	Limit int
	// Cursor continues a previous page (Page.Next).
	Cursor string
}

// Page is one page of entries, newest first.
type Page struct {
	Entries []Entry `json:"entries"`
	// Next is the cursor of the following page; empty at the end.
	Next string `json:"next,omitempty"`
}

// maxScan bounds the entries one request examines, so a filter matching
// little over a long window answers with a cursor instead of scanning the
// whole month in one go.
const maxScan = 500_000

// ErrBadCursor means a cursor was not produced by this log.
var ErrBadCursor = errors.New("invalid cursor")

func (f *Filter) matches(e *Entry) bool {
	if f.Vendor != "" && !strings.EqualFold(e.Vendor, f.Vendor) {
		return false
	}
	if f.List != "" && e.List != f.List {
		return false
	}
	if f.QType != "" && !strings.EqualFold(e.QType, f.QType) {
		return false
	}
	if f.Name != "" {
		n := strings.TrimSuffix(strings.ToLower(f.Name), ".")
		q := strings.TrimSuffix(e.QName, ".")
		if q != n && !strings.HasSuffix(q, "."+n) {
			return false
		}
	}
	return true
}

// cursor is a position in the log: a block's position (segment hour and
// frame end, 12 bytes) and an entry index in it.
type cursor struct {
	suffix []byte // 12 bytes
	index  int    // next entry to return is index-1 (newest first)
}

func (c cursor) String() string { return hex.EncodeToString(c.suffix) + "." + strconv.Itoa(c.index) }

func parseCursor(s string) (cursor, error) {
	h, i, ok := strings.Cut(s, ".")
	b, err := hex.DecodeString(h)
	n, nerr := strconv.Atoi(i)
	if _, posOK := parseSegPos(b); !ok || err != nil || nerr != nil || !posOK || n < 0 {
		return cursor{}, ErrBadCursor
	}
	return cursor{suffix: b, index: n}, nil
}

// walkSlack is how much older than a window's start a frame may be before
// a walk backwards stops: frames are written in time order but for the
// lanes, which hand entries over at each flush, so an entry may reach a
// frame up to a flush interval after its time.
func (q *Log) walkSlack() time.Duration { return 2*q.cfg.FlushInterval + 5*time.Second }

// IdentitySep joins the identities of one device in a client filter.
const IdentitySep = "\n"

// walkBlocks calls fn for each block of the kind, newest block first, that
// may hold entries in [since, until), starting at the block at from when
// given. For a client, only its entries in each block are passed, and
// blocks without it are not decompressed. fn returns false to stop.
func (q *Log) walkBlocks(blocked bool, client string, since, until time.Time, from []byte,
	fn func(suffix []byte, entries []Entry) bool) error {
	var start *segPos
	if from != nil {
		p, ok := parseSegPos(from)
		if !ok {
			return ErrBadCursor
		}
		start = &p
	}
	var (
		entries []Entry
		scratch []byte
	)
	ids := strings.Split(client, IdentitySep)
	return q.segs.walk(kind(blocked), since, until, start, func(pos segPos, fr *frame) bool {
		if !since.IsZero() && fr.newest.Before(since.Add(-q.walkSlack())) {
			return false // every frame before it is older still
		}
		if !since.IsZero() && fr.newest.Before(since) || !until.IsZero() && !fr.first.Before(until) {
			return true
		}
		if client != "" && !slices.ContainsFunc(ids, fr.hasClient) {
			return true
		}
		var err error
		entries, scratch, err = decodeBodyInto(scratch, fr.body, entries[:0], false)
		if err != nil {
			return true // damaged: skip the block
		}
		if client != "" {
			entries = slices.DeleteFunc(entries, func(e Entry) bool { return !slices.Contains(ids, e.Client) })
		}
		return fn(pos.bytes(), entries)
	})
}

// Scan calls fn for every entry of the blocked (or, with allowed, the
// allowed) log in [since, until), newest block first: what the alerts
// read of the lookups since they last looked.
func (q *Log) Scan(allowed bool, since, until time.Time, fn func(*Entry)) error {
	since = q.logSince(!allowed, since)
	return q.walkBlocks(!allowed, "", since, until, nil, func(_ []byte, entries []Entry) bool {
		for i := range entries {
			if e := &entries[i]; e.Time.Before(until) && !e.Time.Before(since) {
				fn(e)
			}
		}
		return true
	})
}

// logSince returns the start of a window no older than the kind's
// retention.
func (q *Log) logSince(blocked bool, since time.Time) time.Time {
	if c := q.segs.cutoff(kind(blocked), time.Now()); since.Before(c) {
		return c
	}
	return since
}

// Entries returns entries matching f, newest first.
func (q *Log) Entries(f Filter) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	until := f.Until
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	var from []byte
	resume := -1
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		from, resume = c.suffix, c.index
	}
	var page Page
	scanned := 0
	f.Since = q.logSince(!f.Allowed, f.Since)
	err := q.walkBlocks(!f.Allowed, f.Client, f.Since, until, from, func(suffix []byte, entries []Entry) bool {
		i := len(entries)
		if resume >= 0 && bytes.Equal(suffix, from) {
			i = min(resume, i)
		}
		resume = -1
		for i--; i >= 0; i-- {
			e := &entries[i]
			if !e.Time.Before(until) || !f.Since.IsZero() && e.Time.Before(f.Since) || !f.matches(e) {
				continue
			}
			page.Entries = append(page.Entries, *e)
			if len(page.Entries) == f.Limit {
				page.Next = cursor{suffix: suffix, index: i}.String()
				return false
			}
		}
		if scanned += len(entries); scanned > maxScan {
			page.Next = cursor{suffix: suffix, index: 0}.String()
			return false
		}
		return true
	})
	if err != nil {
		return page, fmt.Errorf("reading the query log: %w", err)
	}
	return page, nil
}

// ClientSummary is what one client looked up over a window.
type ClientSummary struct {
	Client  string         `json:"client"`
	Name    string         `json:"name,omitempty"`
	Addrs   []string       `json:"addrs"`
	MAC     string         `json:"mac,omitempty"` // the latest MAC seen with its lookups
	Total   int            `json:"total"`
	Vendors map[string]int `json:"vendors"`
	Lists   map[string]int `json:"lists"`
	First   time.Time      `json:"first"`
	Last    time.Time      `json:"last"`
}

// scanWindow calls fn for every blocked entry in [since, until), optionally
// for one client only.
func (q *Log) scanWindow(client string, since, until time.Time, fn func(*Entry)) error {
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	since = q.logSince(true, since)
	return q.walkBlocks(true, client, since, until, nil, func(_ []byte, entries []Entry) bool {
		for i := range entries {
			if e := &entries[i]; e.Time.Before(until) && !e.Time.Before(since) {
				fn(e)
			}
		}
		return true
	})
}

func (cs *ClientSummary) add(e *Entry) {
	if cs.Total == 0 || e.Time.Before(cs.First) {
		cs.First = e.Time
	}
	if !e.Time.Before(cs.Last) {
		cs.Last = e.Time
		if e.MAC != "" {
			cs.MAC = e.MAC
		}
	}
	cs.Total++
	cs.Vendors[e.Vendor]++
	cs.Lists[e.List]++
	if a := e.ClientAddr.String(); !slices.Contains(cs.Addrs, a) && len(cs.Addrs) < 16 {
		cs.Addrs = append(cs.Addrs, a)
	}
}

func newSummary(e *Entry) *ClientSummary {
	return &ClientSummary{Client: e.Client, Name: e.ClientName, Vendors: map[string]int{}, Lists: map[string]int{}}
}

// Clients summarises every client with blocked lookups in the window,
// most blocked first.
func (q *Log) Clients(since, until time.Time) ([]ClientSummary, error) {
	byClient := map[string]*ClientSummary{}
	err := q.scanWindow("", since, until, func(e *Entry) {
		cs := byClient[e.Client]
		if cs == nil {
			cs = newSummary(e)
			byClient[e.Client] = cs
		}
		cs.add(e)
	})
	if err != nil {
		return nil, fmt.Errorf("reading the query log: %w", err)
	}
	out := make([]ClientSummary, 0, len(byClient))
	for _, cs := range byClient {
		out = append(out, *cs)
	}
	slices.SortFunc(out, func(a, b ClientSummary) int {
		if a.Total != b.Total {
			return b.Total - a.Total
		}
		return strings.Compare(a.Client, b.Client)
	})
	return out, nil
}

// Client summarises one client's blocked lookups in the window.
func (q *Log) Client(client string, since, until time.Time) (ClientSummary, error) {
	id, _, _ := strings.Cut(client, IdentitySep)
	cs := &ClientSummary{Client: id, Vendors: map[string]int{}, Lists: map[string]int{}}
	err := q.scanWindow(client, since, until, func(e *Entry) {
		cs.Name = e.ClientName
		cs.add(e)
	})
	if err != nil {
		return *cs, fmt.Errorf("reading the query log: %w", err)
	}
	return *cs, nil
}

// Count is one row of a top list.
type Count struct {
	Key    string `json:"key"`
	Count  int    `json:"count"`
	Vendor string `json:"vendor,omitempty"` // for names: the vendor of the list that blocked it
}

// TopReport is the most blocked names, clients and vendors in a window.
type TopReport struct {
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Total   int       `json:"total"`
	Names   []Count   `json:"names"`
	Clients []Count   `json:"clients"`
	Vendors []Count   `json:"vendors"`
}

// Top returns the n most blocked names, clients and vendors in the
// window.
func (q *Log) Top(since, until time.Time, n int) (TopReport, error) {
	if until.IsZero() {
		until = time.Now()
	}
	rep := TopReport{Since: since, Until: until}
	names, clients, vendors := map[string]*Count{}, map[string]*Count{}, map[string]*Count{}
	bump := func(m map[string]*Count, key, vendor string) {
		c := m[key]
		if c == nil {
			c = &Count{Key: key, Vendor: vendor}
			m[key] = c
		}
		c.Count++
	}
	err := q.scanWindow("", since, until, func(e *Entry) {
		rep.Total++
		bump(names, e.QName, e.Vendor)
		bump(clients, e.Client, "")
		bump(vendors, e.Vendor, "")
	})
	if err != nil {
		return rep, fmt.Errorf("reading the query log: %w", err)
	}
	rep.Names, rep.Clients, rep.Vendors = topN(names, n), topN(clients, n), topN(vendors, n)
	return rep, nil
}

// TopAllowed returns the n most asked allowed names and the clients that
// asked most, from the log of allowed lookups (querylog.log_allowed).
func (q *Log) TopAllowed(since, until time.Time, n int) (TopReport, error) {
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	rep := TopReport{Since: since, Until: until}
	since = q.logSince(false, since)
	names, clients := map[string]*Count{}, map[string]*Count{}
	bump := func(m map[string]*Count, key string) {
		c := m[key]
		if c == nil {
			c = &Count{Key: key}
			m[key] = c
		}
		c.Count++
	}
	scanned := 0
	err := q.walkBlocks(false, "", since, until, nil, func(_ []byte, entries []Entry) bool {
		for i := range entries {
			if e := &entries[i]; e.Time.Before(until) && !e.Time.Before(since) {
				rep.Total++
				bump(names, e.QName)
				bump(clients, e.Client)
			}
		}
		scanned += len(entries)
		return scanned < maxScan*4 // a bound on one request's work
	})
	if err != nil {
		return rep, fmt.Errorf("reading the query log: %w", err)
	}
	rep.Names, rep.Clients, rep.Vendors = topN(names, n), topN(clients, n), []Count{}
	return rep, nil
}

func topN(m map[string]*Count, n int) []Count {
	out := make([]Count, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// VendorDay is one client's blocked lookups per vendor on one day.
type VendorDay struct {
	Day     time.Time      `json:"day"`
	Vendors map[string]int `json:"vendors"`
}

// ClientDays returns a client's blocked lookups per vendor per day
// (UTC) over the window, oldest first, days without lookups included.
func (q *Log) ClientDays(client string, since, until time.Time) ([]VendorDay, error) {
	if until.IsZero() {
		until = time.Now()
	}
	start := since.UTC().Truncate(24 * time.Hour)
	byDay := map[int64]map[string]int{}
	err := q.scanWindow(client, since, until, func(e *Entry) {
		d := e.Time.UTC().Truncate(24 * time.Hour).Unix()
		if byDay[d] == nil {
			byDay[d] = map[string]int{}
		}
		byDay[d][e.Vendor]++
	})
	if err != nil {
		return nil, fmt.Errorf("reading the query log: %w", err)
	}
	var out []VendorDay
	for d := start; !d.After(until); d = d.Add(24 * time.Hour) {
		v := byDay[d.Unix()]
		if v == nil {
			v = map[string]int{}
		}
		out = append(out, VendorDay{Day: d, Vendors: v})
	}
	return out, nil
}

// Identities returns every client identity (a name, or an address) with
// entries since, blocked or allowed. It reads the blocks' client lists,
// never their bodies.
func (q *Log) Identities(since time.Time) ([]string, error) {
	seen := map[string]bool{}
	for _, blocked := range []bool{true, false} {
		err := q.segs.walk(kind(blocked), q.logSince(blocked, since), time.Time{}, nil, func(_ segPos, fr *frame) bool {
			fr.eachClient(func(c string) {
				if !seen[c] {
					seen[c] = true
				}
			})
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("reading the query log: %w", err)
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// AllowedCounts counts the allowed lookups in [since, until) per client
// identity (logged only with log_allowed on).
func (q *Log) AllowedCounts(since, until time.Time) (map[string]int, error) {
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	since = q.logSince(false, since)
	counts := map[string]int{}
	err := q.walkBlocks(false, "", since, until, nil, func(_ []byte, entries []Entry) bool {
		for i := range entries {
			if e := &entries[i]; e.Time.Before(until) && !e.Time.Before(since) {
				counts[e.Client]++
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("reading the query log: %w", err)
	}
	return counts, nil
}

// Summary is one line of a block's summary: the entries of one client
// (its name, address and MAC) with one vendor ("" for none).
type Summary struct {
	Name   string
	Addr   netip.Addr
	MAC    string
	Vendor string
	Count  int
}

// BlockSummary is what ScanSummaries reports of one block of the log.
type BlockSummary struct {
	// Pos names the block: stable, so a reader can tell a block it has
	// already seen.
	Pos           string
	First, Newest time.Time
	Lines         []Summary
	// Entries decodes the block's entries; valid only during the call.
	Entries func() []Entry
}

// ScanSummaries calls fn for every block of the blocked (or, with
// allowed, the allowed) log that may hold entries in [since, until),
// newest first, with the block's summary, read without decoding its
// entries (a block written before summaries is decoded to make one). fn
// returns false to stop.
func (q *Log) ScanSummaries(allowed bool, since, until time.Time, fn func(*BlockSummary) bool) error {
	since = q.logSince(!allowed, since)
	var scratch []byte
	var entries []Entry
	return q.segs.walk(kind(!allowed), since, until, nil, func(pos segPos, fr *frame) bool {
		if !since.IsZero() && fr.newest.Before(since.Add(-q.walkSlack())) {
			return false // every frame before it is older still
		}
		if !since.IsZero() && fr.newest.Before(since) || !until.IsZero() && !fr.first.Before(until) {
			return true
		}
		decoded := false
		decode := func() []Entry {
			if !decoded {
				var err error
				entries, scratch, err = decodeBodyInto(scratch, fr.body, entries[:0], false)
				if err != nil {
					entries = entries[:0] // damaged: nothing to tell
				}
				decoded = true
			}
			return entries
		}
		bs := &BlockSummary{Pos: string(pos.bytes()), First: fr.first, Newest: fr.newest, Entries: decode}
		if fr.summary != nil {
			bs.Lines = parseSummary(fr.summary)
		} else {
			bs.Lines = summarize(decode())
		}
		return fn(bs)
	})
}

// parseSummary reads a frame's summary (checked by parseFrame).
func parseSummary(b []byte) []Summary {
	count, k := binary.Uvarint(b)
	b = b[k:]
	out := make([]Summary, 0, count)
	next := func() []byte {
		n, k := binary.Uvarint(b)
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v
	}
	for range count {
		var s Summary
		s.Name = string(next())
		if a, ok := netip.AddrFromSlice(next()); ok {
			s.Addr = a
		}
		s.MAC, s.Vendor = string(next()), string(next())
		c, k := binary.Uvarint(b)
		b = b[k:]
		s.Count = int(c)
		out = append(out, s)
	}
	return out
}

// summarize makes the summary of decoded entries.
func summarize(entries []Entry) []Summary {
	idx := map[Summary]int{}
	var out []Summary
	for i := range entries {
		e := &entries[i]
		k := Summary{Name: e.ClientName, Addr: e.ClientAddr, MAC: e.MAC, Vendor: e.Vendor}
		if j, ok := idx[k]; ok {
			out[j].Count++
			continue
		}
		idx[k] = len(out)
		k.Count = 1
		out = append(out, k)
	}
	return out
}
