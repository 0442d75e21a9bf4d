package main

import (
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store"
)

// fleetState is what this replica shares with the fleet (store/fleet's
// StateStore): the store's shared keys, and the pauses, which live in the
// Pauser only, under "p/<scope>" keys ("p/*" for everyone, "p/NAME" for a
// device, "p/group:NAME" for a group), their value the pause's end.
type fleetState struct {
	store *store.Store
	pause *resolver.Pauser
	// publish hands a local change to the fleet.
	publish func(store.SharedChange)
	log     *zap.Logger

	mu     sync.Mutex
	pauses map[string]store.SharedChange // by key, the latest of each
	last   int64                         // the latest pause version handed out
}

const pausePrefix = "p/"

func pauseKey(client string) string {
	if client == "" {
		return pausePrefix + "*"
	}
	return pausePrefix + client
}

// SharedState implements fleet.StateStore.
func (fs *fleetState) SharedState() ([]store.SharedChange, error) {
	out, err := fs.store.SharedState()
	fs.mu.Lock()
	for _, c := range fs.pauses {
		out = append(out, c)
	}
	fs.mu.Unlock()
	return out, err
}

// ApplyShared implements fleet.StateStore.
func (fs *fleetState) ApplyShared(c store.SharedChange) (bool, error) {
	scope, ok := strings.CutPrefix(c.Key, pausePrefix)
	if !ok {
		return fs.store.ApplyShared(c)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if have, ok := fs.pauses[c.Key]; ok && have.Version >= c.Version {
		return false, nil
	}
	fs.pauses[c.Key] = c
	fs.last = max(fs.last, c.Version)
	if scope == "*" {
		scope = ""
	}
	until, err := time.Parse(time.RFC3339Nano, string(c.Value))
	if c.Deleted || err != nil {
		fs.pause.ResumeOnly(scope)
	} else {
		fs.pause.PauseUntil(scope, until)
	}
	return true, nil
}

// changed records a local pause change and hands it to the fleet. fs.mu
// is held (by the sharedPauser), so that a change from the fleet cannot
// land between the Pauser's change and its record.
func (fs *fleetState) changed(client string, until time.Time, deleted bool) {
	v := max(time.Now().UnixMicro(), fs.last+1)
	fs.last = v
	c := store.SharedChange{Key: pauseKey(client), Version: v, Deleted: deleted}
	if !deleted {
		c.Value = []byte(until.UTC().Format(time.RFC3339Nano))
	}
	fs.pauses[c.Key] = c
	fs.publish(c) // never blocks
}

// sharedPauser is the Pauser the API uses with a fleet: each pause and
// resume is also handed to the other replicas.
type sharedPauser struct {
	*resolver.Pauser
	fs *fleetState
}

func (p sharedPauser) Pause(client string, d time.Duration) time.Time {
	p.fs.mu.Lock()
	defer p.fs.mu.Unlock()
	until := p.Pauser.Pause(client, d)
	p.fs.changed(client, until, false)
	return until
}

func (p sharedPauser) Resume(client string) {
	p.fs.mu.Lock()
	defer p.fs.mu.Unlock()
	if client == "" { // every pause ends, the devices' and groups' too
		st := p.Pauser.Status()
		for c := range st.Clients {
			p.fs.changed(c, time.Time{}, true)
		}
		for g := range st.Groups {
			p.fs.changed("group:"+g, time.Time{}, true)
		}
	}
	p.Pauser.Resume(client)
	p.fs.changed(client, time.Time{}, true)
}

// applyShared puts in force what a change from the fleet changed in the
// store: the lists for allowed names and exceptions, the names, the
// groups' moves. Pauses are in force as soon as they are applied.
func (r *running) applyShared(keys []string) {
	var lists, names, moves bool
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "a/"), strings.HasPrefix(k, "x/"):
			lists = true
		case strings.HasPrefix(k, "d/"):
			names = true
		case strings.HasPrefix(k, "m/"):
			moves = true
		}
	}
	if lists {
		if err := r.lists.Rebuild(); err != nil {
			r.log.Warn("compiling the lists after a change from the fleet", zap.Error(err))
		}
	}
	if names {
		r.names.reload()
	}
	if moves {
		r.groups.reapply()
	}
	r.log.Info("applied changes from the fleet", zap.Strings("keys", keys))
}
