package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Snapshots are opaque blobs a component saves whole and reads back at
// start (the answer cache, for a warm restart). Like list copies they are
// written as a new generation of chunks, switched to in one small
// transaction, so a crash mid-save leaves the previous snapshot intact:
//
//	s/<name>/meta                  {gen, chunks, saved}
//	s/<name>/<gen 16 hex>/<chunk>  data
type snapshotMeta struct {
	Gen    uint64    `json:"gen"`
	Chunks int       `json:"chunks"`
	Saved  time.Time `json:"saved"`
}

func snapshotMetaKey(name string) []byte { return []byte("s/" + name + "/meta") }

func snapshotPrefix(name string, gen uint64) []byte {
	return fmt.Appendf(nil, "s/%s/%016x/", name, gen)
}

func (s *Store) snapshotMeta(name string) (snapshotMeta, error) {
	var m snapshotMeta
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(snapshotMetaKey(name))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, ErrNotFound
	}
	return m, err
}

// PutSnapshot replaces the snapshot called name with data.
func (s *Store) PutSnapshot(name string, data []byte) error {
	old, err := s.snapshotMeta(name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("saving snapshot %s: %w", name, err)
	}
	m := snapshotMeta{Gen: old.Gen + 1, Saved: time.Now().UTC()}
	return s.write("saving snapshot "+name, func(db *badger.DB) error {
		if m.Chunks, err = writeChunks(db, snapshotPrefix(name, m.Gen), data); err != nil {
			return err
		}
		mb, _ := json.Marshal(m)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(snapshotMetaKey(name), mb) }); err != nil {
			return err
		}
		if err := deleteChunks(db, snapshotPrefix(name, old.Gen), old.Chunks); err != nil {
			s.log.Warn("deleting a replaced snapshot", zap.String("name", name), zap.Error(err))
		}
		return nil
	})
}

// GetSnapshot returns the snapshot called name and when it was saved, or
// ErrNotFound.
func (s *Store) GetSnapshot(name string) ([]byte, time.Time, error) {
	m, err := s.snapshotMeta(name)
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := s.readChunks(snapshotPrefix(name, m.Gen), m.Chunks)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading snapshot %s: %w", name, err)
	}
	return data, m.Saved, nil
}
