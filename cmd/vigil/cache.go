package main

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store"
)

// cacheSnapshot is the store's name for the saved cache.
const cacheSnapshot = "cache"

// restoreCache fills c from the last saved snapshot. Failing to is not an
// error: the cache starts cold, or with what could be read.
func restoreCache(c *resolver.Cache, st *store.Store, log *zap.Logger) {
	snap, saved, err := st.GetSnapshot(cacheSnapshot)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		log.Warn("reading the saved cache; starting cold", zap.Error(err))
		return
	}
	n, err := c.Restore(snap)
	if err != nil {
		log.Warn("restoring the saved cache; starting with what was read", zap.Int("entries", n), zap.Error(err))
		return
	}
	log.Info("cache restored", zap.Int("entries", n), zap.Time("saved", saved))
}

// saveCache writes a snapshot of c to the store.
func saveCache(c *resolver.Cache, st *store.Store, log *zap.Logger) {
	start := time.Now()
	snap := c.Snapshot()
	if err := st.PutSnapshot(cacheSnapshot, snap); err != nil {
		if store.NotSaved(err) {
			// A full disk or a read-only store, reported once by the store;
			// the previous snapshot, if any, stays.
			log.Debug("cache not saved", zap.Error(err))
			return
		}
		log.Warn("saving the cache", zap.Error(err))
		return
	}
	log.Debug("cache saved", zap.Int("bytes", len(snap)), zap.Duration("took", time.Since(start)))
}

// saveCacheEvery saves c every interval until ctx ends, so a crash loses
// at most one interval's answers.
func saveCacheEvery(ctx context.Context, interval time.Duration, c *resolver.Cache, st *store.Store, log *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			saveCache(c, st, log)
		}
	}
}
