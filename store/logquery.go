package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// cursor is a position in the log: a block's key suffix (first entry
// time and sequence) and an entry index in it.
type cursor struct {
	suffix []byte // 12 bytes
	index  int    // next entry to return is index-1 (newest first)
}

func (c cursor) String() string { return hex.EncodeToString(c.suffix) + "." + strconv.Itoa(c.index) }

func parseCursor(s string) (cursor, error) {
	h, i, ok := strings.Cut(s, ".")
	b, err := hex.DecodeString(h)
	n, nerr := strconv.Atoi(i)
	if !ok || err != nil || nerr != nil || len(b) != 12 || n < 0 {
		return cursor{}, ErrBadCursor
	}
	return cursor{suffix: b, index: n}, nil
}

// scanSlack is how far before a window's start blocks are still read: a
// block is keyed by its oldest entry, and entries of one flush interval
// share a block.
const scanSlack = time.Minute

// walkBlocks calls fn for each block of the kind, newest block first, that
// may hold entries in [since, until). For a client, only its entries in
// each block are passed. fn returns false to stop.
func (s *Store) walkBlocks(txn *badger.Txn, blocked bool, client string, since, until time.Time, from []byte,
	fn func(suffix []byte, entries []LogEntry) bool) error {
	prefix := timePrefix(blocked)
	if client != "" {
		prefix = clientPrefix(blocked, client)
	}
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	start := appendStamp(slices.Clone(prefix), until, ^uint32(0))
	if from != nil {
		start = append(slices.Clone(prefix), from...)
	}
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		if len(key) != len(prefix)+12 {
			continue
		}
		suffix := slices.Clone(key[len(prefix):])
		var entries []LogEntry
		err := item.Value(func(v []byte) error {
			if client == "" {
				if newest, ok := blockNewest(v); ok && !since.IsZero() && newest.Before(since.Add(-scanSlack)) {
					return errStop
				}
				var err error
				entries, err = decodeBlock(v)
				return err
			}
			// A client index: follow it to the block, keep the client's entries.
			bi, err := txn.Get(append(timePrefix(blocked), suffix...))
			if err != nil {
				return err
			}
			var all []LogEntry
			if err := bi.Value(func(bv []byte) error {
				if newest, ok := blockNewest(bv); ok && !since.IsZero() && newest.Before(since.Add(-scanSlack)) {
					return errStop
				}
				all, err = decodeBlock(bv)
				return err
			}); err != nil {
				return err
			}
			count, k := binary.Uvarint(v)
			v = v[max(k, 0):]
			for range count {
				i, k := binary.Uvarint(v)
				if k <= 0 {
					break
				}
				v = v[k:]
				if i < uint64(len(all)) {
					entries = append(entries, all[i])
				}
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			continue // expired between index and block, or damaged: skip it
		}
		if !fn(suffix, entries) {
			return nil
		}
	}
	return nil
}

var errStop = errors.New("stop")

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
	var from []byte
	resume := -1
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return LogPage{}, err
		}
		from, resume = c.suffix, c.index
	}
	var page LogPage
	scanned := 0
	err := s.db.View(func(txn *badger.Txn) error {
		return s.walkBlocks(txn, !f.Allowed, f.Client, f.Since, until, from, func(suffix []byte, entries []LogEntry) bool {
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
	Total   int            `json:"total"`
	Vendors map[string]int `json:"vendors"`
	Lists   map[string]int `json:"lists"`
	First   time.Time      `json:"first"`
	Last    time.Time      `json:"last"`
}

// scanWindow calls fn for every blocked entry in [since, until), optionally
// for one client only.
func (s *Store) scanWindow(client string, since, until time.Time, fn func(*LogEntry)) error {
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	return s.db.View(func(txn *badger.Txn) error {
		return s.walkBlocks(txn, true, client, since, until, nil, func(_ []byte, entries []LogEntry) bool {
			for i := range entries {
				if e := &entries[i]; e.Time.Before(until) && !e.Time.Before(since) {
					fn(e)
				}
			}
			return true
		})
	})
}

func (cs *ClientSummary) add(e *LogEntry) {
	if cs.Total == 0 || e.Time.Before(cs.First) {
		cs.First = e.Time
	}
	if e.Time.After(cs.Last) {
		cs.Last = e.Time
	}
	cs.Total++
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
