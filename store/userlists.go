package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Lists changed from the dashboard, the API or the CLI: "L/<name>" -> the
// JSON of a list added there, "E/<name>" -> "1" or "0", a list turned on
// or off there (over what the configuration says).

const (
	addedListPrefix = "L/"
	listSwitch      = "E/"
)

// PutAddedList keeps a list added by hand, as JSON.
func (s *Store) PutAddedList(name string, list []byte) error {
	return s.write("storing list "+name, func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(addedListPrefix+name), list) })
	})
}

// DeleteAddedList forgets a list added by hand, and its switch.
func (s *Store) DeleteAddedList(name string) error {
	return s.write("deleting list "+name, func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			if err := txn.Delete([]byte(addedListPrefix + name)); err != nil {
				return err
			}
			return txn.Delete([]byte(listSwitch + name))
		})
	})
}

// PutListSwitch records a list turned on or off by hand.
func (s *Store) PutListSwitch(name string, on bool) error {
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	return s.write("switching list "+name, func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(listSwitch+name), v) })
	})
}

// UserLists returns the lists added by hand (name -> JSON) and the lists
// switched by hand (name -> on).
func (s *Store) UserLists() (added map[string][]byte, switched map[string]bool, err error) {
	added, switched = map[string][]byte{}, map[string]bool{}
	err = s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			it := txn.NewIterator(opts)
			defer it.Close()
			for _, p := range []string{addedListPrefix, listSwitch} {
				for it.Seek([]byte(p)); it.ValidForPrefix([]byte(p)); it.Next() {
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return err
					}
					name := string(it.Item().Key()[len(p):])
					if p == addedListPrefix {
						added[name] = v
					} else {
						switched[name] = string(v) == "1"
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listing lists changed by hand: %w", err)
	}
	return added, switched, nil
}
