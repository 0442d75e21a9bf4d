package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("serve", "Run the DNS server until SIGINT or SIGTERM.", stderr)
	var listen, upstream addrList
	fs.Var(&listen, "listen", "serve on `ADDR` (ip:port) instead of server.listen; repeatable")
	fs.Var(&upstream, "upstream", "forward to `ADDR` instead of upstream.servers; repeatable")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := resolveConfigPath(*cfgPath)
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	cfg.overrides = func(c *Config) error { return applyOverrides(c, listen, upstream) }
	if err := cfg.overrides(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s with flags: %w", cfg.Source, err)
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return serve(ctx, cfg, log, nil)
}

// serve runs Vigil with a validated configuration until ctx ends. ready,
// when non-nil, is called once everything listens (tests use it).
func serve(ctx context.Context, cfg *Config, log *zap.Logger, ready func(*instance)) error {
	log.Info("starting vigil", zap.String("version", version()), zap.String("config", cfg.Source))
	if cfg.Server.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.Server.MemoryLimit)
	}
	if cfg.Server.GCPercent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.Server.GCPercent)
	}
	st, err := store.Open(cfg.Store, log.Named("store"))
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", zap.Error(err))
		}
	}()
	// The API reads the per-client log even when writing it is off.
	logs, err := querylog.Open(cfg.Store.Dir, cfg.QueryLog, log.Named("querylog"))
	if err != nil {
		return err
	}
	defer func() {
		if err := logs.Close(); err != nil {
			log.Error("closing the query log", zap.Error(err))
		}
	}()
	logs.PauseWhen(st.LowDisk)

	// The lists are compiled from the store before the first socket opens,
	// so blocking is on from the first query even without network.
	lists := blocklists.NewManager(cfg.Updates, cfg.Lists, st, log.Named("blocklists"))
	lists.PruneRemoved()
	if err := lists.Load(ctx); err != nil {
		return fmt.Errorf("loading lists from the store: %w", err)
	}
	pause := resolver.NewPauser()
	chain, err := resolver.NewChain(resolver.ChainConfig{
		Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking, Lists: lists, Pause: pause,
	})
	if err != nil {
		return err
	}
	// The per-client log has its own context: it must outlive the server
	// so that it can drain what the last queries recorded.
	var recorder resolver.Recorder
	var qlog *querylog.Log
	logCtx, stopLog := context.WithCancel(context.Background())
	defer stopLog()
	if cfg.QueryLog.Enabled {
		qlog = logs
		recorder = qlog
		go qlog.Run(logCtx)
	}
	var limiter *resolver.Limiter
	if cfg.RateLimit.Enabled {
		limiter = resolver.NewLimiter(cfg.RateLimit, cfg.Identify.TrustedForwarders)
	}
	srv := resolver.NewServer(cfg.Server, resolver.ServerDeps{
		Limiter: limiter, LimitRefuse: cfg.RateLimit.Action == "refused",
		Chain: chain, Log: log.Named("resolver"), Clients: resolver.NewClients(cfg.Clients, cfg.Identify),
		Recorder: recorder, RecordAllowed: cfg.QueryLog.Enabled && cfg.QueryLog.LogAllowed,
	})
	stopQueryLog := func() {
		if qlog != nil {
			stopLog()
			<-qlog.Done()
		}
	}
	if err := srv.Start(); err != nil {
		stopQueryLog()
		return err
	}
	inst := &instance{cfg: cfg, srv: srv, chain: chain, lists: lists, qlog: qlog, logs: logs, store: st, pause: pause, log: log, started: time.Now()}
	inst.series = &seriesRecorder{inst: inst}

	var api *http.Server
	if cfg.HTTP.Listen.IsValid() {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen.String())
		if err != nil {
			shutdownServer(srv, cfg, log)
			stopQueryLog()
			return fmt.Errorf("http api: listening on %s: %w", cfg.HTTP.Listen, err)
		}
		inst.apiAddr = ln.Addr().String()
		api = &http.Server{Handler: newAPI(inst), ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log.Named("http"))}
		go func() {
			if err := api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http api stopped", zap.Error(err))
			}
		}()
	}

	bg, cancelBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				if err := inst.reload(bg); err != nil {
					log.Error("reload rejected; the running configuration stays", zap.Error(err))
				}
			}
		}
	})
	wg.Go(func() { st.RunGC(bg) })
	wg.Go(func() { st.RunDiskWatch(bg) })
	wg.Go(func() { inst.series.run(bg) })
	wg.Go(func() { lists.Run(bg) })
	if chain.Cache != nil && cfg.Cache.Persist {
		// After the sockets open: the lists, not the cache, must be ready
		// for the first query; cached answers arrive within moments.
		wg.Go(func() { restoreCache(chain.Cache, st, log) })
	}
	if chain.Cache != nil && cfg.Cache.Persist {
		wg.Go(func() {
			t := time.NewTicker(cfg.Cache.PersistInterval)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					saveCache(chain.Cache, st, log)
				}
			}
		})
	}

	var udp []string
	for _, a := range srv.UDPAddrs() {
		udp = append(udp, a.String())
	}
	log.Info("vigil is answering", zap.Strings("dns", udp), zap.String("api", inst.apiAddr),
		zap.Int("rules", lists.Current().Matcher.Len()), zap.Stringers("upstreams", cfg.Upstream.Servers), zap.String("strategy", string(cfg.Upstream.Strategy)))
	if ready != nil {
		ready(inst)
	}

	<-ctx.Done()
	log.Info("shutting down")
	// Order matters: stop taking queries and finish those in flight, then
	// the API, then the background work, and the store last (deferred).
	shutdownServer(srv, cfg, log)
	if api != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = api.Shutdown(sctx)
		cancel()
	}
	cancelBG()
	wg.Wait()
	if chain.Cache != nil && cfg.Cache.Persist {
		saveCache(chain.Cache, st, log) // after the server stopped: the final state
	}
	// Only now, with no query left to record anything, drain the log.
	stopQueryLog()
	if qlog != nil {
		st := qlog.Stats()
		log.Info("query log closed", zap.Uint64("written", st.Written), zap.Uint64("dropped", st.Dropped))
	}
	log.Info("stopped")
	return nil
}

func shutdownServer(srv *resolver.Server, cfg *Config, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown cut queries short", zap.Error(err))
	}
}

// reload re-reads the configuration file, validates it, and applies the
// lists, clients, upstreams, blocking policy, access list and rate limits
// without dropping a query; an invalid file is rejected and the running
// configuration stays. Listeners, the store, the HTTP address, the query
// log and the cache size need a restart.
func (inst *instance) reload(ctx context.Context) error {
	inst.reloadMu.Lock()
	defer inst.reloadMu.Unlock()
	old := inst.cfg
	cfg, err := loadConfig(old.path)
	if err != nil {
		return err
	}
	if old.overrides != nil {
		cfg.overrides = old.overrides
		if err := cfg.overrides(cfg); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	if err := inst.chain.Reconfigure(resolver.ChainConfig{Upstream: cfg.Upstream, Cache: cfg.Cache, Blocking: cfg.Blocking}); err != nil {
		return fmt.Errorf("applying upstreams: %w", err)
	}
	var limiter *resolver.Limiter
	if cfg.RateLimit.Enabled {
		limiter = resolver.NewLimiter(cfg.RateLimit, cfg.Identify.TrustedForwarders)
	}
	inst.srv.Reconfigure(cfg.Server.Allow, resolver.NewClients(cfg.Clients, cfg.Identify), limiter, cfg.RateLimit.Action == "refused")
	if err := inst.lists.Reconfigure(ctx, cfg.Updates, cfg.Lists); err != nil {
		return fmt.Errorf("applying lists: %w", err)
	}
	inst.reloads.Add(1)
	inst.log.Info("configuration reloaded", zap.String("config", cfg.Source), zap.Int("rules", inst.lists.Current().Matcher.Len()))
	return nil
}

// instance is a running Vigil, as the API sees it.
type instance struct {
	cfg   *Config
	srv   *resolver.Server
	chain *resolver.Chain
	lists *blocklists.Manager
	qlog  *querylog.Log // nil when the log is off
	logs  *querylog.Log // never nil: reads the log, written or not
	pause *resolver.Pauser
	log   *zap.Logger

	series   *seriesRecorder
	reloadMu sync.Mutex // one reload at a time
	reloads  atomic.Int64
	store    *store.Store
	apiAddr  string
	started  time.Time
}

// newLogger builds the process logger. Production sampling stays on so a
// storm of identical messages cannot flood the disk.
func newLogger(cfg LogConfig, w io.Writer) (*zap.Logger, error) {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.Format == "json" {
		enc = zapcore.NewJSONEncoder(encCfg)
	} else {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	sink := zapcore.AddSync(w)
	if f, ok := w.(*os.File); ok {
		sink = zapcore.Lock(f)
	}
	core := zapcore.NewCore(enc, sink, cfg.Level)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core, zap.ErrorOutput(sink)), nil
}

const cacheSnapshot = "cache"

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

func saveCache(c *resolver.Cache, st *store.Store, log *zap.Logger) {
	start := time.Now()
	snap := c.Snapshot()
	if err := st.PutSnapshot(cacheSnapshot, snap); err != nil {
		log.Warn("saving the cache", zap.Error(err))
		return
	}
	log.Debug("cache saved", zap.Int("bytes", len(snap)), zap.Duration("took", time.Since(start)))
}

// seriesRecorder adds the queries and blocked lookups counted since its
// last flush to the store's hourly totals (for the dashboard's charts).
type seriesRecorder struct {
	inst         *instance
	mu           sync.Mutex
	lastQ, lastB uint64
}

func (sr *seriesRecorder) totals() (q, b uint64) {
	for _, results := range sr.inst.srv.Metrics().ByResult {
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
	if err := sr.inst.store.AddSeries(time.Now(), q-sr.lastQ, b-sr.lastB, sr.inst.cfg.QueryLog.Retention); err != nil {
		sr.inst.log.Warn("recording hourly totals", zap.Error(err))
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

// seriesInterval is how often hourly totals are brought up to date.
const seriesInterval = 10 * time.Second
