// Package store is Vigil's persistent state in Badger: the last good copy
// of every blocklist source (lists.go), the names allowed now from the
// dashboard or API (allow.go), the exceptions per device and group
// (exceptions.go), devices moved between groups (assignments.go) and
// named by hand (names.go), the lists added or switched by hand
// (userlists.go), what the alerts have seen and sent (alerts.go), the
// answer cache's snapshot (snapshot.go) and the hourly totals of the
// dashboard's charts (series.go). It is the only package that imports
// Badger, and its API carries no DNS library types.
//
// The per-client log is not here: it is package querylog, in segment
// files under <store.dir>/querylog/, beside Badger's files. The store
// watches the free space of that file system (RunDiskWatch, LowDisk) so
// the log can pause before the disk fills.
//
// Key schema (every key starts with a one-byte-plus-slash namespace so the
// spaces never overlap and each is one prefix scan):
//
//	l/<source id>/meta                             list copy metadata (JSON)
//	l/<source id>/body/<gen 16 hex>/<chunk 8 hex>  gzip'd list copy, in chunks
//	a/<name>                                       a name allowed now (no value)
//	x/<scope>\x00<name>                           an exception per device, group or everyone (JSON)
//	m/<client>                                     a device moved between groups (its groups)
//	d/<client>                                     a device's name given by hand
//	L/<list>, E/<list>                             a list added by hand (JSON); switched on or off
//	A/s/<key>, A/l/<time><seq>, A/d/<name>         the alerts: seen, sent (JSON), working data
//	S/<key>                                        a shared key's version and deleted flag (shared.go)
//	s/<name>/meta                                  snapshot metadata (JSON)
//	s/<name>/<gen 16 hex>/<chunk 8 hex>            snapshot data, in chunks
//	h/<unix hour start, 8 bytes BE>                hourly totals (two uint64 BE)
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"
)

// Config is the [store] section.
type Config struct {
	// Dir is the Badger directory; it is created if missing.
	Dir string `toml:"dir"`
	// GCInterval is how often the value-log garbage collector runs.
	GCInterval time.Duration `toml:"gc_interval"`
	// MemTableSize bounds one Badger memtable in bytes; Badger's own
	// default (64 MiB) is large for a router.
	MemTableSize int64 `toml:"memtable_size"`
	// ValueLogFileSize bounds one value-log file in bytes (Badger's
	// default, 1 GiB, is sparse-allocated but still alarming on flash).
	ValueLogFileSize int64 `toml:"value_log_file_size"`
	// MinFreeBytes: while the file system holding Dir has less free space
	// than this, nothing is written to Badger (list copies, cache saves,
	// totals, allow-now: each write is skipped with ErrLowDisk) and the
	// per-client log pauses. Badger crashes the process with SIGBUS when a
	// memory-mapped write hits a full disk, so Vigil stops writing well
	// before that; DNS keeps answering. Keep it above a few tens of MiB
	// (flushReserve): 0 turns the protection off.
	MinFreeBytes int64 `toml:"min_free_bytes"`
}

// DefaultConfig returns the [store] defaults.
func DefaultConfig() Config {
	return Config{
		Dir:              "/var/lib/vigil",
		GCInterval:       10 * time.Minute,
		MemTableSize:     1 << 20,
		ValueLogFileSize: 64 << 20,
		MinFreeBytes:     128 << 20,
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Dir) == "" {
		errs = append(errs, errors.New("store.dir: want a directory path such as \"/var/lib/vigil\""))
	}
	if c.GCInterval <= 0 {
		errs = append(errs, fmt.Errorf("store.gc_interval: want a positive duration such as \"10m\", got %q", c.GCInterval.String()))
	}
	if c.MemTableSize < 1<<20 {
		errs = append(errs, fmt.Errorf("store.memtable_size: want at least 1048576 bytes, got %d", c.MemTableSize))
	}
	if c.ValueLogFileSize < 1<<20 || c.ValueLogFileSize >= 2<<30 {
		errs = append(errs, fmt.Errorf("store.value_log_file_size: want 1048576 to 2147483647 bytes, got %d", c.ValueLogFileSize))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("store.min_free_bytes: want >= 0, got %d", c.MinFreeBytes))
	}
	return errors.Join(errs...)
}

// Store is Vigil's Badger directory. It is safe for concurrent use.
//
// A Store is in one of three modes (Status.Mode): read-write, the normal
// one; read-only, when the directory could not be opened for writing (a
// full disk, a journal Badger cannot replay) but could be read; and
// unavailable, when it could not be opened at all. Reads work in the
// first two; writes only in the first, and only while the disk has room
// (write). OpenForServe never fails for a full or damaged disk: it opens
// what it can, and RunReopen takes the directory for writing once it can.
type Store struct {
	cfg         Config
	log         *zap.Logger
	sharedState // the fleet's shared keys' observer and versions (shared.go)

	// mu guards db, mode, cause and viewDir: every operation holds it for
	// reading while it uses db, a switch between modes for writing.
	mu      sync.RWMutex
	db      *badger.DB // nil when unavailable
	mode    Mode
	cause   error  // why the store is not read-write; nil when it is
	viewDir string // the read-only view's directory, removed on close
	// viewLock holds a shared lock on Dir while the view is open, as
	// Badger's own read-only open would: a server holding Dir for writing
	// keeps the CLI out, and the view keeps a writer out.
	viewLock io.Closer

	// lowDisk is set while free space is under MinFreeBytes.
	lowDisk atomic.Bool
	// dirty is set once a write went to the memtable since it was last
	// flushed: closing must then write a table.
	dirty atomic.Bool
	// skipped counts writes refused by the guard.
	skipped atomic.Uint64
	// freeBytes reads free space; a field so tests can fake a full disk.
	freeBytes func(string) (uint64, error)
}

// Mode is how the store is open.
type Mode string

// The modes of a Store.
const (
	ReadWrite   Mode = "read-write"
	ReadOnly    Mode = "read-only"
	Unavailable Mode = "unavailable"
)

// ErrLocked means another process holds the directory.
var ErrLocked = errors.New("directory is locked by another process")

// ErrLowDisk means a write was skipped because the file system holding
// the store has less free space than store.min_free_bytes. Nothing was
// saved; the caller goes on (see NotSaved).
var ErrLowDisk = errors.New("disk almost full (under store.min_free_bytes): not saved")

// ErrReadOnly means a write was skipped because the store is not open for
// writing (Status.Mode is read-only or unavailable). Nothing was saved.
var ErrReadOnly = errors.New("store is not open for writing: not saved")

// errUnavailable is what reads return while no database is open. It
// matches ErrNotFound, so that callers treat it as "no stored copy".
var errUnavailable = fmt.Errorf("store is unavailable: %w", ErrNotFound)

// NotSaved reports whether err is a write the store skipped on purpose
// (ErrLowDisk or ErrReadOnly): expected while the disk is full, reported
// once by the store, not worth a log line per write.
func NotSaved(err error) bool { return errors.Is(err, ErrLowDisk) || errors.Is(err, ErrReadOnly) }

// Status is what the store reports about itself (for health checks).
type Status struct {
	Mode Mode `json:"mode"`
	// LowDisk is set while free space is under min_free_bytes.
	LowDisk bool `json:"low_disk"`
	// SkippedWrites counts writes skipped since start (low disk or not
	// writable).
	SkippedWrites uint64 `json:"skipped_writes"`
	// Error says why the store is not read-write.
	Error string `json:"error,omitempty"`
}

// Status returns the store's mode and counters.
func (s *Store) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Status{Mode: s.mode, LowDisk: s.lowDisk.Load(), SkippedWrites: s.skipped.Load()}
	if s.cause != nil {
		st.Error = s.cause.Error()
	}
	return st
}

// Degraded reports whether the store is not open for writing.
func (s *Store) Degraded() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mode != ReadWrite
}

// badgerOptions are Badger's options for cfg.
func badgerOptions(cfg Config, log *zap.Logger) badger.Options {
	return badger.DefaultOptions(cfg.Dir).
		// Not WithLoggingLevel: it replaces the logger with Badger's own.
		WithLogger(badgerLogger{log.Sugar()}).
		WithMemTableSize(cfg.MemTableSize).
		WithValueLogFileSize(cfg.ValueLogFileSize).
		// List copies are stored in small chunks (listChunk, lists.go) below this
		// threshold, so everything lives in the LSM tree, where replaced
		// and expired entries are reclaimed by compaction.
		WithValueThreshold(listChunk + 1024).
		WithNumMemtables(2).
		// Badger sizes its table builders from these (two times the table
		// size each, up to eight pooled, and a compaction runs eight or
		// more at once): small tables keep what a compaction holds to a
		// few MiB. Measured over refreshes of a 1M-name list: builders
		// held 41 MB with 1 MiB tables, 10 MB with 256 KiB.
		WithBaseTableSize(256 << 10).
		WithBaseLevelSize(4 << 20).
		// Let up to eight level-0 tables pile up before compacting them:
		// compactions are what hold Badger's table builders (and their
		// memory) busy. Measured when the per-client log still lived in
		// Badger, 1M names under a saturating blocked load: RSS after the
		// load 299 -> 211 MiB with eight instead of two. The price is disk:
		// replaced list copies linger until that compaction (a sawtooth
		// bounded by about eight memtables).
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(16).
		// The bulk of what Vigil stores, list copies, is gzip'd already,
		// so Badger's block compression gains little, and without it the
		// block cache is not needed either:
		// reads go straight to the memory-mapped tables.
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		// Vigil never has two writers race for a key: no conflict
		// tracking needed.
		WithDetectConflicts(false).
		// No compaction at close: Badger writes tables through memory
		// maps, and on a full disk that write is a SIGBUS, not an error.
		// Close must write nothing when the memtable is empty (Close).
		WithCompactL0OnClose(false)
}

// Open opens (creating if needed) the Badger directory in cfg.Dir: for
// writing when the disk has room (free space at least MinFreeBytes), else
// read-only, since Badger's open itself writes through memory maps and a
// full disk would crash the process. A directory that cannot be opened
// for writing is opened read-only (see Status). It fails when the
// directory is locked by another process (ErrLocked) or cannot be read.
// The CLI uses it; the server uses OpenForServe.
func Open(cfg Config, log *zap.Logger) (*Store, error) {
	s := newStore(cfg, log, freeBytes)
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenForServe is Open for the server: a directory that cannot be opened
// at all gives a Store in Unavailable mode rather than an error, so that
// DNS is served (with no stored lists) whatever the disk's state. Only a
// directory locked by another process (ErrLocked) is an error. When the
// result is Degraded, run RunReopen.
func OpenForServe(cfg Config, log *zap.Logger) (*Store, error) {
	return openForServe(cfg, log, freeBytes)
}

// openForServe is OpenForServe with the free-space function (tests fake
// a full disk with it).
func openForServe(cfg Config, log *zap.Logger, free func(string) (uint64, error)) (*Store, error) {
	s := newStore(cfg, log, free)
	if err := s.open(); err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		s.mode, s.cause = Unavailable, err
		log.Error("the store cannot be opened: serving DNS without stored lists, cache or totals, and retrying in the background",
			zap.String("dir", cfg.Dir), zap.Error(err))
	}
	return s, nil
}

func newStore(cfg Config, log *zap.Logger, free func(string) (uint64, error)) *Store {
	return &Store{cfg: cfg, log: log, mode: Unavailable, freeBytes: free}
}

// open opens the directory read-write when there is room, else (or when
// that fails) read-only. It sets db, mode and cause.
func (s *Store) open() error {
	if err := os.MkdirAll(s.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("creating store directory %s: %w", s.cfg.Dir, err)
	}
	s.checkDisk()
	if !s.lowDisk.Load() {
		db, err := s.openWritable()
		if err == nil {
			s.db, s.mode, s.cause = db, ReadWrite, nil
			if err := s.moveAlertKeys(); err != nil {
				s.log.Warn("moving the alerts' keys to their own namespace", zap.Error(err))
			}
			return nil
		}
		if errors.Is(err, ErrLocked) {
			return err
		}
		s.cause = err
	} else {
		s.cause = fmt.Errorf("opening store %s for writing: %w", s.cfg.Dir, ErrLowDisk)
	}
	db, view, err := s.openReadOnly()
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return err
		}
		if s.cause != nil && !errors.Is(s.cause, ErrLowDisk) {
			return s.cause // the read-write error says more (a damaged directory)
		}
		return err
	}
	s.db, s.mode, s.viewDir = db, ReadOnly, view
	s.log.Error("the store is open read-only: stored lists, the saved cache and totals are read, nothing is saved; retrying in the background",
		zap.String("dir", s.cfg.Dir), zap.Error(s.cause))
	return nil
}

// lockErr reports whether err is Badger's directory lock being held.
func lockErr(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// openWritable opens the directory read-write.
func (s *Store) openWritable() (*badger.DB, error) {
	// An open just after a crash can fail while the previous process's
	// files are still being released; try a few times before giving up.
	var db *badger.DB
	var err error
	for attempt := range 3 {
		if db, err = badger.Open(badgerOptions(s.cfg, s.log)); err == nil || lockErr(err) {
			break
		}
		s.log.Warn("opening the store failed, retrying", zap.String("dir", s.cfg.Dir), zap.Int("attempt", attempt+1), zap.Error(err))
		time.Sleep(time.Duration(attempt+1) * 300 * time.Millisecond)
	}
	if lockErr(err) {
		return nil, fmt.Errorf("opening store %s: %w (is another vigil running? stop it, or point store.dir elsewhere)", s.cfg.Dir, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w (if the directory is damaged, move it aside and start again: "+
			"lists are fetched anew, the per-client log and the saved cache are lost)", s.cfg.Dir, err)
	}
	s.dirty.Store(false) // Badger flushes what it replays, and starts an empty memtable
	return db, nil
}

// openReadOnly opens the directory read-only: Badger then writes nothing
// (no new memtable, no pid file, no compaction). A memtable journal
// (*.mem) left by a crash or by a close on a full disk (see Close) is not
// read: Badger replays it through a memory map, and on a full tmpfs even
// reading a hole of that sparse file faults (SIGBUS); a read-only open
// would refuse it anyway (it wants to truncate it). Then the tables alone
// are opened, through a view: a temporary directory of symbolic links to
// every file but the journals, which is the store as of its last flush.
// It returns the view's directory ("" without one).
func (s *Store) openReadOnly() (*badger.DB, string, error) {
	opts := badgerOptions(s.cfg, s.log).WithReadOnly(true)
	journals, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.mem"))
	if err != nil {
		return nil, "", err
	}
	if len(journals) == 0 {
		db, err := badger.Open(opts)
		if lockErr(err) {
			return nil, "", fmt.Errorf("opening store %s: %w (is another vigil running? stop it, or point store.dir elsewhere)", s.cfg.Dir, ErrLocked)
		}
		if err != nil {
			return nil, "", fmt.Errorf("opening store %s read-only: %w", s.cfg.Dir, err)
		}
		return db, "", nil
	}
	lock, err := lockShared(s.cfg.Dir)
	if err != nil {
		return nil, "", fmt.Errorf("opening store %s: %w (is another vigil running? stop it, or point store.dir elsewhere)", s.cfg.Dir, ErrLocked)
	}
	view, err := s.tablesView()
	if err != nil {
		lock.Close()
		return nil, "", fmt.Errorf("opening store %s read-only without its journal: %w", s.cfg.Dir, err)
	}
	db, err := badger.Open(opts.WithDir(view).WithValueDir(view))
	if err != nil {
		lock.Close()
		_ = os.RemoveAll(view)
		return nil, "", fmt.Errorf("opening store %s read-only without its journal: %w", s.cfg.Dir, err)
	}
	s.viewLock = lock
	s.log.Warn("the store holds writes that were never flushed (a crash, or a stop on a full disk): reading it as of its last flush; "+
		"they come back once it opens for writing", zap.String("dir", s.cfg.Dir))
	return db, view, nil
}

// tablesView makes a temporary directory of symbolic links to the
// store's files, journals (*.mem) and lock excepted. The links take no
// data blocks, so this works on a full disk when the temporary directory
// can be created (in the system's temporary directory).
func (s *Store) tablesView() (string, error) {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(s.cfg.Dir)
	if err != nil {
		return "", err
	}
	view, err := os.MkdirTemp("", "vigil-store-view-")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".mem") || name == "LOCK" {
			continue
		}
		if err := os.Symlink(filepath.Join(abs, name), filepath.Join(view, name)); err != nil {
			_ = os.RemoveAll(view)
			return "", err
		}
	}
	return view, nil
}

// LowDisk reports whether free space is under MinFreeBytes, so that the
// per-client log pauses (querylog.Log.PauseWhen). Safe for concurrent use.
func (s *Store) LowDisk() bool { return s.lowDisk.Load() }

// flushReserve is the free space Badger needs to write what it holds in
// memory to tables and compact level 0 (its memtables, a level-0
// compaction's output) without hitting a full disk. Below it, Vigil
// makes Badger write nothing at all.
func (s *Store) flushReserve() uint64 {
	return uint64(4*s.cfg.MemTableSize) + 16<<20
}

// checkDisk updates the low-disk flag, logging changes: once per episode,
// not per write. On the way down it flushes the memtable while the disk
// still has room, so that nothing is left that Badger would have to write
// later (at close) with no room at all.
func (s *Store) checkDisk() {
	free, err := s.freeBytes(s.cfg.Dir)
	if err != nil {
		return
	}
	low := int64(min(free, 1<<62)) < s.cfg.MinFreeBytes
	if s.lowDisk.Swap(low) == low {
		return
	}
	if !low {
		s.log.Info("disk space back: saving to the store and writing the per-client log again",
			zap.Uint64("free_bytes", free), zap.Uint64("skipped_writes", s.skipped.Load()))
		return
	}
	s.log.Error("disk almost full: nothing is saved to the store and the per-client log pauses until space returns (DNS keeps answering)",
		zap.String("dir", s.cfg.Dir), zap.Uint64("free_bytes", free), zap.Int64("min_free_bytes", s.cfg.MinFreeBytes))
	s.flush()
}

// flushMarker is a key written and dropped to make Badger flush its
// memtable (DropPrefix flushes before dropping; Badger has no plain flush).
var flushMarker = []byte("!vigil-flush")

// flush writes the memtable to a table now, when it holds anything and
// the disk has room for it (flushReserve). A read-only open, which skips
// the memtable's journal, then still sees what was written.
//
// It holds mu for writing: DropPrefix blocks Badger's writes while it
// runs, and a write racing it would fail ("Writes are blocked").
func (s *Store) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode != ReadWrite || !s.dirty.Load() {
		return
	}
	if free, err := s.freeBytes(s.cfg.Dir); err != nil || free < s.flushReserve() {
		return
	}
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(flushMarker, nil) })
	if err == nil {
		err = s.db.DropPrefix(flushMarker)
	}
	if err != nil {
		s.log.Warn("flushing the store's memtable", zap.Error(err))
		return
	}
	s.dirty.Store(false)
}

// write runs fn on the database if it is open for writing and the disk
// has room, else returns ErrReadOnly or ErrLowDisk (wrapped with what)
// and counts the skip. Every write to Badger goes through it: Badger
// writes through memory maps, and on a full disk a write (or the memtable
// flush it triggers) kills the process with SIGBUS.
func (s *Store) write(what string, fn func(db *badger.DB) error) error {
	s.checkDisk()
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.mode != ReadWrite:
		s.skipped.Add(1)
		return fmt.Errorf("%s: %w", what, ErrReadOnly)
	case s.lowDisk.Load():
		s.skipped.Add(1)
		return fmt.Errorf("%s: %w", what, ErrLowDisk)
	}
	s.dirty.Store(true)
	if err := fn(s.db); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// view runs fn on the database if one is open.
func (s *Store) view(fn func(db *badger.DB) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return errUnavailable
	}
	return fn(s.db)
}

// viewAll is view for the readers that list what is kept (allowed names,
// exceptions, names, moves, alerts): with no database open, nothing can
// be read, and that is an empty list, not an error — the dashboard's
// pages and the CLI still show, with the store's state reported apart.
func (s *Store) viewAll(fn func(db *badger.DB) error) error {
	if err := s.view(fn); !errors.Is(err, errUnavailable) {
		return err
	}
	return nil
}

// RunDiskWatch checks free space every few seconds until ctx ends.
func (s *Store) RunDiskWatch(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.checkDisk()
		}
	}
}

// RunReopen tries, with backoff, to open a degraded store for writing
// until it succeeds or ctx ends; then it calls onWritable (the server
// reloads its lists from the store). It returns at once when the store
// is read-write already.
func (s *Store) RunReopen(ctx context.Context, onWritable func()) {
	wait, failures := time.Second, 0
	for s.Degraded() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
		s.checkDisk()
		if s.lowDisk.Load() {
			continue
		}
		if err := s.reopen(); err != nil {
			failures++
			lvl := zap.DebugLevel
			if failures == 1 {
				lvl = zap.WarnLevel
			}
			s.log.Log(lvl, "the store still cannot be opened for writing; retrying", zap.Error(err), zap.Duration("next_in", wait))
			continue
		}
		s.log.Info("store opened for writing: saving again", zap.String("dir", s.cfg.Dir))
		onWritable()
	}
}

// reopen closes the read-only database (its shared lock would stop the
// exclusive one) and opens the directory for writing; on failure it
// opens what it can again.
func (s *Store) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == ReadWrite {
		return nil
	}
	s.closeDB()
	db, err := s.openWritable()
	if err == nil {
		s.db, s.mode, s.cause = db, ReadWrite, nil
		return nil
	}
	s.mode, s.cause = Unavailable, err
	if rdb, view, rerr := s.openReadOnly(); rerr == nil {
		s.db, s.mode, s.viewDir = rdb, ReadOnly, view
	}
	return err
}

// closeDB closes the database and removes the read-only view. s.mu is
// held for writing.
func (s *Store) closeDB() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.viewDir != "" {
		_ = os.RemoveAll(s.viewDir)
		s.viewDir = ""
	}
	if s.viewLock != nil {
		_ = s.viewLock.Close()
		s.viewLock = nil
	}
	return err
}

// Close flushes and closes the directory. On a full disk (less free
// space than Badger needs to write its memtable to a table) with writes
// still in the memtable, it leaves the database as a crash would, rather
// than let Badger's flush fault: the writes are in the memtable's journal
// (written before the disk filled), and the next open for writing replays
// them. It then returns an error wrapping ErrLowDisk.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == ReadWrite && s.dirty.Load() {
		if free, err := s.freeBytes(s.cfg.Dir); err == nil && free < s.flushReserve() {
			s.db, s.mode = nil, Unavailable
			return fmt.Errorf("closing store %s: left unflushed, its journal replays at the next start with space: %w", s.cfg.Dir, ErrLowDisk)
		}
	}
	s.mode = Unavailable
	if err := s.closeDB(); err != nil {
		return fmt.Errorf("closing store %s: %w", s.cfg.Dir, err)
	}
	return nil
}

// RunGC runs Badger's value-log garbage collection every GCInterval until
// ctx ends. Badger never reclaims value-log space by itself: replaced
// values stay on disk until this runs. (The per-client log is not in
// Badger; package querylog deletes its segments by age.)
func (s *Store) RunGC(ctx context.Context) {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.CollectGarbage(); err != nil {
				s.log.Warn("value-log garbage collection failed", zap.Error(err))
			} else if n > 0 {
				s.log.Debug("value-log garbage collected", zap.Int("files_rewritten", n))
			}
		}
	}
}

// CollectGarbage rewrites value-log files that are at least half garbage,
// until none is left, and returns how many it rewrote.
func (s *Store) CollectGarbage() (int, error) {
	n := 0
	for {
		err := s.write("value-log gc", func(db *badger.DB) error { return db.RunValueLogGC(0.5) })
		if NotSaved(err) {
			return n, nil // a rewrite writes: not on a full disk
		}
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// badgerLogger adapts zap's sugared logger to Badger's Logger interface,
// which wants Warningf where zap has Warnf.
type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.s.Errorf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s.Warnf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s.Debugf(strings.TrimSpace(f), a...) } // chatty: compactions, flushes
func (l badgerLogger) Debugf(f string, a ...any)   { l.s.Debugf(strings.TrimSpace(f), a...) }
