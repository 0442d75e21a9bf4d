package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema. Each migration runs once, in order, in its own transaction,
// recorded in vigil_schema; all of them run under one advisory lock, so
// replicas starting at once take turns and the later ones find the work
// done. Append new migrations; never edit one that has shipped.
//
// The log is two tables, blocked and allowed lookups, each partitioned by
// UTC day so that retention drops whole partitions (no DELETE, no vacuum).
// The primary key (ts, replica, seq) names an entry for ever: seq is its
// place in the replica's segment of that hour (querylog.Seq), and the hour
// follows from ts. It is also the time index; client and vendor get their
// own, for the API's per-device pages and vendor filters.
var migrations = []string{
	1: lookupTable("vigil_blocked") + lookupTable("vigil_allowed") + `
CREATE TABLE vigil_ship (
	replica  text        NOT NULL,
	blocked  boolean     NOT NULL,
	hour     timestamptz NOT NULL,
	position bigint      NOT NULL,
	shipped  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (replica, blocked, hour)
);
CREATE TABLE vigil_replicas (
	replica   text PRIMARY KEY,
	version   text NOT NULL DEFAULT '',
	last_seen timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE vigil_state (
	key     text        PRIMARY KEY,
	value   bytea,
	deleted boolean     NOT NULL DEFAULT false,
	version bigint      NOT NULL,
	origin  text        NOT NULL,
	updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vigil_state_version ON vigil_state (version);
`,
}

func lookupTable(name string) string {
	return strings.ReplaceAll(`
CREATE TABLE {T} (
	ts          timestamptz NOT NULL,
	replica     text        NOT NULL,
	seq         bigint      NOT NULL,
	client      text        NOT NULL,
	client_name text        NOT NULL DEFAULT '',
	client_addr text        NOT NULL DEFAULT '',
	mac         text        NOT NULL DEFAULT '',
	qname       text        NOT NULL,
	qtype       text        NOT NULL DEFAULT '',
	list        text        NOT NULL DEFAULT '',
	vendor      text        NOT NULL DEFAULT '',
	rule        text        NOT NULL DEFAULT '',
	reason      text        NOT NULL DEFAULT '',
	cname       text        NOT NULL DEFAULT '',
	proto       text        NOT NULL DEFAULT '',
	grp         text        NOT NULL DEFAULT '',
	PRIMARY KEY (ts, replica, seq)
) PARTITION BY RANGE (ts);
CREATE INDEX {T}_client ON {T} (client, ts);
CREATE INDEX {T}_vendor ON {T} (vendor, ts);
`, "{T}", name)
}

// The advisory lock keys Vigil takes: one for migrations, one for the
// partitions' DDL. Arbitrary constants ("vigil" and 1, 2).
const (
	lockMigrate    = 0x766967696c0001
	lockPartitions = 0x766967696c0002
)

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) - 1 }

// migrate brings the database's schema up to date. Safe to run from
// several replicas at once: the advisory lock serialises them.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockMigrate)); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has ended.
		unlock, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(unlock, "SELECT pg_advisory_unlock($1)", int64(lockMigrate))
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS vigil_schema (
		version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("creating vigil_schema: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM vigil_schema").Scan(&have); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if have > SchemaVersion() {
		return fmt.Errorf("the database's schema is version %d, newer than this Vigil's %d: upgrade this replica", have, SchemaVersion())
	}
	for v := have + 1; v <= SchemaVersion(); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO vigil_schema (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return fmt.Errorf("schema migration %d: %w", v, err)
		}
	}
	return nil
}

// table returns the log table of a kind.
func table(blocked bool) string {
	if blocked {
		return "vigil_blocked"
	}
	return "vigil_allowed"
}

// partitionName returns the name of a table's partition for a UTC day.
func partitionName(blocked bool, day time.Time) string {
	return table(blocked) + "_" + day.UTC().Format("20060102")
}

// ensurePartitions creates the kind's partitions for the days given that
// do not exist yet. The DDL runs under an advisory lock, because two
// replicas' CREATE TABLE IF NOT EXISTS can still collide.
func ensurePartitions(ctx context.Context, pool *pgxpool.Pool, blocked bool, days []time.Time) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockPartitions)); err != nil {
			return err
		}
		for _, d := range days {
			d = d.UTC().Truncate(24 * time.Hour)
			sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
				partitionName(blocked, d), table(blocked), d.Format(time.RFC3339), d.Add(24*time.Hour).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("creating partition %s: %w", partitionName(blocked, d), err)
			}
		}
		return nil
	})
}

// dropExpired drops the kind's partitions whose whole day ended before
// cutoff, and returns their names.
func dropExpired(ctx context.Context, pool *pgxpool.Pool, blocked bool, cutoff time.Time) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = $1`, table(blocked))
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, name := range names {
		day, err := time.Parse("20060102", strings.TrimPrefix(name, table(blocked)+"_"))
		if err != nil || !day.Add(24*time.Hour).Before(cutoff) && !day.Add(24*time.Hour).Equal(cutoff) {
			continue
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockPartitions)); err != nil {
				return err
			}
			// Dropping a partition locks the whole table: rather than
			// queue every COPY and read behind a long read, give up and
			// try again at the next hourly round.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+name)
			return err
		})
		if err != nil {
			return dropped, fmt.Errorf("dropping partition %s: %w", name, err)
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}
