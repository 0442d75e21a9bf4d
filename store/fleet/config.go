// Package fleet makes several Vigils one: each replica ships its
// per-client log from its local segments (the spool, store/querylog) into
// PostgreSQL, reads the fleet-wide log back from there, and shares the
// state set from the UI through it.
//
// What PostgreSQL being down or slow does: nothing to DNS. Entries stay in
// the local segments, which are written first and bounded as always
// (querylog.retention, store.min_free_bytes); the shipper retries with
// backoff and resumes at its position, which it commits in the same
// transaction as the entries it ships, so nothing is shipped twice and
// nothing is skipped. Each entry's key (replica, time, seq) makes a replay
// idempotent should a position ever be lost.
package fleet

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PasswordEnv is the environment variable a DSN's password may come from,
// so it need not be written in the configuration file.
const PasswordEnv = "VIGIL_POSTGRES_PASSWORD"

// Config is the [fleet] section.
type Config struct {
	// Postgres is the DSN of the shared database (a URL or key=value
	// form, with TLS as libpq spells it: sslmode, sslrootcert, sslcert,
	// sslkey); "" runs a single node.
	Postgres string `toml:"postgres"`
	// Replica is this replica's name in the fleet; "" means the host name.
	Replica string `toml:"replica"`
	// PasswordFile holds the database password (first line), as an
	// alternative to $VIGIL_POSTGRES_PASSWORD; it wins over both.
	PasswordFile string `toml:"password_file"`
	// ShipInterval is how often the shipper looks for new entries.
	ShipInterval time.Duration `toml:"ship_interval"`
	// BatchSize is how many entries one COPY carries at most.
	BatchSize int `toml:"batch_size"`
}

// DefaultConfig returns the [fleet] defaults: off.
func DefaultConfig() Config {
	return Config{ShipInterval: time.Second, BatchSize: 20000}
}

// Enabled reports whether a fleet database is configured.
func (c *Config) Enabled() bool { return c.Postgres != "" }

// Validate checks the section without changing it.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if _, err := pgx.ParseConfig(c.Postgres); err != nil {
		errs = append(errs, fmt.Errorf("fleet.postgres: want a PostgreSQL DSN (postgres://user@host/db or host=... dbname=...): %s", redact(err.Error(), c.Postgres)))
	}
	if c.Replica != "" && (len(c.Replica) > 63 || strings.ContainsAny(c.Replica, " \t\n,")) {
		errs = append(errs, fmt.Errorf("fleet.replica: want a name of at most 63 characters without spaces or commas, got %q", c.Replica))
	}
	if c.ShipInterval < 10*time.Millisecond || c.ShipInterval > time.Hour {
		errs = append(errs, fmt.Errorf("fleet.ship_interval: want 10ms to 1h, got %q", c.ShipInterval.String()))
	}
	if c.BatchSize < 1 || c.BatchSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("fleet.batch_size: want 1 to 1000000, got %d", c.BatchSize))
	}
	if c.PasswordFile != "" {
		if _, err := os.Stat(c.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("fleet.password_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ReplicaName returns the replica's name: Replica, or the host name.
func (c *Config) ReplicaName() string {
	if c.Replica != "" {
		return c.Replica
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "vigil"
}

// connConfig parses the DSN and fills the password from the file or the
// environment.
func (c *Config) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(c.Postgres)
	if err != nil {
		return nil, fmt.Errorf("fleet.postgres: %s", redact(err.Error(), c.Postgres))
	}
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("fleet.password_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		cc.Password = strings.TrimRight(line, "\r")
	case os.Getenv(PasswordEnv) != "" && cc.Password == "":
		cc.Password = os.Getenv(PasswordEnv)
	}
	return cc, nil
}

// redact keeps a DSN's password out of an error message.
func redact(msg, dsn string) string {
	if cc, err := pgx.ParseConfig(dsn); err == nil && cc.Password != "" {
		return strings.ReplaceAll(msg, cc.Password, "xxxxx")
	}
	return msg
}
