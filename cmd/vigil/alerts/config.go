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
	RuleNewDevice     = "new_device"
	RuleNewVendor     = "new_vendor"
	RuleSpike         = "spike"
	RuleIdleBeacon    = "idle_beacon"
	RuleListFailing   = "list_failing"
	RuleNoRules       = "no_rules"
	RuleUpstreamsDown = "upstreams_down"
	RuleLogDropping   = "log_dropping"
	RuleLowDisk       = "low_disk"
)

// Rules are the rules this version evaluates, in the order documented.
var Rules = []string{RuleNewDevice, RuleNewVendor, RuleSpike, RuleIdleBeacon, RuleListFailing, RuleNoRules,
	RuleUpstreamsDown, RuleLogDropping, RuleLowDisk}

// Destination kinds.
const (
	KindWebhook = "webhook"
	KindNtfy    = "ntfy"
	KindGotify  = "gotify"
	KindSlack   = "slack" // Slack, Mattermost and Discord (…/slack) incoming webhooks
	KindMatrix  = "matrix"
	KindSMTP    = "smtp" // email
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
	// SpikeFactor and SpikeFloor: spike fires when a device's blocked
	// lookups in an hour exceed SpikeFactor times its hourly median over
	// the 7 days before, and SpikeFloor.
	SpikeFactor float64 `toml:"spike_factor"`
	SpikeFloor  int     `toml:"spike_floor"`
	// Night is the window ("HH:MM" to "HH:MM", local time) in which a
	// device looking a blocked name up at a steady interval raises
	// idle_beacon, once the window has passed.
	Night [2]string `toml:"night"`
	// Groups, when set, limit the device rules (new_device, new_vendor,
	// spike, idle_beacon) to the devices in these [[groups]].
	Groups []string `toml:"groups"`
	// Scope sets the groups of one rule, over Groups: {spike = ["kids"]}.
	Scope map[string][]string `toml:"scope"`
	// Quiet is a window ("HH:MM" to "HH:MM", local time; empty for none)
	// in which alerts are held, and sent as one message when it ends.
	Quiet []string `toml:"quiet"`
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
	// Token is Gotify's application token, an ntfy access token, or a
	// Matrix access token; never logged.
	Token string `toml:"token"`
	// Room is the Matrix room's ID ("!abc:example.org").
	Room string `toml:"room"`
	// From and To are an email's sender and recipients (smtp; URL is
	// "smtp://host:port"). Username and Password log in (PLAIN, only
	// over TLS); StartTLS upgrades the connection first.
	From     string   `toml:"from"`
	To       []string `toml:"to"`
	Username string   `toml:"username"`
	Password string   `toml:"password"`
	StartTLS bool     `toml:"starttls"`
}

// DefaultConfig returns the [alerts] defaults: every rule, no digest,
// the log read every 20 s, a source failing for 6 h.
func DefaultConfig() Config {
	return Config{Enabled: true, Rules: slices.Clone(Rules), Interval: 20 * time.Second, ListFailingAfter: 6 * time.Hour,
		SpikeFactor: 5, SpikeFloor: 50, Night: [2]string{"00:00", "05:00"}, Quiet: []string{}, Groups: []string{},
		Scope: map[string][]string{}}
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
	for rule := range c.Scope {
		if !slices.Contains([]string{RuleNewDevice, RuleNewVendor, RuleSpike, RuleIdleBeacon}, rule) {
			errs = append(errs, fmt.Errorf("alerts.scope.%s: want a device rule (new_device, new_vendor, spike, idle_beacon)", rule))
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
	if c.SpikeFactor < 1 {
		errs = append(errs, fmt.Errorf("alerts.spike_factor: want at least 1, got %g", c.SpikeFactor))
	}
	if c.SpikeFloor < 1 {
		errs = append(errs, fmt.Errorf("alerts.spike_floor: want at least 1, got %d", c.SpikeFloor))
	}
	for i, t := range c.Night {
		if _, err := clock(t); err != nil {
			errs = append(errs, fmt.Errorf("alerts.night[%d]: %w", i, err))
		}
	}
	switch len(c.Quiet) {
	case 0:
	case 2:
		for i, t := range c.Quiet {
			if _, err := clock(t); err != nil {
				errs = append(errs, fmt.Errorf("alerts.quiet[%d]: %w", i, err))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("alerts.quiet: want [] or [\"22:00\", \"07:00\"], got %q", c.Quiet))
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
		case KindWebhook, KindNtfy, KindGotify, KindSlack, KindMatrix, KindSMTP:
		default:
			errs = append(errs, fmt.Errorf("%s.kind: want \"webhook\", \"ntfy\", \"gotify\", \"slack\", \"matrix\" or \"smtp\", got %q", at, d.Kind))
		}
		if d.Kind == KindSMTP {
			if u, err := url.Parse(d.URL); err != nil || u.Scheme != "smtp" || u.Port() == "" {
				errs = append(errs, fmt.Errorf("%s.url: want \"smtp://host:port\", got %q", at, d.URL))
			}
			if d.From == "" || len(d.To) == 0 {
				errs = append(errs, fmt.Errorf("%s: email wants from and to", at))
			}
			continue
		}
		if d.Kind == KindMatrix && (d.Token == "" || !strings.HasPrefix(d.Room, "!")) {
			errs = append(errs, fmt.Errorf("%s: Matrix wants token (an access token) and room (\"!id:server\")", at))
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

// clock reads "HH:MM" into minutes after midnight.
func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want a time of day such as \"22:00\", got %q", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// inWindow reports whether t's local time of day is in [from, to), which
// may run past midnight.
func inWindow(t time.Time, from, to int) bool {
	m := t.Hour()*60 + t.Minute()
	if from <= to {
		return m >= from && m < to
	}
	return m >= from || m < to
}
