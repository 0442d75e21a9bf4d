package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
)

// userListStore is the part of the store that keeps the lists changed by
// hand (*store.Store).
type userListStore interface {
	PutAddedList(name string, list []byte) error
	DeleteAddedList(name string) error
	PutListSwitch(name string, on bool) error
	UserLists() (map[string][]byte, map[string]bool, error)
}

// userLists merges the lists changed from the dashboard, the API or the
// CLI (lists added there, lists turned on or off there) into the
// configuration's, and puts a change in force through the Manager.
type userLists struct {
	store userListStore
	log   *zap.Logger

	mu      sync.Mutex
	cfg     *Config             // the configuration in force
	manager *blocklists.Manager // nil until the server runs
	ctx     context.Context     // the server's, for the Manager
	added   []blocklists.ListConfig
	on      map[string]bool
}

func newUserLists(st userListStore, log *zap.Logger) *userLists {
	u := &userLists{store: st, log: log, on: map[string]bool{}}
	added, switched, err := st.UserLists()
	if err != nil {
		log.Warn("reading the lists changed by hand: going without them", zap.Error(err))
		return u
	}
	for name, raw := range added {
		var l blocklists.ListConfig
		if err := json.Unmarshal(raw, &l); err != nil || l.Name != name {
			log.Warn("a list added by hand is unreadable: skipped", zap.String("list", name))
			continue
		}
		u.added = append(u.added, l)
	}
	slices.SortFunc(u.added, func(a, b blocklists.ListConfig) int { return strings.Compare(a.Name, b.Name) })
	u.on = switched
	return u
}

// merged is cfg's lists with the changes made by hand: the switches
// applied, the lists added appended (a configured list of the same name
// wins).
func (u *userLists) merged(cfg *Config) []blocklists.ListConfig {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.mergedLocked(cfg)
}

func (u *userLists) mergedLocked(cfg *Config) []blocklists.ListConfig {
	out := slices.Clone(cfg.Lists)
	for _, l := range u.added {
		if !slices.ContainsFunc(out, func(c blocklists.ListConfig) bool { return c.Name == l.Name }) {
			out = append(out, l)
		}
	}
	for i := range out {
		if on, ok := u.on[out[i].Name]; ok {
			out[i].Enabled = &on
		}
		out[i].OptIn = !out[i].IsEnabled() && namedByGroup(cfg, out[i].Name)
	}
	return out
}

// namedByGroup reports whether some [[groups]] table names the list, in
// its lists or a schedule's: a list that is off then applies to those
// groups alone (a vendor's cloud for the devices to cut off).
func namedByGroup(cfg *Config, list string) bool {
	for _, g := range cfg.Groups {
		if slices.Contains(g.Lists, list) {
			return true
		}
		for _, s := range g.Schedules {
			if slices.Contains(s.Lists, list) {
				return true
			}
		}
	}
	return false
}

// setConfig records the configuration in force (at start and on reload).
func (u *userLists) setConfig(cfg *Config) {
	u.mu.Lock()
	u.cfg = cfg
	u.mu.Unlock()
}

// Added names the lists added by hand.
func (u *userLists) Added() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var names []string
	for _, l := range u.added {
		names = append(names, l.Name)
	}
	return names
}

// AddList adds a list of http(s) or builtin sources, kept across restarts
// and fetched at once.
func (u *userLists) AddList(l blocklists.ListConfig) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if slices.ContainsFunc(u.mergedLocked(u.cfg), func(c blocklists.ListConfig) bool { return c.Name == l.Name }) {
		return fmt.Errorf("a list named %q exists already", l.Name)
	}
	if len(l.Sources) == 0 {
		return errors.New("want a source: an http(s) URL")
	}
	for _, s := range l.Sources {
		if !blocklists.IsURL(s) && !strings.HasPrefix(s, blocklists.BuiltinScheme) {
			return fmt.Errorf("source %q: want an http(s) URL (files are named in the configuration)", s)
		}
	}
	next := append(slices.Clone(u.added), l)
	if err := u.apply(next, u.on); err != nil {
		return err
	}
	raw, _ := json.Marshal(l)
	return u.store.PutAddedList(l.Name, raw)
}

// RemoveList removes a list added by hand (a configured one can only be
// turned off).
func (u *userLists) RemoveList(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.IndexFunc(u.added, func(l blocklists.ListConfig) bool { return l.Name == name })
	if i < 0 {
		return fmt.Errorf("%q was not added by hand: a configured list can be turned off, or removed from the configuration", name)
	}
	next := slices.Delete(slices.Clone(u.added), i, i+1)
	on := maps.Clone(u.on)
	delete(on, name)
	if err := u.apply(next, on); err != nil {
		return err
	}
	return u.store.DeleteAddedList(name)
}

// SetListEnabled turns a list on or off, over what the configuration
// says, kept across restarts.
func (u *userLists) SetListEnabled(name string, on bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !slices.ContainsFunc(u.mergedLocked(u.cfg), func(c blocklists.ListConfig) bool { return c.Name == name }) {
		return fmt.Errorf("no list %q", name)
	}
	switched := maps.Clone(u.on)
	switched[name] = on
	if err := u.apply(u.added, switched); err != nil {
		return err
	}
	return u.store.PutListSwitch(name, on)
}

// apply validates and puts the lists with these changes in force. u.mu is
// held.
func (u *userLists) apply(added []blocklists.ListConfig, on map[string]bool) error {
	prev, prevOn := u.added, u.on
	u.added, u.on = added, on
	lists := u.mergedLocked(u.cfg)
	if err := blocklists.ValidateLists(lists); err != nil {
		u.added, u.on = prev, prevOn
		return err
	}
	if u.manager != nil {
		if err := u.manager.Reconfigure(u.ctx, u.cfg.Updates, lists); err != nil {
			u.added, u.on = prev, prevOn
			return err
		}
	}
	return nil
}
