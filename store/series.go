package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Hourly totals of queries and blocked lookups, for the dashboard's
// charts. One small key per hour ("h/<unix hour start BE 8>" -> two
// uint64s), kept for the query log's retention.

// SeriesPoint is one hour's totals.
type SeriesPoint struct {
	Hour    time.Time `json:"hour"`
	Queries uint64    `json:"queries"`
	Blocked uint64    `json:"blocked"`
}

func seriesKey(hour time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte("h/"), uint64(hour.Unix()))
}

// AddSeries adds counts to the hour holding at.
func (s *Store) AddSeries(at time.Time, queries, blocked uint64, retention time.Duration) error {
	if queries == 0 && blocked == 0 {
		return nil
	}
	key := seriesKey(at.UTC().Truncate(time.Hour))
	return s.write("recording hourly totals", func(db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error {
			var q, b uint64
			item, err := txn.Get(key)
			switch {
			case err == nil:
				if err := item.Value(func(v []byte) error {
					if len(v) == 16 {
						q, b = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
					}
					return nil
				}); err != nil {
					return err
				}
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
			v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, q+queries), b+blocked)
			return txn.SetEntry(badger.NewEntry(key, v).WithTTL(retention))
		})
	})
}

// Series returns one point per hour from since to until, zeros included.
func (s *Store) Series(since, until time.Time) ([]SeriesPoint, error) {
	since, until = since.UTC().Truncate(time.Hour), until.UTC()
	if until.Sub(since) > 400*24*time.Hour {
		return nil, errors.New("window longer than 400 days")
	}
	byHour := map[int64]SeriesPoint{}
	err := s.view(func(db *badger.DB) error {
		return db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte("h/")
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Seek(seriesKey(since)); it.Valid(); it.Next() {
				k := it.Item().Key()
				if len(k) != 10 {
					continue
				}
				h := int64(binary.BigEndian.Uint64(k[2:]))
				if h > until.Unix() {
					break
				}
				_ = it.Item().Value(func(v []byte) error {
					if len(v) == 16 {
						byHour[h] = SeriesPoint{Hour: time.Unix(h, 0).UTC(), Queries: binary.BigEndian.Uint64(v), Blocked: binary.BigEndian.Uint64(v[8:])}
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errUnavailable) {
		return nil, fmt.Errorf("reading hourly totals: %w", err)
	}
	// With no database open there are no totals kept: empty hours, so that
	// the dashboard's charts (and the warning above them) still show.
	var out []SeriesPoint
	for h := since; !h.After(until); h = h.Add(time.Hour) {
		p, ok := byHour[h.Unix()]
		if !ok {
			p = SeriesPoint{Hour: h}
		}
		out = append(out, p)
	}
	return out, nil
}
