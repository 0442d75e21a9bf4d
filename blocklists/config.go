package blocklists

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists/curated"
)

// ListConfig is one [[lists]] table: a named, vendor-tagged list made of
// sources and inline entries.
type ListConfig struct {
	// Name identifies the list in logs, the API and the store.
	Name string `toml:"name"`
	// Vendor is the vendor or category tag every match carries.
	Vendor string `toml:"vendor"`
	// Kind is "deny" (block; the zero value) or "allow" (exceptions
	// beating deny rules).
	Kind ListKind `toml:"kind"`
	// Sources are http(s) URLs, file paths or "builtin:NAME" (a list
	// shipped inside the binary, see package curated).
	Sources []string `toml:"sources"`
	// Entries are rules written inline, in the list's format.
	Entries []string `toml:"entries"`
	// Format is the syntax of the sources and entries; "auto" (or unset)
	// detects it per source.
	Format Format `toml:"format"`
	// Enabled is whether the list is in use; nil (unset) means true. A
	// disabled list stays configured and shown, but its sources are never
	// fetched nor read and its rules are not compiled.
	Enabled *bool `toml:"enabled,omitempty"`
	// Breaks labels what turning the list on breaks on the devices it
	// applies to (a vendor's cloud: push, find-device, updates ...), for
	// `vigil lists` and the API. It changes nothing in matching.
	Breaks []Breakage `toml:"breaks,omitempty"`
	// OptIn marks a disabled list that some [[groups]] table names: it is
	// fetched and compiled, but applies only to the groups that name it
	// (a vendor's cloud tier for the devices meant to be cut off), never
	// to everyone. Set by whoever composes the configuration, not read
	// from the file.
	OptIn bool `toml:"-"`
}

// Allow reports whether the list is an allowlist.
func (l *ListConfig) Allow() bool { return l.Kind == KindAllow }

// IsEnabled reports whether the list is in use: true unless enabled =
// false is set.
func (l *ListConfig) IsEnabled() bool { return l.Enabled == nil || *l.Enabled }

// InUse reports whether the list's sources are fetched and its rules
// compiled: it is enabled, or off for everyone but named by a group.
func (l *ListConfig) InUse() bool { return l.IsEnabled() || l.OptIn }

// OptInOnly reports whether the list applies only to the groups naming it.
func (l *ListConfig) OptInOnly() bool { return !l.IsEnabled() && l.OptIn }

// Breakage is one thing a list breaks when it is on, from a fixed set
// (Breakages), so that the CLI, the API and the dashboard can label lists
// alike and a typo is an error, not a new label.
type Breakage string

// Breakages are the valid Breakage labels, in the order they are
// documented.
var Breakages = []Breakage{
	"push",            // push notifications (the vendor's push channel)
	"find-device",     // locating, ringing or wiping a lost device
	"updates",         // OS, firmware or app updates
	"app-login",       // signing in to the vendor's account or companion app
	"sync",            // cloud backup, photo and settings sync
	"app-store",       // the vendor's app or content store
	"streaming",       // the vendor's own video and music services
	"voice-assistant", // the vendor's voice assistant
	"time-sync",       // the device's clock (apps that need the right time)
}

// ParseBreakage parses a breaks label as written in the configuration.
func ParseBreakage(s string) (Breakage, error) {
	for _, b := range Breakages {
		if string(b) == s {
			return b, nil
		}
	}
	want := make([]string, len(Breakages))
	for i, b := range Breakages {
		want[i] = string(b)
	}
	return "", fmt.Errorf("want one of %s, got %q", strings.Join(want, ", "), s)
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseBreakage.
func (b *Breakage) UnmarshalText(text []byte) error {
	v, err := ParseBreakage(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ListKind is whether a list blocks or lists exceptions. Its zero value is
// KindDeny, the documented default; it decodes itself from "deny", "allow"
// or "" (deny) and encodes itself as "deny" or "allow".
type ListKind uint8

// List kinds.
const (
	KindDeny  ListKind = iota // rules block
	KindAllow                 // rules are exceptions that beat deny rules
)

// ParseListKind parses a list kind as written in the configuration.
func ParseListKind(s string) (ListKind, error) {
	switch s {
	case "", "deny":
		return KindDeny, nil
	case "allow":
		return KindAllow, nil
	}
	return KindDeny, fmt.Errorf("want \"deny\" or \"allow\", got %q", s)
}

// String returns "deny" or "allow" (or "ListKind(n)" for an invalid kind).
func (k ListKind) String() string {
	switch k {
	case KindDeny:
		return "deny"
	case KindAllow:
		return "allow"
	}
	return fmt.Sprintf("ListKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler; an invalid kind is an
// error.
func (k ListKind) MarshalText() ([]byte, error) {
	if k > KindAllow {
		return nil, fmt.Errorf("invalid list kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseListKind.
func (k *ListKind) UnmarshalText(text []byte) error {
	v, err := ParseListKind(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// IsURL reports whether a source is fetched over HTTP rather than read
// from a file.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://")
}

// BuiltinScheme prefixes a source that names a list shipped inside the
// binary: "builtin:functional" reads curated.Read("functional"). Such a
// source needs no network and no file, and is never stored: its rules are
// read from the binary at every build of the set.
const BuiltinScheme = "builtin:"

// IsBuiltin reports whether a source is a list shipped inside the binary.
func IsBuiltin(source string) bool { return strings.HasPrefix(source, BuiltinScheme) }

// readBuiltin returns the text of a "builtin:NAME" source.
func readBuiltin(source string) ([]byte, error) {
	return curated.Read(strings.TrimPrefix(source, BuiltinScheme))
}

// ValidateLists checks the [[lists]] tables, without changing them; errors
// name the list by index and name, the key and what was expected.
func ValidateLists(lists []ListConfig) error {
	var errs []error
	names := map[string]bool{}
	if len(lists) > MaxLists {
		errs = append(errs, fmt.Errorf("lists: want at most %d lists, got %d", MaxLists, len(lists)))
	}
	for i := range lists {
		l := &lists[i]
		at := fmt.Sprintf("lists[%d]", i)
		if l.Name != "" {
			at = fmt.Sprintf("lists[%d] (%s)", i, l.Name)
		}
		switch {
		case strings.TrimSpace(l.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: want a name such as \"xiaomi\"", at))
		case strings.ContainsAny(l.Name, "/\x00"):
			errs = append(errs, fmt.Errorf("%s.name: want a name without '/', got %q", at, l.Name))
		case names[l.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used by another list", at, l.Name))
		}
		names[l.Name] = true
		if l.Kind != KindDeny && l.Kind != KindAllow {
			errs = append(errs, fmt.Errorf("%s.kind: want \"deny\" or \"allow\", got %s", at, l.Kind))
		}
		if !l.Format.valid() {
			errs = append(errs, fmt.Errorf("%s.format: %w", at, errBadFormat(string(l.Format))))
		}
		seen := map[Breakage]bool{}
		for j, b := range l.Breaks {
			if _, err := ParseBreakage(string(b)); err != nil {
				errs = append(errs, fmt.Errorf("%s.breaks[%d]: %w", at, j, err))
			} else if seen[b] {
				errs = append(errs, fmt.Errorf("%s.breaks[%d]: %q is listed twice", at, j, b))
			}
			seen[b] = true
		}
		if len(l.Sources) == 0 && len(l.Entries) == 0 {
			errs = append(errs, fmt.Errorf("%s: want sources or entries (or both)", at))
		}
		for j, s := range l.Sources {
			if err := validateSource(s); err != nil {
				errs = append(errs, fmt.Errorf("%s.sources[%d]: %w", at, j, err))
			}
		}
		if len(l.Entries) > 0 {
			st, err := parseEntries(l, func(Rule) {})
			if err == nil && st.Rejected > 0 {
				err = st.Errors[0]
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.entries: %w", at, err))
			}
		}
	}
	return errors.Join(errs...)
}

func validateSource(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("want a URL or a file path, got \"\"")
	}
	if IsBuiltin(s) {
		if _, err := readBuiltin(s); err != nil {
			return fmt.Errorf("want %s followed by one of %s, got %q", BuiltinScheme, strings.Join(curated.Files(), ", "), s)
		}
		return nil
	}
	if IsURL(s) {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("want an http:// or https:// URL, got %q", s)
		}
		return nil
	}
	if strings.Contains(s, "://") {
		return fmt.Errorf("want an http:// or https:// URL or a file path, got %q", s)
	}
	return nil
}

// parseEntries parses a list's inline entries as one list in its format.
func parseEntries(l *ListConfig, emit func(Rule)) (ParseStats, error) {
	return Parse(strings.NewReader(strings.Join(l.Entries, "\n")), ParseOptions{
		Source: "lists." + l.Name + ".entries", Format: l.Format, MaxRejected: -1, Allow: l.Allow(),
	}, emit)
}

// UpdateConfig is the [blocklists] section: how sources are kept fresh.
type UpdateConfig struct {
	// RefreshInterval is how often every source is checked.
	RefreshInterval time.Duration `toml:"refresh_interval"`
	// RefreshJitter adds a random delay up to this much to each refresh,
	// so many Vigils do not hit a list server at the same moment.
	RefreshJitter time.Duration `toml:"refresh_jitter"`
	// MaxConcurrentDownloads bounds downloads in flight.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`
	// DownloadTimeout bounds one download.
	DownloadTimeout time.Duration `toml:"download_timeout"`
	// MaxListBytes caps one source's size; a larger body is refused.
	MaxListBytes int64 `toml:"max_list_bytes"`
	// MaxRejectedLines is how many invalid lines one source may have
	// before the whole download is refused as not a list.
	MaxRejectedLines int `toml:"max_rejected_lines"`
	// MaxShrink refuses an update that loses more than this fraction of a
	// source's entries at once (1 accepts any shrink).
	MaxShrink float64 `toml:"max_shrink"`
}

// DefaultUpdateConfig returns the [blocklists] defaults.
func DefaultUpdateConfig() UpdateConfig {
	return UpdateConfig{
		RefreshInterval:        24 * time.Hour,
		RefreshJitter:          30 * time.Minute,
		MaxConcurrentDownloads: 4,
		DownloadTimeout:        60 * time.Second,
		MaxListBytes:           64 << 20,
		MaxRejectedLines:       1000,
		MaxShrink:              0.5,
	}
}

// Validate checks the section.
func (c *UpdateConfig) Validate() error {
	var errs []error
	if c.RefreshInterval < time.Minute {
		errs = append(errs, fmt.Errorf("blocklists.refresh_interval: want at least \"1m\", got %q", c.RefreshInterval.String()))
	}
	if c.RefreshJitter < 0 {
		errs = append(errs, fmt.Errorf("blocklists.refresh_jitter: want a duration >= 0, got %q", c.RefreshJitter.String()))
	}
	if c.MaxConcurrentDownloads < 1 || c.MaxConcurrentDownloads > 64 {
		errs = append(errs, fmt.Errorf("blocklists.max_concurrent_downloads: want 1 to 64, got %d", c.MaxConcurrentDownloads))
	}
	if c.DownloadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("blocklists.download_timeout: want a positive duration, got %q", c.DownloadTimeout.String()))
	}
	if c.MaxListBytes < 1024 || c.MaxListBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("blocklists.max_list_bytes: want 1024 to 1073741824, got %d", c.MaxListBytes))
	}
	if c.MaxRejectedLines < 0 {
		errs = append(errs, fmt.Errorf("blocklists.max_rejected_lines: want >= 0, got %d", c.MaxRejectedLines))
	}
	if c.MaxShrink <= 0 || c.MaxShrink > 1 {
		errs = append(errs, fmt.Errorf("blocklists.max_shrink: want a fraction above 0 and at most 1, got %g", c.MaxShrink))
	}
	return errors.Join(errs...)
}
