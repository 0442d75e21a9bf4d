package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store"
)

// The API reads hourly totals through the recorder, so they are up to date.
var _ api.SeriesReader = (*seriesRecorder)(nil)

// seriesInterval is how often hourly totals are brought up to date.
const seriesInterval = 10 * time.Second

// seriesRecorder adds the queries and blocked lookups counted since its
// last flush to the store's hourly totals (for the dashboard's charts).
// It implements api.SeriesReader.
type seriesRecorder struct {
	server    *resolver.Server
	store     *store.Store
	retention time.Duration
	log       *zap.Logger

	mu           sync.Mutex // guards lastQ, lastB and orders flushes
	lastQ, lastB uint64
}

// totals counts every query answered (rate-limited ones excepted) and
// every blocked one since start.
func (sr *seriesRecorder) totals() (q, b uint64) {
	for _, results := range sr.server.Metrics().ByResult {
		for name, n := range results {
			if name != "limited" {
				q += n
			}
			if name == "blocked" {
				b += n
			}
		}
	}
	return q, b
}

// flush records what was counted since the last flush.
func (sr *seriesRecorder) flush() {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	q, b := sr.totals()
	if err := sr.store.AddSeries(time.Now(), q-sr.lastQ, b-sr.lastB, sr.retention); err != nil {
		// Not recorded: the counts carry over to the next flush. A full
		// disk or read-only store is reported once by the store.
		if !store.NotSaved(err) {
			sr.log.Warn("recording hourly totals", zap.Error(err))
		}
		return
	}
	sr.lastQ, sr.lastB = q, b
}

// run flushes every seriesInterval until ctx ends, and once more then.
func (sr *seriesRecorder) run(ctx context.Context) {
	t := time.NewTicker(seriesInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sr.flush()
			return
		case <-t.C:
			sr.flush()
		}
	}
}

// Series implements api.SeriesReader. It flushes first, so the current
// hour includes what was counted since the last tick.
func (sr *seriesRecorder) Series(since, until time.Time) ([]store.SeriesPoint, error) {
	sr.flush()
	pts, err := sr.store.Series(since, until)
	if err != nil {
		return nil, fmt.Errorf("reading hourly totals: %w", err)
	}
	return pts, nil
}
