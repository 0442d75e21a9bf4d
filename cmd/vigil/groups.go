package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/groups"
)

// assignmentStore is the part of the store that keeps the devices moved
// between groups by hand (*store.Store).
type assignmentStore interface {
	PutAssignment(client string, groups []string) error
	DeleteAssignment(client string) error
	ListAssignments() (map[string][]string, error)
}

// groupKeeper compiles the [[groups]] of the configuration in use with the
// devices moved between groups by hand, and puts them in force: at start,
// on a reload, and when a device is moved.
type groupKeeper struct {
	store assignmentStore
	log   *zap.Logger

	mu      sync.Mutex // one change at a time
	cfg     *Config
	blocker *resolver.Blocker // nil until the chain is built
}

// compileFor compiles cfg's groups with the stored moves and keeps cfg for
// the moves to come. A store that cannot be read gives the configuration's
// groups alone: groups must never stop DNS.
func (k *groupKeeper) compileFor(cfg *Config) *groups.Groups {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cfg = cfg
	return k.compile()
}

func (k *groupKeeper) compile() *groups.Groups {
	g := k.cfg.compiledGroups()
	if g.Len() == 0 {
		return g
	}
	assigned, err := k.store.ListAssignments()
	if err != nil {
		k.log.Warn("reading the devices moved between groups: using the configuration's groups alone", zap.Error(err))
		return g
	}
	return g.Assign(assigned)
}

// Assign moves client (its name, or its address) into exactly these
// groups, kept across restarts; none puts it in no group (the default
// group's lists).
func (k *groupKeeper) Assign(client string, names []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	known := k.cfg.compiledGroups().Names()
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("no group %q in the configuration; the groups are %s", n, strings.Join(known, ", "))
		}
	}
	if err := k.store.PutAssignment(client, names); err != nil {
		return err
	}
	k.apply()
	return nil
}

// Unassign gives client back the groups the configuration gives it.
func (k *groupKeeper) Unassign(client string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.store.DeleteAssignment(client); err != nil {
		return err
	}
	k.apply()
	return nil
}

// apply puts the groups in force after a move. k.mu is held.
func (k *groupKeeper) apply() {
	if k.blocker != nil {
		k.blocker.SetGroups(k.compile())
	}
}

// reapply puts the groups in force again with the moves the store holds
// now (a change from the fleet).
func (k *groupKeeper) reapply() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cfg != nil {
		k.apply()
	}
}
