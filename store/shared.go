package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Shared state: what a fleet's replicas share (store/fleet) — the names
// allowed now, the exceptions, the names given to devices and the devices
// moved between groups. Every write of one records its version beside it,
// "S/<key>" -> 8-byte version (Unix microseconds) and a deleted flag, so
// that replicas can merge their changes, the latest of each key winning,
// and a deletion is remembered as one (a tombstone) rather than forgotten.
const sharedMetaPrefix = "S/"

// sharedPrefixes are the key spaces the fleet shares.
var sharedPrefixes = []string{allowPrefix, exceptionPrefix, namePrefix, assignmentPrefix}

// SharedChange is one shared key's latest state.
type SharedChange struct {
	Key     string // the store key, e.g. "a/example.org"
	Value   []byte // nil when Deleted
	Deleted bool
	Version int64 // Unix microseconds of the change; 0 for a key written before versions were kept
}

// ObserveShared has fn called with every change written here, after it
// is committed (the fleet pushes it to the other replicas). Set it before
// the store is shared; nil stops it.
func (s *Store) ObserveShared(fn func(SharedChange)) {
	if fn == nil {
		s.sharedObserver.Store(nil)
		return
	}
	s.sharedObserver.Store(&fn)
}

// IsShared reports whether key is in a shared key space.
func IsShared(key string) bool {
	for _, p := range sharedPrefixes {
		if strings.HasPrefix(key, p) && len(key) > len(p) {
			return true
		}
	}
	return false
}

// nextVersion returns a version later than any this store handed out
// before, from the wall clock in microseconds.
func (s *Store) nextVersion() int64 {
	now := time.Now().UnixMicro()
	for {
		last := s.lastVersion.Load()
		v := max(now, last+1)
		if s.lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
}

func sharedMeta(version int64, deleted bool) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(version))
	if deleted {
		return append(b, 1)
	}
	return append(b, 0)
}

func parseSharedMeta(b []byte) (version int64, deleted bool) {
	if len(b) < 9 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), b[8] == 1
}

// setShared writes a shared key (value nil and deleted to delete it) with
// a new version, then tells the observer.
func (s *Store) setShared(what, key string, value []byte, deleted bool) error {
	c := SharedChange{Key: key, Value: value, Deleted: deleted, Version: s.nextVersion()}
	err := s.write(what, func(db *badger.DB) error { return db.Update(func(txn *badger.Txn) error { return putShared(txn, c) }) })
	if err != nil {
		return err
	}
	if fn := s.sharedObserver.Load(); fn != nil {
		(*fn)(c)
	}
	return nil
}

func putShared(txn *badger.Txn, c SharedChange) error {
	var err error
	if c.Deleted {
		err = txn.Delete([]byte(c.Key))
	} else {
		err = txn.Set([]byte(c.Key), c.Value)
	}
	if err != nil {
		return err
	}
	return txn.Set([]byte(sharedMetaPrefix+c.Key), sharedMeta(c.Version, c.Deleted))
}

// ApplyShared applies a change another replica made, if it is newer than
// what this store holds for the key; the observer is not told (it came
// from the fleet). It reports whether the change was applied.
func (s *Store) ApplyShared(c SharedChange) (bool, error) {
	if !IsShared(c.Key) {
		return false, fmt.Errorf("applying a shared change: %q is not a shared key", c.Key)
	}
	applied := false
	err := s.write("applying a change from the fleet to "+c.Key, func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			if it, err := txn.Get([]byte(sharedMetaPrefix + c.Key)); err == nil {
				var have int64
				_ = it.Value(func(v []byte) error { have, _ = parseSharedMeta(v); return nil })
				if have >= c.Version {
					return nil // ours is as new or newer
				}
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			applied = true
			return putShared(txn, c)
		})
	})
	if err != nil {
		return false, err
	}
	if c.Version > s.lastVersion.Load() {
		s.lastVersion.Store(c.Version) // our next change must come after it
	}
	return applied, nil
}

// SharedState returns every shared key's latest state, values and
// deletions alike: what a replica brings to the fleet's merge.
func (s *Store) SharedState() ([]SharedChange, error) {
	byKey := map[string]*SharedChange{}
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			for _, p := range sharedPrefixes {
				opts := badger.DefaultIteratorOptions
				opts.Prefix = []byte(p)
				it := txn.NewIterator(opts)
				for it.Rewind(); it.Valid(); it.Next() {
					k := string(it.Item().Key())
					if p == allowPrefix && strings.ContainsRune(k[len(p):], '/') {
						continue // an old alert key (alerts.go), not a name
					}
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						it.Close()
						return err
					}
					byKey[k] = &SharedChange{Key: k, Value: v}
				}
				it.Close()
			}
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(sharedMetaPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := string(it.Item().Key()[len(sharedMetaPrefix):])
				var version int64
				var deleted bool
				_ = it.Item().Value(func(v []byte) error { version, deleted = parseSharedMeta(v); return nil })
				c := byKey[k]
				if c == nil {
					if !deleted {
						continue // a version without its key: deleted outside setShared
					}
					c = &SharedChange{Key: k, Deleted: true}
					byKey[k] = c
				}
				c.Version = version
			}
			return nil
		})
	})
	out := make([]SharedChange, 0, len(byKey))
	for _, c := range byKey {
		out = append(out, *c)
	}
	return out, err
}

// sharedState is the part of Store for shared changes.
type sharedState struct {
	sharedObserver atomic.Pointer[func(SharedChange)]
	lastVersion    atomic.Int64
}
