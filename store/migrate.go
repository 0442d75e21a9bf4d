package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// legacyLogPrefix holds the per-client log of versions that kept it in
// Badger: "q/<kind>/t/<stamp>" blocks and "q/<kind>/c/..." client indices.
var legacyLogPrefix = []byte("q/")

// migrateLog moves a Badger-based log of an earlier version into
// segments, oldest block first, then drops it from Badger. It runs at
// open, once: afterwards there are no "q/" keys left.
func (s *Store) migrateLog() error {
	found := false
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: legacyLogPrefix})
		defer it.Close()
		it.Rewind()
		found = it.Valid()
		return nil
	}); err != nil || !found {
		return err
	}
	var bb blockBuilder
	var arena []byte
	var recs []record
	moved := 0
	for _, blocked := range []bool{true, false} {
		prefix := []byte("q/a/t/")
		if blocked {
			prefix[2] = 'b'
		}
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var entries []LogEntry
				if err := it.Item().Value(func(v []byte) error {
					var err error
					entries, err = decodeBlock(v)
					return err
				}); err != nil {
					continue // damaged or expired: nothing to move
				}
				// A block's entries are in time order.
				arena = arena[:0]
				for i := range entries {
					arena = appendRecord(arena, &entries[i], false)
				}
				var err error
				if recs, err = parseRecords(recs[:0], arena); err != nil {
					return err
				}
				if err := bb.add(arena, recs, blocked, s.segs.appendFrame); err != nil {
					return err
				}
				moved += len(entries)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("moving the query log: %w", err)
		}
	}
	if err := s.segs.close(); err != nil {
		return fmt.Errorf("moving the query log: %w", err)
	}
	if err := s.db.DropPrefix(legacyLogPrefix); err != nil {
		return fmt.Errorf("dropping the moved query log from badger: %w", err)
	}
	s.log.Info("query log moved out of badger into segment files", zap.Int("entries", moved), zap.String("dir", s.segs.dir))
	return nil
}
