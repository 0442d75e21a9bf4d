// Package pgtest gives tests a real PostgreSQL database of their own.
//
// Where it comes from, in order:
//   - $VIGIL_TEST_POSTGRES, a DSN of a server the tests may create
//     databases on (.ci/run starts a throwaway cluster and sets it);
//   - otherwise a throwaway cluster this test binary starts itself, when
//     PostgreSQL's initdb is installed (on PATH or under
//     /usr/lib/postgresql/*/bin): initdb in a temporary directory, run as
//     an unprivileged user when the tests run as root (PostgreSQL refuses
//     to run as root), listening on a Unix socket in that directory only,
//     stopped by Main when the package's tests end;
//   - otherwise the test is skipped, saying why.
//
// Each DB call creates a fresh database, dropped when the test ends, so
// tests never see each other's tables.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding an administrative DSN.
const EnvDSN = "VIGIL_TEST_POSTGRES"

// cluster is the throwaway cluster of this test binary, if it started one.
type cluster struct {
	once   sync.Once
	dsn    string // administrative DSN; "" when none could be had
	reason string // why not, when dsn is ""
	dir    string
	pgCtl  string
	cred   *syscall.Credential
}

// The test binary's one cluster: a package-level variable because a test
// binary has exactly one lifetime, and Main must reach it to stop it.
var local cluster

// Main runs the package's tests and stops the throwaway cluster, if one
// was started. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	local.stop()
	return code
}

// DB returns the DSN of a new, empty database for t, dropped at the end
// of t. It skips t when no PostgreSQL server can be had.
func DB(t testing.TB) string {
	t.Helper()
	admin, reason := adminDSN()
	if admin == "" {
		t.Skipf("no PostgreSQL for this test: %s", reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "vigil_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(admin, name)
}

// withDatabase returns dsn naming database name instead.
func withDatabase(dsn, name string) string {
	if strings.Contains(dsn, "://") {
		// URL form: replace the path.
		if i := strings.Index(dsn[strings.Index(dsn, "://")+3:], "/"); i >= 0 {
			head := dsn[:strings.Index(dsn, "://")+3+i]
			rest := dsn[len(head)+1:]
			query := ""
			if q := strings.IndexByte(rest, '?'); q >= 0 {
				query = rest[q:]
			}
			return head + "/" + name + query
		}
		if q := strings.IndexByte(dsn, '?'); q >= 0 {
			return dsn[:q] + "/" + name + dsn[q:]
		}
		return dsn + "/" + name
	}
	return dsn + " dbname=" + name
}

// Admin returns the administrative DSN (for tests that stop and start
// the server or create roles), skipping t when there is none.
func Admin(t testing.TB) string {
	t.Helper()
	admin, reason := adminDSN()
	if admin == "" {
		t.Skipf("no PostgreSQL for this test: %s", reason)
	}
	return admin
}

// Local reports whether the server is this binary's own throwaway
// cluster, which Stop and Start may take down and bring back.
func Local() bool {
	admin, _ := adminDSN()
	return admin != "" && local.dir != ""
}

// Stop stops this binary's own cluster (fast shutdown); Start brings it
// back on the same socket. Tests that play an outage use them and skip
// when Local is false.
func Stop(t testing.TB) {
	t.Helper()
	if err := local.ctl("stop", "-m", "fast", "-w"); err != nil {
		t.Fatalf("stopping PostgreSQL: %v", err)
	}
}

// Start starts this binary's cluster again after Stop.
func Start(t testing.TB) {
	t.Helper()
	if err := local.start(); err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
}

func adminDSN() (dsn, reason string) {
	if env := os.Getenv(EnvDSN); env != "" {
		return env, ""
	}
	local.once.Do(local.init)
	return local.dsn, local.reason
}

func findInitdb() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	return matches[len(matches)-1] // the newest version sorts last
}

func (c *cluster) init() {
	initdb := findInitdb()
	if initdb == "" {
		c.reason = "$" + EnvDSN + " is not set and PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)"
		return
	}
	bin := filepath.Dir(initdb)
	c.pgCtl = filepath.Join(bin, "pg_ctl")
	dir, err := os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		c.reason = "creating the cluster directory: " + err.Error()
		return
	}
	c.dir = dir
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			c.fail("running as root and " + err.Error())
			return
		}
		c.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			c.fail("chown of the cluster directory: " + err.Error())
			return
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(initdb, "-D", data, "-U", "vigil", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		c.fail(fmt.Sprintf("initdb: %v: %s", err, out))
		return
	}
	conf := "listen_addresses = ''\nunix_socket_directories = '" + dir + "'\nfsync = off\n" +
		"synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		c.fail("writing postgresql.conf: " + err.Error())
		return
	}
	if err := c.start(); err != nil {
		c.fail(err.Error())
		return
	}
	c.dsn = "host=" + dir + " user=vigil dbname=postgres sslmode=disable"
}

func (c *cluster) start() error {
	return c.ctl("start", "-w", "-t", "60", "-l", filepath.Join(c.dir, "server.log"))
}

func (c *cluster) ctl(args ...string) error {
	if c.dir == "" {
		return errors.New("no local cluster")
	}
	args = append([]string{"-D", filepath.Join(c.dir, "data")}, args...)
	if out, err := c.run(c.pgCtl, args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("pg_ctl %s: %v: %s\n%s", args[2], err, out, log)
	}
	return nil
}

func (c *cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

func (c *cluster) fail(reason string) {
	c.reason = reason
	os.RemoveAll(c.dir)
	c.dir = ""
}

func (c *cluster) stop() {
	if c.dir == "" || c.dsn == "" {
		return
	}
	_ = c.ctl("stop", "-m", "immediate", "-w")
	os.RemoveAll(c.dir)
}

// unprivileged picks the user a root test run starts PostgreSQL as: the
// postgres user Debian's package creates, else nobody.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("neither a postgres nor a nobody user exists to run PostgreSQL as")
}
