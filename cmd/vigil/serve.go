package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/dnstap"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/fleet"
	"github.com/vigil-dns/vigil/store/querylog"
)

// running is a started Vigil: what serve built, kept so that stop can take
// it down in order. Tests get it through serve's ready callback; the API
// does not (it gets api.Deps).
type running struct {
	cfg   *Config
	log   *zap.Logger
	store *store.Store
	lists *blocklists.Manager
	pause *resolver.Pauser
	chain *resolver.Chain
	srv   *resolver.Server
	// logs reads the per-client log, written or not; never nil.
	logs *querylog.Log
	// qlog is logs as the writer; nil when querylog.enabled is off.
	qlog *querylog.Log
	// stopLog cancels the log writer's context; the writer then drains.
	stopLog context.CancelFunc
	series  *seriesRecorder
	reload  *reloader
	records *localRecords
	// groups puts the [[groups]] and the devices moved by hand in force.
	groups *groupKeeper
	// names are the names given to devices by hand.
	names *deviceNames
	// userLists are the lists added or switched by hand.
	userLists *userLists
	// alerts tells the user when something new phones home; nil when
	// [alerts] is off.
	alerts *alerts.Engine
	// neighbors learns device names and MACs from the network.
	neighbors *neighbors.Watcher
	// fleet ships the log to the fleet's PostgreSQL and reads it back;
	// nil without [fleet].
	fleet *fleet.Fleet
	// fleetState is what this replica shares with the fleet; nil
	// without [fleet].
	fleetState *fleetState
	// tap sends every query and answer to a dnstap collector; nil
	// without [dnstap].
	tap *dnstap.Writer
	// api serves the HTTP API on apiAddr; nil (and "") when http.listen
	// is off.
	api     *http.Server
	apiAddr string
	// bgStop ends the background loops; bg waits for them.
	bgStop context.CancelFunc
	bg     sync.WaitGroup
}

// serve runs Vigil with a validated configuration until ctx ends. ready,
// when non-nil, is called once everything listens (tests use it).
func serve(ctx context.Context, cfg *Config, log *zap.Logger, ready func(*running)) error {
	log.Info("starting vigil", zap.String("version", version()), zap.String("config", cfg.Source))
	if cfg.Server.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.Server.MemoryLimit)
	}
	if cfg.Server.GCPercent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.Server.GCPercent)
	}
	// A store that cannot be opened for writing (a full disk) or at all
	// does not stop DNS: it opens read-only or not at all, and
	// startBackground keeps trying to open it for writing.
	st, err := store.OpenForServe(cfg.Store, log.Named("store"))
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer func() { // last: everything else writes to it
		switch err := st.Close(); {
		case store.NotSaved(err):
			log.Warn("the disk is full: the store was not flushed at exit", zap.Error(err))
		case err != nil:
			log.Error("closing the store", zap.Error(err))
		}
	}()
	logs, err := querylog.Open(cfg.Store.Dir, cfg.QueryLog, log.Named("querylog"))
	if err != nil {
		return fmt.Errorf("opening the per-client log: %w", err)
	}
	defer func() { // after the writer has drained, before the store
		if err := logs.Close(); err != nil {
			log.Error("closing the per-client log", zap.Error(err))
		}
	}()
	logs.PauseWhen(st.LowDisk) // the store watches the disk both share
	r, err := start(ctx, cfg, log, st, logs)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(r)
	}
	<-ctx.Done()
	r.stop()
	return nil
}

// start builds the query path on st, opens the DNS and HTTP listeners and
// starts the background work. On error, what it started is stopped.
func start(ctx context.Context, cfg *Config, log *zap.Logger, st *store.Store, logs *querylog.Log) (*running, error) {
	r := &running{cfg: cfg, log: log, store: st, logs: logs, pause: resolver.NewPauser(),
		groups: &groupKeeper{store: st, log: log.Named("groups")}}
	// The lists are compiled from the store before the first socket opens,
	// so blocking is on from the first query even without network.
	r.userLists = newUserLists(st, log.Named("lists"))
	r.userLists.setConfig(cfg)
	r.lists = blocklists.NewManager(cfg.Updates, r.userLists.merged(cfg), st, log.Named("blocklists"))
	r.userLists.manager, r.userLists.ctx = r.lists, ctx
	r.lists.PruneRemoved()
	if err := r.lists.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading lists from the store: %w", err)
	}
	chain, err := resolver.NewChain(resolver.ChainConfig{
		Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking, Lists: r.lists, Pause: r.pause,
		Forward: cfg.Forward, Network: cfg.Network, Groups: r.groups.compileFor(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("building the query path: %w", err)
	}
	r.chain = chain
	r.groups.blocker = chain.Blocker
	r.names = newDeviceNames(st, log.Named("names"))
	r.neighbors = neighbors.NewWatcher(neighborsConfig(cfg.Identify), log.Named("neighbors"))
	r.neighbors.SetPTR(chain.LookupPTR)
	r.neighbors.Refresh()
	r.records = &localRecords{chain: chain, log: log.Named("local")}
	if err := r.records.apply(cfg.Network); err != nil {
		return nil, err
	}
	r.startQueryLog()
	if err := r.openOutputs(); err != nil {
		r.stopQueryLog()
		return nil, err
	}
	r.srv = resolver.NewServer(cfg.Server, resolver.ServerDeps{
		Tap:     r.tap,
		Limiter: newLimiter(cfg), LimitRefuse: cfg.RateLimit.Action == "refused",
		Chain: chain, Log: log.Named("resolver"), Clients: clientsFor(cfg, r.neighbors, r.names),
		Recorder: r.recorder(), RecordAllowed: cfg.QueryLog.Enabled && cfg.QueryLog.LogAllowed,
	})
	if err := r.srv.Start(); err != nil {
		r.stopQueryLog()
		return nil, fmt.Errorf("starting the DNS server: %w%s", err, listenHint(err))
	}
	r.series = &seriesRecorder{server: r.srv, store: st, retention: cfg.QueryLog.Retention, log: log}
	r.reload = &reloader{path: cfg.path, overrides: cfg.overrides, chain: chain, srv: r.srv, lists: r.lists, records: r.records, neighbors: r.neighbors,
		groups: r.groups, names: r.names, userLists: r.userLists, started: cfg, log: log}
	r.reload.current.Store(cfg)
	r.names.apply = func() { r.srv.SetClients(clientsFor(r.reload.current.Load(), r.neighbors, r.names)) }
	r.reload.setClients(cfg.Clients)
	r.reload.setListNames(cfg.Lists)
	if cfg.Alerts.On() {
		r.alerts = alerts.New(cfg.Alerts, r.alertsDeps())
	}
	if err := r.startAPI(); err != nil {
		r.shutdownDNS()
		r.stopQueryLog()
		return nil, err
	}
	r.startBackground()
	log.Info("vigil is answering", zap.Stringers("dns", r.srv.UDPAddrs()), zap.String("api", r.apiAddr),
		zap.Int("rules", r.lists.Current().Matcher.Len()), zap.Stringers("upstreams", cfg.Upstream.Servers),
		zap.String("strategy", string(cfg.Upstream.Strategy)), zap.String("store", string(st.Status().Mode)))
	return r, nil
}

// openOutputs prepares where the log and the queries go besides this
// replica's own log: the fleet's PostgreSQL ([fleet]) and a dnstap
// collector ([dnstap]). Opening connects to nothing: both are reached in
// the background (startBackground), never before DNS answers.
func (r *running) openOutputs() error {
	cfg, log := r.cfg, r.log
	if cfg.Fleet.Enabled() {
		f, err := fleet.Open(cfg.Fleet, fleet.Options{Spool: r.logs, Retention: cfg.QueryLog.Retention,
			AllowedRetention: cfg.QueryLog.AllowedRetention, ShipAllowed: cfg.QueryLog.LogAllowed}, log.Named("fleet"))
		if err != nil {
			return err
		}
		r.fleet = f
		r.fleetState = &fleetState{store: r.store, pause: r.pause, publish: f.Publish, log: log.Named("fleet"), pauses: map[string]store.SharedChange{}}
		r.store.ObserveShared(f.Publish)
	}
	if cfg.Dnstap.Enabled() {
		r.tap = dnstap.New(cfg.Dnstap, log.Named("dnstap"))
		r.tap.Describe(func(q, resp []byte, _ netip.Addr) string { return resolver.DescribeAnswer(q, resp) })
	}
	return nil
}

// alertsDeps is what the alerts read: the log, the lists, the network's
// devices, the upstreams' and the disk's state, and each device's groups.
func (r *running) alertsDeps() alerts.Deps {
	cfg, st, chain := r.cfg, r.store, r.chain
	deps := alerts.Deps{Store: st, Log: r.logs, Lists: r.lists, Devices: r.neighbors.Devices,
		AllowedLogged: cfg.QueryLog.Enabled && cfg.QueryLog.LogAllowed, Logger: r.log.Named("alerts"), FlushInterval: cfg.QueryLog.FlushInterval,
		UpstreamsDown: chain.Forwarder.AllFailing, LowDisk: func() bool { return st.Status().LowDisk },
		GroupsOf: func(name string, addr netip.Addr, mac string) []string {
			var hw [6]byte
			if m, err := net.ParseMAC(mac); err == nil && len(m) == 6 {
				hw = [6]byte(m)
			}
			if m := chain.Blocker.Groups().Of(name, addr, hw); m != nil {
				return m.Names
			}
			return nil
		}}
	if r.qlog != nil {
		deps.LogStats = r.qlog.Stats
	}
	return deps
}

// newLimiter returns the per-client rate limiter; nil when it is off.
func newLimiter(cfg *Config) *resolver.Limiter {
	if !cfg.RateLimit.Enabled {
		return nil
	}
	return resolver.NewLimiter(cfg.RateLimit, cfg.Identify.TrustedForwarders)
}

// startQueryLog starts the per-client log's writer, when the log is on.
// It has its own context, not serve's: it must outlive the DNS server so
// that it can drain what the last queries recorded.
func (r *running) startQueryLog() {
	r.stopLog = func() {}
	if !r.cfg.QueryLog.Enabled {
		return
	}
	logCtx, cancel := context.WithCancel(context.Background())
	r.stopLog = cancel
	r.qlog = r.logs
	go r.qlog.Run(logCtx)
}

// recorder is the query log as the DNS server records into it: a nil
// interface, not a typed nil pointer, when the log is off.
func (r *running) recorder() resolver.Recorder {
	if r.qlog == nil {
		return nil
	}
	return r.qlog
}

// stopQueryLog stops the log writer and waits until it has written what
// it was given.
func (r *running) stopQueryLog() {
	r.stopLog()
	if r.qlog != nil {
		<-r.qlog.Done()
	}
}

// startAPI serves the HTTP API, when http.listen is set.
func (r *running) startAPI() error {
	addr, ok := r.cfg.HTTP.Addr()
	if !ok {
		return nil
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("http api: listening on %s: %w", r.cfg.HTTP.Listen, err)
	}
	r.apiAddr = ln.Addr().String()
	// Timeouts and a connection cap: slow or idle clients of the API must
	// not hold the descriptors that DNS needs.
	lim := api.DefaultLimits()
	r.api = api.NewServer(api.New(r.apiDeps()), lim, zap.NewStdLog(r.log.Named("http")))
	go func() {
		if err := r.api.Serve(api.LimitListener(ln, lim.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http api stopped", zap.Error(err))
		}
	}()
	return nil
}

// apiDeps is what the API may reach. Optional parts stay nil interfaces
// when off (a typed nil pointer would not compare equal to nil).
func (r *running) apiDeps() api.Deps {
	d := api.Deps{
		Config: r.cfg.HTTP, Metrics: r.cfg.Metrics,
		Server: r.srv, Upstreams: r.chain.Router, Lists: r.lists, Log: r.logs,
		Series: r.series, Pause: r.pause, Reload: r.reload.reload, Started: time.Now(), Store: r.store,
		Neighbors: r.neighbors, Clients: r.reload.configuredClients, Groups: r.chain.Blocker.Groups, Assign: r.groups, Names: r.names, ListEditor: r.userLists,
		Alerts:    r.alertsOrNil(),
		ListNames: r.reload.listNames, PendingRestart: r.reload.pendingRestart,
		AllowedLogged: r.cfg.QueryLog.Enabled && r.cfg.QueryLog.LogAllowed,
		Retention:     max(r.cfg.QueryLog.Retention, r.cfg.QueryLog.AllowedRetention),
	}
	if r.chain.Cache != nil {
		d.Cache = r.chain.Cache
	}
	if r.qlog != nil {
		d.QueryLog = r.qlog
	}
	if r.fleet != nil {
		d.Log, d.LogFor = r.fleetReaders()
		d.Fleet = r.fleet
		d.Pause = sharedPauser{Pauser: r.pause, fs: r.fleetState}
	}
	if r.tap != nil {
		d.Dnstap = r.tap
	}
	return d
}

// startBackground starts the loops that run beside the query path until
// stop: reloads on SIGHUP, store upkeep, hourly totals, list refreshes
// and cache snapshots.
func (r *running) startBackground() {
	bg, cancel := context.WithCancel(context.Background())
	r.bgStop = cancel
	r.bg.Go(func() { r.reloadOnHUP(bg) })
	r.bg.Go(func() { r.store.RunGC(bg) })
	r.bg.Go(func() { r.store.RunDiskWatch(bg) })
	// A degraded store (read-only, or not open) is taken for writing once
	// it can be; the lists are then compiled again from it.
	r.bg.Go(func() { r.store.RunReopen(bg, func() { r.storeWritable(bg) }) })
	r.bg.Go(func() { r.series.run(bg) })
	r.bg.Go(func() { r.lists.Run(bg) })
	r.bg.Go(func() { r.records.run(bg) })
	r.bg.Go(func() { r.neighbors.Run(bg, neighborsInterval) })
	if r.alerts != nil {
		r.bg.Go(func() { r.alerts.Run(bg) })
	}
	if r.tap != nil {
		r.bg.Go(func() { r.tap.Run(bg) })
	}
	if r.fleet != nil {
		r.bg.Go(func() { r.fleet.Run(bg) })
		r.bg.Go(func() { r.fleet.RunState(bg, r.fleetState, r.applyShared) })
	}
	if r.persistCache() {
		// After the sockets open: the lists, not the cache, must be ready
		// for the first query; cached answers arrive within moments.
		r.bg.Go(func() { restoreCache(r.chain.Cache, r.store, r.log) })
		r.bg.Go(func() { saveCacheEvery(bg, r.cfg.Cache.PersistInterval, r.chain.Cache, r.store, r.log) })
	}
}

// storeWritable runs when a degraded store has been opened for writing:
// the lists are compiled again from what it holds (they may have been
// compiled from nothing, or from the copies as of the last flush).
func (r *running) storeWritable(ctx context.Context) {
	if err := r.lists.Load(ctx); err != nil {
		r.log.Error("loading lists from the reopened store; the running lists stay", zap.Error(err))
	}
}

// persistCache says whether the cache is kept across restarts.
func (r *running) persistCache() bool { return r.chain.Cache != nil && r.cfg.Cache.Persist }

// reloadOnHUP reloads the configuration on every SIGHUP until ctx ends.
func (r *running) reloadOnHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.reload.reload(ctx); err != nil {
				r.log.Error("reload rejected; the running configuration stays", zap.Error(err))
			}
		}
	}
}

// stop takes Vigil down. Order matters: stop taking queries and finish
// those in flight, then the API, then the background work, and the query
// log last, when no query is left to record anything. serve closes the
// store after.
func (r *running) stop() {
	r.log.Info("shutting down")
	r.shutdownDNS()
	if r.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.api.Shutdown(ctx) // past the timeout, open requests are cut: nothing to add
		cancel()
	}
	r.bgStop()
	r.bg.Wait()
	if r.persistCache() {
		saveCache(r.chain.Cache, r.store, r.log) // after the server stopped: the final state
	}
	if r.fleet != nil {
		r.store.ObserveShared(nil)
		r.fleet.Close() // its shipper stopped with the background work
	}
	r.stopQueryLog()
	if r.qlog != nil {
		st := r.qlog.Stats()
		r.log.Info("query log closed", zap.Uint64("written", st.Written), zap.Uint64("dropped", st.Dropped))
	}
	r.log.Info("stopped")
}

// shutdownDNS stops the DNS server, giving queries in flight up to
// server.shutdown_timeout.
func (r *running) shutdownDNS() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.log.Warn("shutdown cut queries short", zap.Error(err))
	}
}

// listenHint names the likely cause of a listener that would not open:
// another DNS server on the port (on many Linux systems systemd-resolved's
// stub listener holds port 53), or a port below 1024 without the right.
func listenHint(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "; another program holds the port: on many Linux systems it is systemd-resolved's stub listener " +
			"(set DNSStubListener=no in /etc/systemd/resolved.conf and restart it), or dnsmasq; " +
			"or have Vigil listen elsewhere with -listen or server.listen"
	case errors.Is(err, syscall.EACCES):
		return "; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability " +
			"(setcap cap_net_bind_service=+ep on the binary, or AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit), " +
			"or listen on a higher port with -listen or server.listen"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "; the address is not one of this machine's: check server.listen"
	}
	return ""
}

// alertsOrNil is the alerts engine as the API takes it: a nil interface
// when alerts are off.
func (r *running) alertsOrNil() api.Alerts {
	if r.alerts == nil {
		return nil
	}
	return r.alerts
}
