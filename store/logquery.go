package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// LogFilter selects log entries. Zero fields match everything.
type LogFilter struct {
	Client string    // client identity: its name, or its address if unnamed
	Vendor string    // exact vendor tag
	List   string    // exact list name
	Name   string    // the name and its subdomains
	Since  time.Time // inclusive
	Until  time.Time // exclusive; zero means now
	// Allowed reads the log of allowed lookups instead of blocked ones.
	Allowed bool
	// Limit bounds the entries returned (default 100, at most 1000).
	Limit int
	// Cursor continues a previous page (LogPage.Next).
	Cursor string
}

// LogPage is one page of entries, newest first.
type LogPage struct {
	Entries []LogEntry `json:"entries"`
	// Next is the cursor of the following page; empty at the end.
	Next string `json:"next,omitempty"`
}

// maxScan bounds the entries one request examines, so a filter matching
// little over a long window answers with a cursor instead of scanning the
// whole month in one go.
const maxScan = 500_000

// ErrBadCursor means a cursor was not produced by this store.
var ErrBadCursor = errors.New("invalid cursor")

func (f *LogFilter) matches(e *LogEntry) bool {
	if f.Vendor != "" && !strings.EqualFold(e.Vendor, f.Vendor) {
		return false
	}
	if f.List != "" && e.List != f.List {
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

// LogEntries returns entries matching f, newest first.
func (s *Store) LogEntries(f LogFilter) (LogPage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	until := f.Until
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	var page LogPage
	prefix := timePrefix(!f.Allowed)
	if f.Client != "" {
		prefix = clientPrefix(!f.Allowed, f.Client)
	}
	start := appendStamp(slices.Clone(prefix), until, 0)
	if f.Cursor != "" {
		c, err := hex.DecodeString(f.Cursor)
		if err != nil || !bytes.HasPrefix(c, prefix) {
			return page, ErrBadCursor
		}
		start = c
	}
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = prefix
		opts.PrefetchValues = f.Client == ""
		it := txn.NewIterator(opts)
		defer it.Close()
		scanned := 0
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			key := item.KeyCopy(nil)
			if bytes.Equal(key, start) {
				continue // the cursor's own entry, or an exact "until"
			}
			if len(key) < len(prefix)+12 {
				continue
			}
			ts := time.Unix(0, int64(beUint64(key[len(key)-12:])))
			if !f.Since.IsZero() && ts.Before(f.Since) {
				return nil
			}
			if scanned++; scanned > maxScan {
				page.Next = hex.EncodeToString(key)
				return nil
			}
			e, err := s.entryFor(txn, !f.Allowed, key, item, f.Client != "")
			if err != nil {
				continue // expired between index and entry, or damaged
			}
			if !f.matches(&e) {
				continue
			}
			page.Entries = append(page.Entries, e)
			if len(page.Entries) == f.Limit {
				page.Next = hex.EncodeToString(key)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("reading the query log: %w", err)
	}
	return page, nil
}

// entryFor decodes the entry of a time-index item, or follows a client
// index key to its entry.
func (s *Store) entryFor(txn *badger.Txn, blocked bool, key []byte, item *badger.Item, viaIndex bool) (LogEntry, error) {
	if viaIndex {
		tk := append(timePrefix(blocked), key[len(key)-12:]...)
		var err error
		if item, err = txn.Get(tk); err != nil {
			return LogEntry{}, err
		}
		key = tk
	}
	var e LogEntry
	err := item.Value(func(v []byte) error {
		var derr error
		e, derr = decodeEntry(key, v)
		return derr
	})
	return e, err
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// ClientSummary is what one client looked up over a window.
type ClientSummary struct {
	Client  string         `json:"client"`
	Name    string         `json:"name,omitempty"`
	Addrs   []string       `json:"addrs"`
	Total   int            `json:"total"`
	Vendors map[string]int `json:"vendors"`
	Lists   map[string]int `json:"lists"`
	First   time.Time      `json:"first"`
	Last    time.Time      `json:"last"`
}

// scanWindow calls fn for every blocked entry in [since, until), oldest
// first, optionally for one client only.
func (s *Store) scanWindow(client string, since, until time.Time, fn func(*LogEntry)) error {
	prefix := timePrefix(true)
	if client != "" {
		prefix = clientPrefix(true, client)
	}
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = client == ""
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(appendStamp(slices.Clone(prefix), since, 0)); it.Valid(); it.Next() {
			item := it.Item()
			key := item.KeyCopy(nil)
			if len(key) < len(prefix)+12 {
				continue
			}
			if ts := time.Unix(0, int64(beUint64(key[len(key)-12:]))); !ts.Before(until) {
				return nil
			}
			e, err := s.entryFor(txn, true, key, item, client != "")
			if err != nil {
				continue
			}
			fn(&e)
		}
		return nil
	})
}

func (cs *ClientSummary) add(e *LogEntry) {
	if cs.Total == 0 {
		cs.First = e.Time
	}
	cs.Total++
	cs.Last = e.Time
	cs.Vendors[e.Vendor]++
	cs.Lists[e.List]++
	if a := e.ClientAddr.String(); !slices.Contains(cs.Addrs, a) && len(cs.Addrs) < 16 {
		cs.Addrs = append(cs.Addrs, a)
	}
}

func newSummary(e *LogEntry) *ClientSummary {
	return &ClientSummary{Client: e.Client, Name: e.ClientName, Vendors: map[string]int{}, Lists: map[string]int{}}
}

// LogClients summarises every client with blocked lookups in the window,
// most blocked first.
func (s *Store) LogClients(since, until time.Time) ([]ClientSummary, error) {
	byClient := map[string]*ClientSummary{}
	err := s.scanWindow("", since, until, func(e *LogEntry) {
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

// LogClient summarises one client's blocked lookups in the window.
func (s *Store) LogClient(client string, since, until time.Time) (ClientSummary, error) {
	cs := &ClientSummary{Client: client, Vendors: map[string]int{}, Lists: map[string]int{}}
	err := s.scanWindow(client, since, until, func(e *LogEntry) {
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

// LogTop returns the n most blocked names, clients and vendors in the
// window.
func (s *Store) LogTop(since, until time.Time, n int) (TopReport, error) {
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
	err := s.scanWindow("", since, until, func(e *LogEntry) {
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
