package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/neighbors"
)

// neighborsInterval is how often lease files (when changed) and the
// neighbour table are read.
const neighborsInterval = 10 * time.Second

// neighborsConfig is what the neighbors Watcher takes from [identify].
func neighborsConfig(c resolver.IdentifyConfig) neighbors.Config {
	return neighbors.Config{LeaseFiles: c.LeaseFiles, NeighborTable: c.NeighborTable, PTRNames: c.PTRNames}
}

// hostsCheckInterval is how often hosts files are checked for changes
// (their time and size: a stat each).
const hostsCheckInterval = 5 * time.Second

// localRecords keeps the chain's local records current: it builds them
// from [local] at start and at each reload, and rebuilds them when a
// hosts file changes.
type localRecords struct {
	chain *resolver.Chain
	log   *zap.Logger

	mu  sync.Mutex
	src *resolver.RecordSources
}

// apply loads the records of cfg and puts them in use; on an error the
// records in use stay.
func (lr *localRecords) apply(cfg resolver.NetworkConfig) error {
	src := resolver.NewRecordSources(cfg)
	t, err := src.Load()
	if err != nil {
		return fmt.Errorf("local records: %w", err)
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.src = src
	lr.chain.SetLocalRecords(t)
	return nil
}

// run reloads the records whenever a hosts file changes, until ctx ends.
func (lr *localRecords) run(ctx context.Context) {
	t := time.NewTicker(hostsCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lr.refresh()
		}
	}
}

func (lr *localRecords) refresh() {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.src == nil || !lr.src.Changed() {
		return
	}
	t, err := lr.src.Load()
	if err != nil {
		lr.log.Warn("reading a changed hosts file; the records in use stay", zap.Error(err))
		return
	}
	lr.chain.SetLocalRecords(t)
	lr.log.Info("hosts files changed: local records reloaded", zap.Int("names", t.Len()))
}
