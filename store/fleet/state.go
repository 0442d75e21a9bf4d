package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/store"
)

// Shared state. What a user sets from any replica's API, CLI or dashboard
// (names allowed now, exceptions, device names, devices moved between
// groups, pauses) is a set of keys, each with a version (the time of its
// change) and a deleted flag, so that merging keeps the latest of each
// key. A replica pushes its changes to vigil_state and announces them with
// NOTIFY; every replica LISTENs and applies what is newer than what it
// holds, within a second. A replica that was away (or a database that
// was) catches up by merging both ways when it connects, so nothing set
// while PostgreSQL was down is lost: it waits in the local store.

// StateStore is a replica's side of the shared state.
type StateStore interface {
	// SharedState returns every shared key's latest state.
	SharedState() ([]store.SharedChange, error)
	// ApplyShared applies a change from the fleet if it is newer.
	ApplyShared(store.SharedChange) (bool, error)
}

// dbKey is a store key as vigil_state keeps it: PostgreSQL's text holds
// no NUL byte, which the exceptions' keys use as a separator, so "%" and
// NUL are percent-escaped. storeKey reverses it.
func dbKey(k string) string {
	return strings.NewReplacer("%", "%25", "\x00", "%00").Replace(k)
}

func storeKey(k string) string {
	return strings.NewReplacer("%00", "\x00", "%25", "%").Replace(k)
}

// stateChannel is the NOTIFY channel of shared changes.
const stateChannel = "vigil_state"

// notice is the payload of a NOTIFY: which key changed, where, when.
type notice struct {
	Key     string `json:"k"`
	Origin  string `json:"o"`
	Version int64  `json:"v"`
}

// Publish hands a local change to the fleet. It never blocks: with the
// queue full (the database away for long), the change waits in the local
// store and the next merge carries it.
func (f *Fleet) Publish(c store.SharedChange) {
	select {
	case f.outbox <- c:
	default:
		f.resync.Store(true)
	}
}

// resyncEvery bounds how long a missed notification (a replica whose
// connection dropped and came back between two) can go unnoticed.
const resyncEvery = 5 * time.Minute

// RunState keeps st in step with the fleet until ctx ends: a merge when
// the database is reached, then pushes and notifications; applied is
// called with the keys a change from the fleet changed here.
func (f *Fleet) RunState(ctx context.Context, st StateStore, applied func(keys []string)) {
	backoff := time.Second
	for ctx.Err() == nil {
		if !f.ready.Load() {
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		merged, err := f.syncState(ctx, st, applied)
		if ctx.Err() != nil {
			return
		}
		if merged {
			backoff = time.Second // it worked for a while: start again from a second
		}
		f.noteError("sharing state with the fleet", err)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// syncState merges, then pushes and listens until an error; merged says
// it got as far as a merge.
func (f *Fleet) syncState(ctx context.Context, st StateStore, applied func([]string)) (merged bool, err error) {
	pc, err := f.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	// The listening connection leaves the pool: a LISTEN must not follow
	// it back to other users.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+stateChannel); err != nil {
		return false, err
	}
	f.resync.Store(false)
	if err := f.mergeState(ctx, st, applied); err != nil {
		return false, err
	}
	lctx, stop := context.WithCancel(ctx)
	notes := make(chan *pgconn.Notification)
	errc := make(chan error, 1)
	listening := make(chan struct{})
	// Before the connection closes (the deferred Close above, which runs
	// after this), the listener must have stopped using it.
	defer func() { stop(); <-listening }()
	go func() {
		defer close(listening)
		for {
			n, err := conn.WaitForNotification(lctx)
			if err != nil {
				errc <- err
				return
			}
			select {
			case notes <- n:
			case <-lctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case err := <-errc:
			return true, err
		case c := <-f.outbox:
			if err := f.push(ctx, c); err != nil && !badData(err) {
				return true, err // the change is in the local store: the next merge carries it
			}
		case n := <-notes:
			if err := f.receive(ctx, st, n.Payload, applied); err != nil {
				return true, err
			}
		case <-tick.C:
			f.resync.Store(true)
		}
		if f.resync.Swap(false) {
			if err := f.mergeState(ctx, st, applied); err != nil {
				return true, err
			}
		}
	}
}

// badData reports whether PostgreSQL refused a change for what it holds
// (SQLSTATE class 22, data exception: say, a byte sequence that is not
// UTF-8), not for being away: that change is skipped (and logged by push),
// so one bad key does not hold up every other.
func badData(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// push writes one change, if it is newer than the database's, and
// announces it.
func (f *Fleet) push(ctx context.Context, c store.SharedChange) error {
	payload, _ := json.Marshal(notice{Key: dbKey(c.Key), Origin: f.replica, Version: c.Version})
	value := c.Value
	if c.Deleted {
		value = nil
	} else if value == nil {
		value = []byte{}
	}
	_, err := f.pool.Exec(ctx, `WITH up AS (
		INSERT INTO vigil_state (key, value, deleted, version, origin, updated) VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, deleted = excluded.deleted, version = excluded.version,
			origin = excluded.origin, updated = now()
		WHERE vigil_state.version < excluded.version
		RETURNING key)
		SELECT pg_notify($6, $7) FROM up`, dbKey(c.Key), value, c.Deleted, c.Version, f.replica, stateChannel, string(payload))
	if badData(err) {
		f.log.Warn("the fleet's database refused a shared change; it stays on this replica", zap.String("key", c.Key), zap.Error(err))
	}
	if err != nil {
		return err
	}
	f.statePushed.Add(1)
	return nil
}

// receive applies the change a notification names, unless it is ours.
func (f *Fleet) receive(ctx context.Context, st StateStore, payload string, applied func([]string)) error {
	var n notice
	if json.Unmarshal([]byte(payload), &n) != nil || n.Origin == f.replica {
		return nil
	}
	var c store.SharedChange
	err := f.pool.QueryRow(ctx, "SELECT key, value, deleted, version FROM vigil_state WHERE key = $1", n.Key).
		Scan(&c.Key, &c.Value, &c.Deleted, &c.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	c.Key = storeKey(c.Key)
	if ok, err := st.ApplyShared(c); err != nil {
		f.log.Warn("applying a change from the fleet", zap.String("key", c.Key), zap.Error(err))
	} else if ok {
		f.stateApplied.Add(1)
		applied([]string{c.Key})
	}
	return nil
}

// mergeState brings the database and st to the latest of each key: what
// st has newer is pushed, what the database has newer is applied.
func (f *Fleet) mergeState(ctx context.Context, st StateStore, applied func([]string)) error {
	remote := map[string]store.SharedChange{}
	rows, err := f.pool.Query(ctx, "SELECT key, value, deleted, version FROM vigil_state")
	if err != nil {
		return err
	}
	var c store.SharedChange
	_, err = pgx.ForEachRow(rows, []any{&c.Key, &c.Value, &c.Deleted, &c.Version}, func() error {
		c.Key = storeKey(c.Key)
		remote[c.Key] = c
		return nil
	})
	if err != nil {
		return err
	}
	local, err := st.SharedState()
	if err != nil {
		return err
	}
	seen := map[string]store.SharedChange{}
	for _, l := range local {
		seen[l.Key] = l
		if r, ok := remote[l.Key]; !ok || l.Version > r.Version {
			if l.Version == 0 && l.Deleted {
				continue
			}
			if err := f.push(ctx, l); err != nil && !badData(err) {
				return err
			}
		}
	}
	var changed []string
	for k, r := range remote {
		if l, ok := seen[k]; ok && l.Version >= r.Version {
			continue
		}
		if ok, err := st.ApplyShared(r); err != nil {
			f.log.Warn("applying a change from the fleet", zap.String("key", k), zap.Error(err))
		} else if ok {
			f.stateApplied.Add(1)
			changed = append(changed, k)
		}
	}
	if len(changed) > 0 {
		applied(changed)
	}
	return nil
}
