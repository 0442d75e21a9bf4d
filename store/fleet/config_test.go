package fleet

import (
	"strings"
	"testing"
	"time"
)

// A bad [fleet] section is an error naming the key and what was wanted,
// and a DSN's password never appears in it.
func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Postgres = "postgres://vigil:s3cret@db.example/vigil?sslmode=verify-full"
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.Postgres = "" }, ""}, // single node: nothing else is checked
		{func(c *Config) { c.Postgres = "postgres://vigil:s3cret@db.example:notaport/vigil" }, "fleet.postgres: want a PostgreSQL DSN"},
		{func(c *Config) { c.Replica = "dns a" }, "fleet.replica: want a name"},
		{func(c *Config) { c.ShipInterval = 0 }, "fleet.ship_interval: want 10ms to 1h"},
		{func(c *Config) { c.BatchSize = 0 }, "fleet.batch_size: want 1 to 1000000"},
		{func(c *Config) { c.PasswordFile = "/nonexistent/password" }, "fleet.password_file"},
	} {
		c := ok
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the password is in the error: %v", err)
		}
	}
	if c := (Config{Replica: "dns-a", ShipInterval: time.Second}); c.ReplicaName() != "dns-a" {
		t.Errorf("ReplicaName %q", c.ReplicaName())
	}
}
