package api

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
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
	// AllowedHosts are host names, besides localhost and IP addresses,
	// under which a loopback API may be reached (a reverse proxy's name,
	// for one). A request naming any other host is refused: a page whose
	// name an attacker points at 127.0.0.1 (DNS rebinding) sends its own.
	AllowedHosts []string `toml:"allowed_hosts"`
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
	for i, h := range c.AllowedHosts {
		if !validHostName(h) {
			errs = append(errs, fmt.Errorf("http.allowed_hosts[%d]: want a host name without port, such as \"vigil.home.arpa\", got %q", i, h))
		}
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("http.session_ttl: want at least \"1m\", got %q", c.SessionTTL.String()))
	}
	return errors.Join(errs...)
}

// validHostName says whether h is a DNS host name: letters, digits,
// hyphens and dots, labels of 1 to 63 characters, no port.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	// Enabled serves /metrics on the HTTP API's address.
	Enabled bool `toml:"enabled"`
	// ClientLabels labels blocked lookups with the client's name (named
	// clients only, so the label set stays bounded); off drops the label.
	ClientLabels bool `toml:"client_labels"`
}
