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
	"go.uber.org/zap"
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

// listChunk is the size of one stored piece of a list copy. Copies are
// stored in pieces small enough to live in Badger's LSM tree (below the
// value threshold) rather than its value log: a replaced copy is then
// reclaimed by ordinary compaction, while value-log space is only
// reclaimed by GC runs that depend on discard statistics Badger gathers
// slowly. It also keeps every write batch small.
//
// 3 KiB, so that a piece fits one of Badger's 4 KiB table blocks with its
// key and the block's trailer: a larger value makes Badger's table builder
// regrow the block buffer twice per value in an arena it frees only when
// the table is done. With 64 KiB pieces each one cost some 200 KiB of
// builder memory, and after 4 refreshes of a 1M-name list compactions held
// 62 MB of it.
const listChunk = 3 << 10

func listMetaKey(id string) []byte { return []byte(listPrefix + id + "/meta") }

// listBodyPrefix is the prefix of one generation of a source's copy.
func listBodyPrefix(id string, gen uint64) []byte {
	return fmt.Appendf(nil, "%s%s/body/%016x/", listPrefix, id, gen)
}

// storedMeta is what is stored under the meta key: the public metadata
// and the generation of the copy it describes.
type storedMeta struct {
	ListMeta
	BodyGen    uint64 `json:"body_gen"`
	BodyChunks int    `json:"body_chunks"`
}

// PutList stores a new good copy of a source and its metadata, replacing
// the previous copy. The body is gzip-compressed (lists compress about
// four to one, which matters on a router's flash) and written as a new
// generation of chunks; the metadata then switches to it in one small
// transaction, so a crash at any point leaves either the old or the new
// copy complete. The old generation is deleted afterwards.
func (s *Store) PutList(id string, meta ListMeta, body []byte) error {
	return s.putList(id, meta, func(w io.Writer) error {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if _, err := zw.Write(body); err != nil {
			return fmt.Errorf("compressing list %s: %w", id, err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("compressing list %s: %w", id, err)
		}
		return nil
	})
}

// PutListGzip is PutList for a body already gzip-compressed, read from
// gz: the list manager compresses a download as it reads and checks it,
// so that a big list is never held whole as text.
func (s *Store) PutListGzip(id string, meta ListMeta, gz io.Reader) error {
	return s.putList(id, meta, func(w io.Writer) error {
		if _, err := io.Copy(w, gz); err != nil {
			return fmt.Errorf("storing list %s: %w", id, err)
		}
		return nil
	})
}

// putList stores a new generation of chunks, filled by writeBody with the
// compressed body, and switches the metadata to it.
func (s *Store) putList(id string, meta ListMeta, writeBody func(io.Writer) error) error {
	old, err := s.getStoredMeta(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	sm := storedMeta{ListMeta: meta, BodyGen: old.BodyGen + 1}
	var mb []byte
	// One guarded write: the disk is checked once, and a copy is stored
	// whole or not at all. The body goes straight into chunks: no
	// compressed copy of a big list is held beside its text.
	err = s.write("storing list "+id, func(db *badger.DB) error {
		cw := newChunkWriter(db, listBodyPrefix(id, sm.BodyGen))
		defer cw.wb.Cancel()
		if err := writeBody(cw); err != nil {
			return err
		}
		if sm.BodyChunks, err = cw.close(); err != nil {
			return err
		}
		// The metadata names the chunk count, known only now.
		if mb, err = json.Marshal(sm); err != nil {
			return fmt.Errorf("encoding list %s metadata: %w", id, err)
		}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(listMetaKey(id), mb) }); err != nil {
			return err
		}
		if err := deleteChunks(db, listBodyPrefix(id, old.BodyGen), old.BodyChunks); err != nil {
			s.log.Warn("deleting a replaced list copy", zap.String("id", id), zap.Error(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Into a table at once: a store that must later be opened read-only
	// (a restart on a full disk) reads tables only, and the lists are what
	// DNS needs from it.
	s.flush()
	return nil
}

// writeChunks stores data under prefix in listChunk-sized pieces and
// returns their number (at least one, so empty data is still "present").
func writeChunks(db *badger.DB, prefix, data []byte) (int, error) {
	cw := newChunkWriter(db, prefix)
	defer cw.wb.Cancel()
	if _, err := cw.Write(data); err != nil {
		return 0, err
	}
	return cw.close()
}

// chunkWriter stores what is written to it under prefix, in
// listChunk-sized pieces, through one write batch.
type chunkWriter struct {
	wb     *badger.WriteBatch
	prefix []byte
	n      int    // pieces written
	buf    []byte // the piece being filled
}

func newChunkWriter(db *badger.DB, prefix []byte) *chunkWriter {
	return &chunkWriter{wb: db.NewWriteBatch(), prefix: prefix}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		if c.buf == nil {
			c.buf = make([]byte, 0, listChunk) // the batch keeps each piece until it commits
		}
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf, p = c.buf[:len(c.buf)+k], p[k:]
		if len(c.buf) == listChunk {
			if err := c.put(); err != nil {
				return 0, err
			}
		}
	}
	return written, nil
}

func (c *chunkWriter) put() error {
	if err := c.wb.Set(chunkKey(c.prefix, c.n), c.buf); err != nil {
		return err
	}
	c.n, c.buf = c.n+1, nil
	return nil
}

// close stores the last piece (an empty one when nothing was written)
// and commits; it returns the number of pieces.
func (c *chunkWriter) close() (int, error) {
	if len(c.buf) > 0 || c.n == 0 {
		if err := c.put(); err != nil {
			return 0, err
		}
	}
	return c.n, c.wb.Flush()
}

func chunkKey(prefix []byte, i int) []byte {
	return fmt.Appendf(append([]byte(nil), prefix...), "%08x", i)
}

// readChunks reassembles n chunks stored under prefix.
func (s *Store) readChunks(prefix []byte, n int) ([]byte, error) {
	var data []byte
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			for i := range n {
				item, err := txn.Get(chunkKey(prefix, i))
				if err != nil {
					return fmt.Errorf("copy is damaged: chunk %d of %d: %w", i, n, err)
				}
				if err := item.Value(func(v []byte) error { data = append(data, v...); return nil }); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return data, err
}

// deleteChunks removes n chunks under prefix. Deletes are tombstones that
// compaction reclaims; unlike DropPrefix they do not stall writes.
func deleteChunks(db *badger.DB, prefix []byte, n int) error {
	if n == 0 {
		return nil
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for i := range n {
		if err := wb.Delete(chunkKey(prefix, i)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func (s *Store) putStoredMeta(id string, sm storedMeta) error {
	mb, err := json.Marshal(sm)
	if err != nil {
		return fmt.Errorf("encoding list %s metadata: %w", id, err)
	}
	return s.write("storing list "+id+" metadata", func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set(listMetaKey(id), mb) })
	})
}

func (s *Store) getStoredMeta(id string) (storedMeta, error) {
	var sm storedMeta
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(listMetaKey(id))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error { return json.Unmarshal(v, &sm) })
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return sm, ErrNotFound
	}
	if err != nil {
		return sm, fmt.Errorf("reading list %s metadata: %w", id, err)
	}
	return sm, nil
}

// PutListMeta updates a source's metadata only (an attempt that kept the
// stored copy).
func (s *Store) PutListMeta(id string, meta ListMeta) error {
	sm, err := s.getStoredMeta(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	sm.ListMeta = meta
	return s.putStoredMeta(id, sm)
}

// GetListMeta returns a source's metadata, or ErrNotFound.
func (s *Store) GetListMeta(id string) (ListMeta, error) {
	sm, err := s.getStoredMeta(id)
	return sm.ListMeta, err
}

// GetListBody returns the stored copy of a source, or ErrNotFound.
func (s *Store) GetListBody(id string) ([]byte, error) {
	var body []byte
	err := s.ReadListBody(id, func(r io.Reader) (err error) {
		body, err = io.ReadAll(r)
		return err
	})
	return body, err
}

// ReadListBody calls fn with a reader of the stored copy of a source, or
// returns ErrNotFound. The copy is decompressed as fn reads it, one
// stored chunk at a time: compiling a list of millions of names never
// holds the whole text in memory. The reader is valid only during fn.
func (s *Store) ReadListBody(id string, fn func(io.Reader) error) error {
	sm, err := s.getStoredMeta(id)
	if err != nil {
		return err
	}
	if sm.BodyChunks == 0 {
		return ErrNotFound
	}
	err = s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			zr, err := gzip.NewReader(&chunkReader{txn: txn, prefix: listBodyPrefix(id, sm.BodyGen), n: sm.BodyChunks})
			if err != nil {
				return err
			}
			return fn(zr)
		})
	})
	if err != nil {
		return fmt.Errorf("reading list %s: %w", id, err)
	}
	return nil
}

// chunkReader reads n chunks under prefix in order, one at a time.
type chunkReader struct {
	txn    *badger.Txn
	prefix []byte
	n, i   int
	buf    []byte // the current chunk
	off    int    // read position in buf
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.off == len(c.buf) {
		if c.i == c.n {
			return 0, io.EOF
		}
		item, err := c.txn.Get(chunkKey(c.prefix, c.i))
		if err != nil {
			return 0, fmt.Errorf("copy is damaged: chunk %d of %d: %w", c.i, c.n, err)
		}
		if c.buf, err = item.ValueCopy(c.buf[:0]); err != nil {
			return 0, err
		}
		c.i, c.off = c.i+1, 0
	}
	n := copy(p, c.buf[c.off:])
	c.off += n
	return n, nil
}

// ListIDs returns the ids of every source with stored metadata.
func (s *Store) ListIDs() ([]string, error) {
	var ids []string
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
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
	})
	if err != nil {
		return nil, fmt.Errorf("listing stored lists: %w", err)
	}
	return ids, nil
}

// DeleteList removes a source's copy and metadata (a source removed from
// the configuration).
func (s *Store) DeleteList(id string) error {
	return s.write("deleting list "+id, func(db *badger.DB) error { return db.DropPrefix([]byte(listPrefix + id + "/")) })
}
