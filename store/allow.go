package store

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Names allowed "now" from the dashboard or API, kept until removed:
// "a/<name>" -> empty.

const allowPrefix = "a/"

// PutAllowed records name as allowed.
func (s *Store) PutAllowed(name string) error {
	return s.setShared("storing allowed name "+name, allowPrefix+name, []byte{}, false)
}

// DeleteAllowed forgets name.
func (s *Store) DeleteAllowed(name string) error {
	return s.setShared("deleting allowed name "+name, allowPrefix+name, nil, true)
}

// ListAllowed returns every allowed name, sorted.
func (s *Store) ListAllowed() ([]string, error) {
	var out []string
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = []byte(allowPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				name := string(it.Item().Key()[len(allowPrefix):])
				if strings.ContainsRune(name, '/') {
					continue // an old alert key (alerts.go), never a name
				}
				out = append(out, name)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing allowed names: %w", err)
	}
	return out, nil
}
