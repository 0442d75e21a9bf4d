// Package alerts tells the user when something new phones home: a new
// device on the network, a device contacting a vendor it never contacted
// before, and operational trouble (a list source failing, no rules in
// use). It reads the per-client log and the lists' state off the query
// path, remembers in the store what it has seen and sent, so a restart
// announces nothing twice, and delivers through what people already run:
// a generic webhook (signed), ntfy, Gotify, Slack-compatible webhooks.
package alerts

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Rules.
const (
	RuleNewDevice   = "new_device"
	RuleNewVendor   = "new_vendor"
	RuleListFailing = "list_failing"
	RuleNoRules     = "no_rules"
)

// Rules are the rules this version evaluates, in the order documented.
var Rules = []string{RuleNewDevice, RuleNewVendor, RuleListFailing, RuleNoRules}

// Destination kinds.
const (
	KindWebhook = "webhook"
	KindNtfy    = "ntfy"
	KindGotify  = "gotify"
	KindSlack   = "slack" // Slack, Mattermost and Discord (…/slack) incoming webhooks
)

// Config is the [alerts] section.
type Config struct {
	// Enabled turns alerts on (the default); they run once a destination
	// is configured.
	Enabled bool `toml:"enabled"`
	// Rules are the rules evaluated; omitted, all of them.
	Rules []string `toml:"rules"`
	// Digest, when positive, gathers the alerts of each interval into one
	// message.
	Digest time.Duration `toml:"digest"`
	// Interval is how often the log is read for new things.
	Interval time.Duration `toml:"interval"`
	// ListFailingAfter is how long a list source must fail before
	// list_failing fires.
	ListFailingAfter time.Duration `toml:"list_failing_after"`
	// Destinations are where alerts go.
	Destinations []DestinationConfig `toml:"destinations"`
}

// DestinationConfig is one [[alerts.destinations]] table.
type DestinationConfig struct {
	// Name identifies it ("vigil alerts test -destination NAME").
	Name string `toml:"name"`
	// Kind is "webhook", "ntfy", "gotify" or "slack".
	Kind string `toml:"kind"`
	// URL is where to send: the webhook's, the ntfy topic's
	// ("https://ntfy.sh/my-topic"), the Gotify server's, the incoming
	// webhook's.
	URL string `toml:"url"`
	// Secret signs webhook bodies (HMAC-SHA256, header
	// X-Vigil-Signature: sha256=HEX); it is never logged.
	Secret string `toml:"secret"`
	// Token is Gotify's application token, or an ntfy access token; never
	// logged.
	Token string `toml:"token"`
}

// DefaultConfig returns the [alerts] defaults: every rule, no digest,
// the log read every 20 s, a source failing for 6 h.
func DefaultConfig() Config {
	return Config{Enabled: true, Rules: slices.Clone(Rules), Interval: 20 * time.Second, ListFailingAfter: 6 * time.Hour}
}

// On reports whether alerts are evaluated.
func (c *Config) On() bool { return c.Enabled && len(c.Destinations) > 0 }

// RuleOn reports whether rule is evaluated.
func (c *Config) RuleOn(rule string) bool { return slices.Contains(c.Rules, rule) }

// Validate checks the section; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	for i, r := range c.Rules {
		if !slices.Contains(Rules, r) {
			errs = append(errs, fmt.Errorf("alerts.rules[%d]: want one of %s, got %q", i, strings.Join(Rules, ", "), r))
		}
	}
	if c.Digest < 0 || c.Digest > 24*time.Hour {
		errs = append(errs, fmt.Errorf("alerts.digest: want \"0s\" (each alert at once) to \"24h\", got %q", c.Digest))
	}
	if c.Interval < time.Second || c.Interval > time.Hour {
		errs = append(errs, fmt.Errorf("alerts.interval: want \"1s\" to \"1h\", got %q", c.Interval))
	}
	if c.ListFailingAfter < time.Minute {
		errs = append(errs, fmt.Errorf("alerts.list_failing_after: want at least \"1m\", got %q", c.ListFailingAfter))
	}
	names := map[string]bool{}
	for i, d := range c.Destinations {
		at := fmt.Sprintf("alerts.destinations[%d]", i)
		if d.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: want a name such as \"phone\"", at))
		} else if names[d.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used by another destination", at, d.Name))
		}
		names[d.Name] = true
		switch d.Kind {
		case KindWebhook, KindNtfy, KindGotify, KindSlack:
		default:
			errs = append(errs, fmt.Errorf("%s.kind: want \"webhook\", \"ntfy\", \"gotify\" or \"slack\", got %q", at, d.Kind))
		}
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.url: want an http(s) URL, got %q", at, d.URL))
		}
		if d.Kind == KindGotify && d.Token == "" {
			errs = append(errs, fmt.Errorf("%s.token: Gotify wants the application's token", at))
		}
	}
	return errors.Join(errs...)
}
