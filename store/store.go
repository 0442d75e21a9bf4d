// Package store is Vigil's persistent state in Badger: the last good copy
// of every blocklist source (lists.go), the names allowed now from the
// dashboard or API (allow.go), the answer cache's snapshot (snapshot.go)
// and the hourly totals of the dashboard's charts (series.go). It is the
// only package that imports Badger, and its API carries no DNS library
// types.
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
//	s/<name>/meta                                  snapshot metadata (JSON)
//	s/<name>/<gen 16 hex>/<chunk 8 hex>            snapshot data, in chunks
//	h/<unix hour start, 8 bytes BE>                hourly totals (two uint64 BE)
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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
	// MinFreeBytes pauses the per-client log while the file system holding
	// Dir has less free space than this. Badger crashes the process with
	// SIGBUS when a memory-mapped write hits a full disk, so Vigil stops
	// writing well before that; DNS keeps answering.
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

// Store is an open Badger directory. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	cfg Config
	log *zap.Logger

	// lowDisk is set while free space is under MinFreeBytes.
	lowDisk atomic.Bool
	// freeBytes reads free space; a field so tests can fake a full disk.
	freeBytes func(string) (uint64, error)
}

// ErrLocked means another process holds the directory.
var ErrLocked = errors.New("directory is locked by another process")

// Open opens (creating if needed) the Badger directory in cfg.Dir.
func Open(cfg Config, log *zap.Logger) (*Store, error) {
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating store directory %s: %w", cfg.Dir, err)
	}
	opts := badger.DefaultOptions(cfg.Dir).
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
		WithCompactL0OnClose(true)
	// An open just after a crash can fail while the previous process's
	// files are still being released; try a few times before giving up.
	var db *badger.DB
	var err error
	for attempt := range 3 {
		if db, err = badger.Open(opts); err == nil || strings.Contains(err.Error(), "Cannot acquire directory lock") {
			break
		}
		log.Warn("opening the store failed, retrying", zap.String("dir", cfg.Dir), zap.Int("attempt", attempt+1), zap.Error(err))
		time.Sleep(time.Duration(attempt+1) * 300 * time.Millisecond)
	}
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("opening store %s: %w (is another vigil running? stop it, or point store.dir elsewhere)", cfg.Dir, ErrLocked)
		}
		return nil, fmt.Errorf("opening store %s: %w (if the directory is damaged, move it aside and start again: "+
			"lists are fetched anew, the per-client log and the saved cache are lost)", cfg.Dir, err)
	}
	st := &Store{db: db, cfg: cfg, log: log, freeBytes: freeBytes}
	st.checkDisk()
	return st, nil
}

// LowDisk reports whether free space is under MinFreeBytes, so that the
// per-client log pauses (querylog.Log.PauseWhen). Safe for concurrent use.
func (s *Store) LowDisk() bool { return s.lowDisk.Load() }

// checkDisk updates the low-disk flag, logging changes.
func (s *Store) checkDisk() {
	free, err := s.freeBytes(s.cfg.Dir)
	if err != nil {
		return
	}
	low := int64(min(free, 1<<62)) < s.cfg.MinFreeBytes
	if s.lowDisk.Swap(low) != low {
		if low {
			s.log.Error("disk almost full: pausing the per-client log (DNS keeps answering)",
				zap.String("dir", s.cfg.Dir), zap.Uint64("free_bytes", free), zap.Int64("min_free_bytes", s.cfg.MinFreeBytes))
		} else {
			s.log.Info("disk space back: resuming the per-client log", zap.Uint64("free_bytes", free))
		}
	}
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

// Close flushes and closes the directory.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
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
		err := s.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("value-log gc: %w", err)
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
