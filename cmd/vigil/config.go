package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-dns/vigil"
	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/dnstap"
	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/fleet"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Config is the whole configuration file: one section per package, each
// owning its keys, defaults and validation.
type Config struct {
	Server    resolver.ServerConfig    `toml:"server"`
	Upstream  resolver.UpstreamConfig  `toml:"upstream"`
	Forward   []resolver.ForwardConfig `toml:"forward"`
	Network   resolver.NetworkConfig   `toml:"local"`
	Cache     resolver.CacheConfig     `toml:"cache"`
	RateLimit resolver.RateLimitConfig `toml:"ratelimit"`
	Blocking  resolver.BlockingConfig  `toml:"blocking"`
	Updates   blocklists.UpdateConfig  `toml:"blocklists"`
	Lists     []blocklists.ListConfig  `toml:"lists"`
	Clients   []resolver.ClientConfig  `toml:"clients"`
	Groups    []groups.Config          `toml:"groups"`
	Identify  resolver.IdentifyConfig  `toml:"identify"`
	QueryLog  querylog.Config          `toml:"querylog"`
	Store     store.Config             `toml:"store"`
	HTTP      api.Config               `toml:"http"`
	Metrics   api.MetricsConfig        `toml:"metrics"`
	Alerts    alerts.Config            `toml:"alerts"`
	Fleet     fleet.Config             `toml:"fleet"`
	Dnstap    dnstap.Config            `toml:"dnstap"`
	Log       LogConfig                `toml:"log"`

	// Source names where the configuration came from, for messages.
	Source string `toml:"-"`
	// path is the file read ("" for the built-in default), for reloads.
	path string
	// overrides re-applies command-line flags after a reload.
	overrides func(*Config) error
}

// LogConfig is the [log] section.
type LogConfig struct {
	// Level is the least severe level written.
	Level zapcore.Level `toml:"level"`
	// Format is "console" or "json".
	Format string `toml:"format"`
}

// Validate checks the section; it changes nothing.
func (c LogConfig) Validate() error {
	var errs []error
	if c.Level < zapcore.DebugLevel || c.Level > zapcore.ErrorLevel {
		errs = append(errs, fmt.Errorf("log.level: %s, got %q", levelWant, c.Level))
	}
	if c.Format != "console" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: want \"console\" or \"json\", got %q", c.Format))
	}
	return errors.Join(errs...)
}

const levelWant = `want "debug", "info", "warn" or "error"`

// defaultConfig is the configuration with every key at its default and no
// lists; the shipped config.toml spells out the same values.
func defaultConfig() Config {
	return Config{
		Server:    resolver.DefaultServerConfig(),
		Upstream:  resolver.DefaultUpstreamConfig(),
		Network:   resolver.DefaultNetworkConfig(),
		Cache:     resolver.DefaultCacheConfig(),
		RateLimit: resolver.DefaultRateLimitConfig(),
		Blocking:  resolver.DefaultBlockingConfig(),
		Updates:   blocklists.DefaultUpdateConfig(),
		Identify:  resolver.IdentifyConfig{TrustedForwarders: []netip.Prefix{}, LeaseFiles: []string{}, NeighborTable: "netlink", PTRNames: true},
		QueryLog:  querylog.DefaultConfig(),
		Store:     store.DefaultConfig(),
		HTTP:      api.Config{Listen: netip.MustParseAddrPort("127.0.0.1:8053"), SessionTTL: 12 * time.Hour, AllowedHosts: []string{}},
		Metrics:   api.MetricsConfig{Enabled: true, ClientLabels: true},
		Alerts:    alerts.DefaultConfig(),
		Fleet:     fleet.DefaultConfig(),
		Dnstap:    dnstap.DefaultConfig(),
		Log:       LogConfig{Level: zapcore.InfoLevel, Format: "console"},
	}
}

// defaultConfigPath is used when -config is not given and the file exists.
const defaultConfigPath = "config.toml"

// embeddedSource names the built-in configuration in messages.
const embeddedSource = "built-in config.toml"

// resolveConfigPath picks the configuration: the -config flag, else
// ./config.toml if present, else the embedded default ("").
func resolveConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat(defaultConfigPath); err == nil {
		return defaultConfigPath
	}
	return ""
}

// tokenEnv, when set, is the API token (http.token): a container or a
// service manager passes it without writing it into the file.
const tokenEnv = "VIGIL_HTTP_TOKEN"

// loadConfig reads and validates the configuration at path ("" for the
// embedded default). Errors name the file, the line where known, the key
// and what was expected.
func loadConfig(path string) (*Config, error) {
	src, name := vigil.DefaultConfig, embeddedSource
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		src, name = b, path
	}
	cfg, err := parseAll(src, name)
	if err != nil {
		return nil, err
	}
	if t := os.Getenv(tokenEnv); t != "" {
		cfg.HTTP.Token = t
	}
	if err := cfg.Validate(); err != nil {
		return nil, locateErrors(src, name, err)
	}
	cfg.path = path
	return cfg, nil
}

// locateErrors prefixes validation errors with the file's name and, for
// the errors that say which table they are about (a group's), the line.
func locateErrors(src []byte, name string, err error) error {
	errs := flattenJoined(err)
	located := false
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		line := 0
		var fe *groups.FieldError
		if errors.As(e, &fe) {
			line = groupLine(src, fe)
		} else if m := keyPathRE.FindStringSubmatch(e.Error()); m != nil {
			line = keyPathLine(src, m[1])
		}
		if line > 0 {
			out = append(out, fmt.Errorf("%s:%d: %w", name, line, e))
			located = true
			continue
		}
		out = append(out, e)
	}
	if !located {
		return fmt.Errorf("%s: %w", name, err)
	}
	for i, e := range out {
		if !strings.HasPrefix(e.Error(), name+":") {
			out[i] = fmt.Errorf("%s: %w", name, e)
		}
	}
	sortByLine(out)
	return errors.Join(out...)
}

// keyPathRE matches the key path validation errors begin with:
// "blocking.answer", "lists[2] (xiaomi).format", "clients[1] (tv)".
var keyPathRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?: \([^)]*\))?(?:\.[a-z_]+(?:\[\d+\])?)*):`)

// indexRE is an index in a key path.
var indexRE = regexp.MustCompile(`\[(\d+)\]$`)

// keyPathLine finds the line a validation error's key path points at: for
// "table.key", the line setting it; for "array[i].key" (an [[array]] of
// tables), the line setting key in the i-th table, else its header.
func keyPathLine(src []byte, path string) int {
	path = regexp.MustCompile(` \([^)]*\)`).ReplaceAllString(path, "")
	segs := strings.Split(path, ".")
	head := segs[0]
	m := indexRE.FindStringSubmatch(head)
	if m == nil {
		var key toml.Key
		for _, sg := range segs {
			key = append(key, indexRE.ReplaceAllString(sg, ""))
		}
		return keyLine(src, key)
	}
	table := strings.TrimSuffix(head, m[0])
	want, _ := strconv.Atoi(m[1])
	key := ""
	if len(segs) > 1 {
		key = indexRE.ReplaceAllString(segs[1], "")
	}
	seen, header := -1, 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		if strings.HasPrefix(text, "[") {
			if header > 0 {
				return header // the key is not set in the table
			}
			if strings.HasPrefix(text, "[[") && normalizeKey(strings.Trim(strings.SplitN(text, "#", 2)[0], " \t[]")) == table {
				if seen++; seen == want {
					header = line
					if key == "" {
						return line
					}
				}
			}
			continue
		}
		if k, _, ok := strings.Cut(text, "="); ok && header > 0 && normalizeKey(k) == key {
			return line
		}
	}
	return header
}

// flattenJoined lists the errors errors.Join put together, at any depth.
func flattenJoined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flattenJoined(e)...)
	}
	return out
}

// groupLine finds the line of a group's key in src: within the fe.Group'th
// [[groups]] table (and its fe.Schedule'th [[groups.schedules]]), the line
// setting the key, else the table's header; 0 when the groups are not
// written as tables.
func groupLine(src []byte, fe *groups.FieldError) int {
	key, _, _ := strings.Cut(fe.Key, "[")
	groupsSeen, sched := 0, -1
	header := 0
	inTarget := false
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		if strings.HasPrefix(text, "[") {
			if inTarget {
				return header // the key is not set in the table
			}
			h := normalizeKey(strings.Trim(strings.SplitN(text, "#", 2)[0], " \t[]"))
			array := strings.HasPrefix(text, "[[")
			switch {
			case h == "groups" && array:
				groupsSeen, sched = groupsSeen+1, -1
				inTarget = groupsSeen-1 == fe.Group && fe.Schedule < 0
			case h == "groups.schedules" && array:
				sched++
				inTarget = groupsSeen-1 == fe.Group && sched == fe.Schedule
			}
			if inTarget {
				header = line
				if key == "" {
					return line
				}
			}
			continue
		}
		if k, _, ok := strings.Cut(text, "="); ok && inTarget && normalizeKey(k) == key {
			return line
		}
	}
	return header
}

// maxDecodeErrors bounds how many values parseAll sets aside.
const maxDecodeErrors = 50

// parseAll is parseConfig reporting every value it cannot decode, not
// only the first: the decoder stops at the first, so each refused
// single-line setting is set aside (its line blanked, the numbering kept)
// and the file decoded again. What remains is validated too, so one run of
// vigil check lists every mistake, each with its line. A syntax error
// stops it: what follows cannot be read.
func parseAll(src []byte, name string) (*Config, error) {
	var errs []error
	for range maxDecodeErrors {
		cfg, line, err := parseConfigAt(src, name)
		if err == nil {
			if len(errs) == 0 {
				return cfg, nil
			}
			if verr := cfg.Validate(); verr != nil {
				errs = append(errs, flattenJoined(locateErrors(src, name, verr))...)
			}
			sortByLine(errs)
			return nil, errors.Join(errs...)
		}
		errs = append(errs, err)
		next, ok := blankSetting(src, line)
		if !ok {
			break
		}
		src = next
	}
	return nil, errors.Join(errs...)
}

// blankSetting replaces line (1-based) of src with an empty one when it is
// a whole "key = value" setting on one line, so that decoding can go on
// without it.
func blankSetting(src []byte, line int) ([]byte, bool) {
	if line <= 0 {
		return nil, false
	}
	lines := bytes.Split(src, []byte("\n"))
	if line > len(lines) {
		return nil, false
	}
	text := strings.TrimSpace(string(lines[line-1]))
	if text == "" || text[0] == '[' || text[0] == '#' || !strings.Contains(text, "=") {
		return nil, false
	}
	_, value, _ := strings.Cut(text, "=")
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, "[") && strings.Count(value, "[") != strings.Count(value, "]") ||
		strings.HasPrefix(value, "{") && !strings.HasSuffix(value, "}") ||
		strings.HasPrefix(value, `"""`) || strings.HasPrefix(value, "'''") {
		return nil, false // a value over several lines
	}
	lines[line-1] = nil
	return bytes.Join(lines, []byte("\n")), true
}

// parseConfig decodes src strictly: a key that maps to no setting is an
// error, because a misspelt key would otherwise silently do nothing.
func parseConfig(src []byte, name string) (*Config, error) {
	cfg, _, err := parseConfigAt(src, name)
	return cfg, err
}

// parseConfigAt is parseConfig, also returning the line of a value the
// decoder refused (0 for other errors).
func parseConfigAt(src []byte, name string) (*Config, int, error) {
	cfg := defaultConfig()
	cfg.Source = name
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&cfg)
	if err != nil {
		var perr toml.ParseError
		if !errors.As(err, &perr) {
			var pperr *toml.ParseError
			if errors.As(err, &pperr) {
				perr = *pperr
			} else if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
				line, _ := strconv.Atoi(m[1])
				return nil, line, fmt.Errorf("%s:%s: key %q: %s", name, m[1], m[2], inWords(m[3]))
			} else {
				return nil, 0, fmt.Errorf("%s: %w", name, err)
			}
		}
		line := errorLine(src, perr)
		if perr.LastKey == "" {
			line = 0 // a syntax error: nothing after it can be trusted
		}
		return nil, line, fmt.Errorf("%s:%d: %s", name, errorLine(src, perr), tomlErrorText(perr))
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		var errs []error
		for _, k := range undecoded {
			if line := keyLine(src, k); line > 0 {
				errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", name, line, k.String()))
			} else {
				errs = append(errs, fmt.Errorf("%s: unknown key %q", name, k.String()))
			}
		}
		return nil, 0, errors.Join(errs...)
	}
	return &cfg, 0, nil
}

// typeErrorRE matches BurntSushi's type-mismatch errors, which are plain
// strings rather than ParseErrors.
var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// tomlErrorText makes BurntSushi's messages name the key and expectation.
func tomlErrorText(perr toml.ParseError) string {
	msg := inWords(perr.Message)
	if want, ok := keyWant[perr.LastKey]; ok {
		msg = want + ": " + msg
	}
	if perr.LastKey != "" && !strings.Contains(msg, perr.LastKey) {
		msg = fmt.Sprintf("key %q: %s", perr.LastKey, msg)
	}
	return msg
}

// netipErrorRE matches the errors of net/netip's parsers, which name the
// function rather than what was expected.
var netipErrorRE = regexp.MustCompile(`netip\.Parse(Prefix|Addr|AddrPort)\(("(?:[^"\\]|\\.)*")\): (.*)$`)

// inWords rewrites a decoding error of another library in words.
func inWords(msg string) string {
	if m := netipErrorRE.FindStringSubmatch(msg); m != nil {
		want := map[string]string{
			"Prefix":   `an IP prefix such as "192.168.1.0/24"`,
			"Addr":     `an IP address such as "192.168.1.1"`,
			"AddrPort": `an address and port such as "127.0.0.1:53"`,
		}[m[1]]
		return fmt.Sprintf("want %s, got %s (%s)", want, m[2], m[3])
	}
	if msg == "not an ip:port" {
		return `want an address and port such as "127.0.0.1:53" ("[::1]:53" for IPv6)`
	}
	return msg
}

// keyWant says what a key expects where the decoding error of its type,
// from another library, does not.
var keyWant = map[string]string{
	"http.listen": `want ip:port such as "127.0.0.1:8053" (or "" for no API)`,
	"log.level":   levelWant,
}

// errorLine is the line of a decoding error. BurntSushi keeps one position
// per key path, the last table's of an [[array]], so when the key is set in
// several tables the error's line is the first of those settings whose
// text holds the refused value (our types' errors end with `got "value"`).
func errorLine(src []byte, perr toml.ParseError) int {
	lines := keyLines(src, toml.Key(strings.Split(perr.LastKey, ".")))
	m := gotValueRE.FindStringSubmatch(perr.Message)
	if len(lines) < 2 || m == nil {
		return perr.Position.Line
	}
	text := strings.Split(string(src), "\n")
	for i, from := range lines {
		to := len(text) + 1
		if i+1 < len(lines) {
			to = lines[i+1]
		}
		if strings.Contains(strings.Join(text[from-1:to-1], "\n"), m[1]) {
			return from
		}
	}
	return perr.Position.Line
}

var gotValueRE = regexp.MustCompile(`got ("(?:[^"\\]|\\.)*")$`)

// Validate checks every section and joins their errors.
func (c *Config) Validate() error {
	return errors.Join(
		c.Server.Validate(),
		c.Upstream.Validate(),
		resolver.ValidateForwards(c.Forward),
		c.Network.Validate(),
		c.Cache.Validate(),
		c.RateLimit.Validate(),
		c.Blocking.Validate(),
		c.Updates.Validate(),
		blocklists.ValidateLists(c.Lists),
		resolver.ValidateClients(c.Clients),
		groups.Validate(c.Groups, c.knownToGroups()),
		c.QueryLog.Validate(),
		c.Store.Validate(),
		c.HTTP.Validate(),
		c.Alerts.Validate(),
		c.Fleet.Validate(),
		c.Dnstap.Validate(),
		c.Log.Validate(),
	)
}

// compiledGroups is the [[groups]] as the query path uses them.
func (c *Config) compiledGroups() *groups.Groups {
	return groups.New(c.Groups, c.knownToGroups().Clients)
}

// knownToGroups is what a [[groups]] table may name: the lists (and the
// built-in list of names allowed from the dashboard) and the clients.
func (c *Config) knownToGroups() groups.Known {
	k := groups.Known{Lists: []string{blocklists.AllowedNowList}, CheckUpstream: func(s string) error {
		_, err := resolver.ParseUpstream(s)
		return err
	}}
	for _, l := range c.Lists {
		k.Lists = append(k.Lists, l.Name)
	}
	for _, cl := range c.Clients {
		k.Clients = append(k.Clients, cl.Name)
	}
	return k
}

// keyLine finds the line where key is set in src, following [table] and
// [[array]] headers; 0 if not found. BurntSushi's metadata does not export
// positions of undecoded keys.
func keyLine(src []byte, key toml.Key) int {
	if lines := keyLines(src, key); len(lines) > 0 {
		return lines[0]
	}
	return 0
}

// keyLines finds every line where key is set in src (one per [[array]]
// table that sets it).
func keyLines(src []byte, key toml.Key) []int {
	if len(key) == 0 {
		return nil
	}
	var lines []int
	want := key.String()
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		if strings.HasPrefix(text, "[") {
			header := strings.Trim(strings.SplitN(text, "#", 2)[0], " \t[]")
			table = normalizeKey(header)
			if table == want {
				lines = append(lines, line)
			}
			continue
		}
		k, _, ok := strings.Cut(text, "=")
		if !ok {
			continue
		}
		full := normalizeKey(k)
		if table != "" {
			full = table + "." + full
		}
		if full == want || strings.HasPrefix(want, full+".") {
			lines = append(lines, line)
		}
	}
	return lines
}

// normalizeKey turns `a . "b"` into `a.b`.
func normalizeKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}
