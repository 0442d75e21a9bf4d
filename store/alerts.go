package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// What the alerts have seen and sent, so that a restart announces nothing
// twice: "A/s/<key>" -> empty for each thing seen (a device, a device's
// vendor, a failing source), and "A/l/<8-byte time><seq>" -> an alert
// sent, as JSON.
//
// Until December 2026 these keys were "a/s/", "a/l/" and "a/d/", inside
// the allowed names' "a/" space, where ListAllowed took them for names;
// moveAlertKeys moves them at the first writable open.

const (
	alertSeenPrefix = "A/s/"
	alertLogPrefix  = "A/l/"
	alertDataKey    = "A/d/"
	oldAlertPrefix  = "a/" // followed by s/, l/ or d/
)

// moveAlertKeys moves the alerts' keys written under the old prefixes to
// their own namespace. It runs once per writable open; after the first,
// there is nothing to move.
func (s *Store) moveAlertKeys() error {
	var keys, values [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, sub := range []string{"s/", "l/", "d/"} {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(oldAlertPrefix + sub)
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				keys, values = append(keys, it.Item().KeyCopy(nil)), append(values, v)
			}
			it.Close()
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, k := range keys {
		nk := append([]byte("A/"), k[len(oldAlertPrefix):]...)
		if err := wb.Set(nk, values[i]); err != nil {
			return err
		}
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.log.Info("moved the alerts' keys to their own namespace", zap.Int("keys", len(keys)))
	return nil
}

// AlertSeen returns every key marked seen under prefix (the part after
// "a/s/").
func (s *Store) AlertSeen(prefix string) (map[string]bool, error) {
	out := map[string]bool{}
	p := []byte(alertSeenPrefix + prefix)
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = p
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				out[string(it.Item().Key()[len(alertSeenPrefix):])] = true
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading what the alerts have seen: %w", err)
	}
	return out, nil
}

// MarkAlertSeen marks keys seen.
func (s *Store) MarkAlertSeen(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return s.write("recording what the alerts have seen", func(db *badger.DB) error {
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range keys {
			if err := wb.Set([]byte(alertSeenPrefix+k), nil); err != nil {
				return err
			}
		}
		return wb.Flush()
	})
}

// PutAlert keeps an alert sent at t (JSON), for the history; entries older
// than retention go.
func (s *Store) PutAlert(t time.Time, seq uint32, body []byte) error {
	key := binary.BigEndian.AppendUint64([]byte(alertLogPrefix), uint64(t.UnixNano()))
	key = binary.BigEndian.AppendUint32(key, seq)
	return s.write("recording an alert", func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			return txn.SetEntry(badger.NewEntry(key, body).WithTTL(90 * 24 * time.Hour))
		})
	})
}

// ListAlerts returns the alerts sent since, newest first, at most limit.
func (s *Store) ListAlerts(since time.Time, limit int) ([][]byte, error) {
	var out [][]byte
	err := s.viewAll(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Reverse = true
			it := txn.NewIterator(opts)
			defer it.Close()
			floor := binary.BigEndian.AppendUint64([]byte(alertLogPrefix), uint64(max(since.UnixNano(), 0)))
			for it.Seek(append([]byte(alertLogPrefix), 0xff)); it.ValidForPrefix([]byte(alertLogPrefix)); it.Next() {
				if string(it.Item().Key()) < string(floor) || len(out) >= limit {
					break
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the alerts: %w", err)
	}
	return out, nil
}

// UnmarkAlertSeen forgets keys (a mute lifted).
func (s *Store) UnmarkAlertSeen(keys []string) error {
	return s.write("updating what the alerts have seen", func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete([]byte(alertSeenPrefix + k)); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// alertDataKey ("A/d/<name>") holds the alerts' working data (the hourly
// counts spike compares with), so that a restart need not read the week's
// log again.

// PutAlertData keeps the alerts' working data under name.
func (s *Store) PutAlertData(name string, v []byte) error {
	return s.write("recording the alerts' counts", func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(alertDataKey+name), v) })
	})
}

// AlertData returns the alerts' working data kept under name; nil when
// there is none.
func (s *Store) AlertData(name string) ([]byte, error) {
	var out []byte
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			it, err := txn.Get([]byte(alertDataKey + name))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			out, err = it.ValueCopy(nil)
			return err
		})
	})
	return out, err
}
