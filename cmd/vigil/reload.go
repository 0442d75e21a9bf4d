package main

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/neighbors"
)

// reloader applies the configuration file, re-read, to the running parts.
// Both SIGHUP and POST /api/v1/reload use it.
type reloader struct {
	// path is the file read at start ("" for the built-in default).
	path string
	// overrides re-applies the command line's flags; nil without any.
	overrides func(*Config) error

	chain     *resolver.Chain
	srv       *resolver.Server
	lists     *blocklists.Manager
	records   *localRecords
	neighbors *neighbors.Watcher
	groups    *groupKeeper
	names     *deviceNames
	userLists *userLists
	log       *zap.Logger
	// current is the configuration in force (the last one applied).
	current atomic.Pointer[Config]

	mu sync.Mutex // one reload at a time
	// clients are the [[clients]] entries of the configuration in use,
	// for the API's client matching and the device inventory.
	clients atomic.Pointer[[]api.ClientInfo]
	// listNamesInUse are the [[lists]] names of the configuration in use.
	listNamesInUse atomic.Pointer[[]string]
	// started is the configuration the server started with, and
	// pending the settings changed since that only a restart applies.
	started *Config
	pending atomic.Pointer[[]string]
}

// pendingRestart names the settings changed in the file since the start
// that only a restart applies; none when the file and the server agree.
func (rl *reloader) pendingRestart() []string {
	if p := rl.pending.Load(); p != nil {
		return *p
	}
	return nil
}

// setListNames records the [[lists]] names of the configuration in use.
func (rl *reloader) setListNames(lists []blocklists.ListConfig) {
	names := make([]string, len(lists))
	for i, l := range lists {
		names[i] = l.Name
	}
	rl.listNamesInUse.Store(&names)
}

// listNames returns the [[lists]] names in use.
func (rl *reloader) listNames() []string {
	if p := rl.listNamesInUse.Load(); p != nil {
		return *p
	}
	return nil
}

// setClients records the [[clients]] entries of the configuration in use.
func (rl *reloader) setClients(clients []resolver.ClientConfig) {
	infos := clientInfos(clients)
	rl.clients.Store(&infos)
}

// clientInfos is the [[clients]] entries as the API matches clients.
func clientInfos(clients []resolver.ClientConfig) []api.ClientInfo {
	infos := make([]api.ClientInfo, len(clients))
	for i, c := range clients {
		infos[i].Name = c.Name
		for _, a := range c.Addresses {
			infos[i].Prefixes = append(infos[i].Prefixes, a.Prefix())
		}
		for _, m := range c.MACs {
			infos[i].MACs = append(infos[i].MACs, m.String())
		}
	}
	return infos
}

// configuredClients returns the [[clients]] entries in use.
func (rl *reloader) configuredClients() []api.ClientInfo {
	if p := rl.clients.Load(); p != nil {
		return *p
	}
	return nil
}

// reload re-reads the configuration file, validates it, and applies the
// lists, clients, upstreams, blocking policy, access list and rate limits
// without dropping a query; an invalid file is rejected and the running
// configuration stays. Listeners, the store, the HTTP address, the query
// log and the cache size need a restart.
func (rl *reloader) reload(ctx context.Context) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	cfg, err := loadConfig(rl.path)
	if err != nil {
		return err
	}
	if rl.overrides != nil {
		cfg.overrides = rl.overrides
		if err := cfg.overrides(cfg); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("%s with flags: %w", cfg.Source, err)
		}
	}
	if err := rl.records.apply(cfg.Network); err != nil {
		return err
	}
	if err := rl.chain.Reconfigure(resolver.ChainConfig{Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking, Forward: cfg.Forward, Network: cfg.Network,
		Groups: rl.groups.compileFor(cfg)}); err != nil {
		return fmt.Errorf("applying upstreams: %w", err)
	}
	rl.neighbors.Reconfigure(neighborsConfig(cfg.Identify))
	rl.setClients(cfg.Clients)
	rl.setListNames(cfg.Lists)
	rl.current.Store(cfg)
	rl.srv.Reconfigure(cfg.Server.Allow, clientsFor(cfg, rl.neighbors, rl.names), newLimiter(cfg), cfg.RateLimit.Action == "refused")
	rl.userLists.setConfig(cfg)
	if err := rl.lists.Reconfigure(ctx, cfg.Updates, rl.userLists.merged(cfg)); err != nil {
		return fmt.Errorf("applying lists: %w", err)
	}
	pending := restartNeeded(rl.started, cfg)
	rl.pending.Store(&pending)
	fields := []zap.Field{zap.String("config", cfg.Source), zap.Int("rules", rl.lists.Current().Matcher.Len())}
	if len(pending) > 0 {
		rl.log.Warn("configuration reloaded; these changed settings take effect at the next restart", append(fields, zap.Strings("restart_needed", pending))...)
		return nil
	}
	rl.log.Info("configuration reloaded", fields...)
	return nil
}

// restartOnly are the sections whose settings a reload does not apply:
// they are read when the server starts (listeners, the store, the API, the
// log writer, the cache's size, the logger). server.allow is the one
// setting of [server] a reload applies.
var restartOnly = []string{"server", "store", "http", "metrics", "querylog", "cache", "log", "alerts"}

// restartNeeded names the settings that differ between the configuration
// the server started with and next, among those only a restart applies
// ("server.listen", "store.dir"), in order.
func restartNeeded(started, next *Config) []string {
	var out []string
	sv, nv := reflect.ValueOf(started).Elem(), reflect.ValueOf(next).Elem()
	for i := range sv.NumField() {
		section := strings.Split(sv.Type().Field(i).Tag.Get("toml"), ",")[0]
		if !slices.Contains(restartOnly, section) {
			continue
		}
		a, b := sv.Field(i), nv.Field(i)
		if a.Kind() != reflect.Struct {
			continue
		}
		for j := range a.NumField() {
			key := strings.Split(a.Type().Field(j).Tag.Get("toml"), ",")[0]
			if key == "" || key == "-" || section == "server" && key == "allow" {
				continue
			}
			if !reflect.DeepEqual(a.Field(j).Interface(), b.Field(j).Interface()) {
				out = append(out, section+"."+key)
			}
		}
	}
	return out
}

// clientsFor is how the server identifies clients under cfg: its
// [[clients]], what the network says, and the names given by hand.
func clientsFor(cfg *Config, learned *neighbors.Watcher, names *deviceNames) *resolver.Clients {
	return resolver.NewClients(cfg.Clients, cfg.Identify).Learning(learned).Naming(names.Names())
}
