package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Spool is what the shipper reads: the per-client log's segments
// (*querylog.Log).
type Spool interface {
	SpoolSegments(blocked bool) ([]querylog.SpoolSegment, error)
	ReadSpool(seg querylog.SpoolSegment, offset int64, fn func(start, end int64, entries []querylog.Entry) bool) (int64, querylog.SpoolState, error)
}

// Fleet is this replica's connection to the shared database: the shipper
// of its log (ship.go) and the fleet-wide reader (read.go). Opening it
// does not connect; Run does, and keeps trying, so that a database that
// is down at start never holds up DNS.
type Fleet struct {
	cfg     Config
	replica string
	pool    *pgxpool.Pool
	log     *zap.Logger
	spool   Spool
	// Retention per kind: partitions whose whole day is older are
	// dropped. Every replica drops by its own settings, so the shortest
	// retention in the fleet wins: give them all the same.
	retention, allowedRetention time.Duration
	// shipAllowed ships the log of allowed lookups too (log_allowed).
	shipAllowed bool
	now         func() time.Time

	ready atomic.Bool // the schema is migrated: reads may go to the database

	// copyBuf is the shipper's COPY text, reused batch to batch (only
	// Run's goroutine ships).
	copyBuf []byte
	// tsSecond and tsText are the last second encodeEntry wrote, as text.
	tsSecond int64
	tsText   []byte

	mu         sync.Mutex
	positions  map[posKey]int64 // shipped up to, per segment; loaded at the first ship
	partitions map[string]bool  // partitions known to exist
	unshipped  map[posKey]int64 // bytes not shipped yet, per segment, for counting losses

	// outbox carries local changes of the shared state to RunState;
	// resync asks it for a full merge (the outbox overflowed, or time).
	outbox chan store.SharedChange
	resync atomic.Bool

	shipped, batches, errorsTotal, lostBytes atomic.Uint64
	statePushed, stateApplied                atomic.Uint64
	pending                                  atomic.Int64 // bytes of the spool not shipped yet
	connected                                atomic.Bool
	lastErr                                  atomic.Pointer[string]
	lastShip                                 atomic.Int64 // unix nanos
}

type posKey struct {
	blocked bool
	hour    int64 // unix seconds
}

// Options are what Open needs besides the [fleet] section.
type Options struct {
	// Spool is the local log the shipper reads.
	Spool Spool
	// Retention and AllowedRetention are querylog.retention and
	// querylog.allowed_retention: how long the database keeps each kind.
	Retention, AllowedRetention time.Duration
	// ShipAllowed ships allowed lookups too (querylog.log_allowed).
	ShipAllowed bool
}

// Open prepares the connection pool for a validated, enabled cfg. It does
// not connect.
func Open(cfg Config, opts Options, log *zap.Logger) (*Fleet, error) {
	cc, err := cfg.connConfig()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pc.ConnConfig = cc
	pc.MaxConns = 4
	pc.MinConns = 0
	pc.HealthCheckPeriod = 15 * time.Second
	pc.ConnConfig.RuntimeParams["application_name"] = "vigil " + cfg.ReplicaName()
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("fleet.postgres: %s", redact(err.Error(), cfg.Postgres))
	}
	return &Fleet{
		cfg: cfg, replica: cfg.ReplicaName(), pool: pool, log: log, spool: opts.Spool,
		retention: opts.Retention, allowedRetention: opts.AllowedRetention, shipAllowed: opts.ShipAllowed,
		now: time.Now, partitions: map[string]bool{}, unshipped: map[posKey]int64{},
		outbox: make(chan store.SharedChange, 1024),
	}, nil
}

// Replica returns this replica's name.
func (f *Fleet) Replica() string { return f.replica }

// Ready reports whether the database has been reached and its schema is
// current, so that reads may go to it.
func (f *Fleet) Ready() bool { return f.ready.Load() }

// Close closes the pool. Call it after Run has returned.
func (f *Fleet) Close() { f.pool.Close() }

// maxBackoff bounds the wait between two attempts to reach the database:
// the entries pile up locally meanwhile, and each second of waiting after
// it is back is a second more of catching up.
const maxBackoff = 8 * time.Second

// Run migrates the schema (retrying until the database answers), then
// ships the log every ShipInterval and drops expired partitions hourly,
// until ctx ends. Each failure waits longer before the next try, up to
// maxBackoff; DNS is never waited for.
func (f *Fleet) Run(ctx context.Context) {
	backoff := time.Second
	wait := func(d time.Duration) bool { return sleep(ctx, d) }
	fail := func(what string, err error) bool {
		f.noteError(what, err)
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, maxBackoff)
		return wait(d)
	}
	for !f.ready.Load() {
		if err := f.start(ctx); err != nil {
			if ctx.Err() != nil || !fail("reaching the fleet database", err) {
				return
			}
			continue
		}
		f.ready.Store(true)
		f.connected.Store(true)
		f.log.Info("fleet database ready", zap.String("replica", f.replica), zap.Int("schema", SchemaVersion()))
	}
	backoff = time.Second
	lastRetention := time.Time{}
	for {
		err := f.shipOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.connected.Store(false)
			if !fail("shipping the log to the fleet database", err) {
				return
			}
			continue
		}
		f.connected.Store(true)
		backoff = time.Second
		if f.now().Sub(lastRetention) >= time.Hour {
			f.expire(ctx)
			lastRetention = f.now()
		}
		if !wait(f.cfg.ShipInterval) {
			return
		}
	}
}

// start migrates the schema and records the replica.
func (f *Fleet) start(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := migrate(cctx, f.pool); err != nil {
		return err
	}
	_, err := f.pool.Exec(cctx, `INSERT INTO vigil_replicas (replica, last_seen) VALUES ($1, now())
		ON CONFLICT (replica) DO UPDATE SET last_seen = now()`, f.replica)
	return err
}

func (f *Fleet) noteError(what string, err error) {
	f.errorsTotal.Add(1)
	msg := what + ": " + redact(err.Error(), f.cfg.Postgres)
	if old := f.lastErr.Swap(&msg); old == nil || *old != msg {
		f.log.Warn(what+"; retrying (DNS is not affected)", zap.String("error", redact(err.Error(), f.cfg.Postgres)))
	}
}

// expire drops the partitions past each kind's retention.
func (f *Fleet) expire(ctx context.Context) {
	for _, k := range []struct {
		blocked bool
		keep    time.Duration
	}{{true, f.retention}, {false, f.allowedRetention}} {
		if k.keep <= 0 {
			continue
		}
		dropped, err := dropExpired(ctx, f.pool, k.blocked, f.now().Add(-k.keep))
		if err != nil {
			f.noteError("dropping expired partitions", err)
		}
		// The positions of segments long expired everywhere.
		if _, err := f.pool.Exec(ctx, "DELETE FROM vigil_ship WHERE replica = $1 AND blocked = $2 AND hour < $3",
			f.replica, k.blocked, f.now().Add(-k.keep-24*time.Hour)); err != nil {
			f.noteError("forgetting old shipping positions", err)
		}
		if len(dropped) > 0 {
			f.mu.Lock()
			for _, d := range dropped {
				delete(f.partitions, d)
			}
			f.mu.Unlock()
			f.log.Info("dropped expired log partitions", zap.Strings("partitions", dropped))
		}
	}
}

// Stats is what the fleet reports about itself (health, metrics).
type Stats struct {
	Replica   string `json:"replica"`
	Connected bool   `json:"connected"`
	Ready     bool   `json:"ready"`
	Shipped   uint64 `json:"shipped"`
	Batches   uint64 `json:"batches"`
	Errors    uint64 `json:"errors"`
	// Pending is the spool's bytes not yet shipped: it grows while the
	// database is down, within the local log's own bounds.
	Pending int64 `json:"pending_bytes"`
	// LostBytes counts spool bytes the local retention deleted before
	// they were shipped.
	LostBytes uint64    `json:"lost_bytes,omitempty"`
	LastShip  time.Time `json:"last_ship,omitzero"`
	// StatePushed and StateApplied count shared-state changes sent to the
	// fleet and taken from it.
	StatePushed  uint64 `json:"state_pushed"`
	StateApplied uint64 `json:"state_applied"`
	LastError    string `json:"last_error,omitempty"`
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	st := Stats{Replica: f.replica, Connected: f.connected.Load(), Ready: f.ready.Load(), Shipped: f.shipped.Load(),
		Batches: f.batches.Load(), Errors: f.errorsTotal.Load(), Pending: f.pending.Load(), LostBytes: f.lostBytes.Load(),
		StatePushed: f.statePushed.Load(), StateApplied: f.stateApplied.Load()}
	if ns := f.lastShip.Load(); ns > 0 {
		st.LastShip = time.Unix(0, ns)
	}
	if e := f.lastErr.Load(); e != nil && !st.Connected {
		st.LastError = *e
	}
	return st
}
