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
	// Listen is the API address; empty turns the API off.
	Listen string `toml:"listen"`
	// Token is the password for the dashboard and for API calls that
	// change things; required when Listen is not a loopback address.
	Token string `toml:"token"`
	// SessionTTL is how long a dashboard login lasts.
	SessionTTL time.Duration `toml:"session_ttl"`
}

// Addr returns the address Listen names; ok is false when the API is off
// (or Listen is invalid, which Validate reports).
func (c Config) Addr() (ap netip.AddrPort, ok bool) {
	if c.Listen == "" {
		return ap, false
	}
	ap, err := netip.ParseAddrPort(c.Listen)
	return ap, err == nil
}

// Validate checks the section; it changes nothing.
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	ap, err := netip.ParseAddrPort(c.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: want ip:port such as \"127.0.0.1:8053\" (or \"\" for no API), got %q", c.Listen)
	}
	var errs []error
	if !ap.Addr().IsLoopback() && c.Token == "" {
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
