package store

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrNotFound means the store holds no copy of the requested item.
var ErrNotFound = errors.New("not found")

// ListMeta describes the stored copy of one list source and the outcome of
// its latest update attempt.
type ListMeta struct {
	List         string    `json:"list"`   // the configured list's name
	Source       string    `json:"source"` // URL or file path
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	FetchedAt    time.Time `json:"fetched_at"`            // when the stored copy was fetched
	CheckedAt    time.Time `json:"checked_at"`            // when an update was last attempted
	Size         int       `json:"size"`                  // bytes of the stored copy
	SHA256       string    `json:"sha256"`                // of the stored copy
	Format       string    `json:"format"`                // as detected or configured
	Entries      int       `json:"entries"`               // rules in the stored copy
	Rejected     int       `json:"rejected"`              // invalid lines in the stored copy
	Status       string    `json:"status"`                // outcome of the latest attempt
	Error        string    `json:"error,omitempty"`       // why the latest attempt failed
	HasCopy      bool      `json:"has_copy"`              // a good copy is stored
	FailedSince  time.Time `json:"failed_since,omitzero"` // first failure of the current run of failures
}

const listPrefix = "l/"

func listMetaKey(id string) []byte { return []byte(listPrefix + id + "/meta") }
func listBodyKey(id string) []byte { return []byte(listPrefix + id + "/body") }

// PutList stores a new good copy of a source and its metadata in one
// transaction, replacing the previous copy. The body is kept gzip-compressed
// (lists compress about four to one, which matters on a router's flash).
func (s *Store) PutList(id string, meta ListMeta, body []byte) error {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(body); err != nil {
		return fmt.Errorf("compressing list %s: %w", id, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing list %s: %w", id, err)
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding list %s metadata: %w", id, err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(listBodyKey(id), buf.Bytes()); err != nil {
			return err
		}
		return txn.Set(listMetaKey(id), mb)
	})
	if err != nil {
		return fmt.Errorf("storing list %s: %w", id, err)
	}
	return nil
}

// PutListMeta updates a source's metadata only (an attempt that kept the
// stored copy).
func (s *Store) PutListMeta(id string, meta ListMeta) error {
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encoding list %s metadata: %w", id, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(listMetaKey(id), mb) }); err != nil {
		return fmt.Errorf("storing list %s metadata: %w", id, err)
	}
	return nil
}

// GetListMeta returns a source's metadata, or ErrNotFound.
func (s *Store) GetListMeta(id string) (ListMeta, error) {
	var meta ListMeta
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(listMetaKey(id))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &meta) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return meta, ErrNotFound
	}
	if err != nil {
		return meta, fmt.Errorf("reading list %s metadata: %w", id, err)
	}
	return meta, nil
}

// GetListBody returns the stored copy of a source, or ErrNotFound.
func (s *Store) GetListBody(id string) ([]byte, error) {
	var body []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(listBodyKey(id))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			zr, err := gzip.NewReader(bytes.NewReader(v))
			if err != nil {
				return err
			}
			body, err = io.ReadAll(zr)
			return err
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading list %s: %w", id, err)
	}
	return body, nil
}

// ListIDs returns the ids of every source with stored metadata.
func (s *Store) ListIDs() ([]string, error) {
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(listPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if id, ok := bytes.CutSuffix([]byte(k[len(listPrefix):]), []byte("/meta")); ok {
				ids = append(ids, string(id))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing stored lists: %w", err)
	}
	return ids, nil
}

// DeleteList removes a source's copy and metadata (a source removed from
// the configuration).
func (s *Store) DeleteList(id string) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(listBodyKey(id)); err != nil {
			return err
		}
		return txn.Delete(listMetaKey(id))
	})
	if err != nil {
		return fmt.Errorf("deleting list %s: %w", id, err)
	}
	return nil
}
