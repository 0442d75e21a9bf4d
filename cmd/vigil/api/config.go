package api

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config is the [http] section: where the API and the dashboard listen
// and who may use them.
type Config struct {
	// Listen is the API address; the zero value (written "") turns the
	// API off.
	Listen netip.AddrPort `toml:"listen"`
	// Token is the password for the dashboard and for API calls that
	// change things; required when Listen is not a loopback address.
	Token string `toml:"token"`
	// SessionTTL is how long a dashboard login lasts.
	SessionTTL time.Duration `toml:"session_ttl"`
}

// Addr returns the address the API listens on; ok is false when it is off.
func (c Config) Addr() (ap netip.AddrPort, ok bool) { return c.Listen, c.Listen.IsValid() }

// Validate checks the section; it changes nothing.
func (c Config) Validate() error {
	if !c.Listen.IsValid() {
		return nil
	}
	var errs []error
	if !c.Listen.Addr().IsLoopback() && c.Token == "" {
		errs = append(errs, fmt.Errorf("http.token: want a token (a long random string) when http.listen %q is reachable beyond loopback", c.Listen))
	}
	if c.Token != "" && len(c.Token) < 12 {
		errs = append(errs, errors.New("http.token: want at least 12 characters"))
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("http.session_ttl: want at least \"1m\", got %q", c.SessionTTL.String()))
	}
	return errors.Join(errs...)
}

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	// Enabled serves /metrics on the HTTP API's address.
	Enabled bool `toml:"enabled"`
	// ClientLabels labels blocked lookups with the client's name (named
	// clients only, so the label set stays bounded); off drops the label.
	ClientLabels bool `toml:"client_labels"`
}
