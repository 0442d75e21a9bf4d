// Package groups decides which lists apply to which client: the
// [[groups]] of the configuration, their members, their lists and the
// schedules that switch lists on and off, and the per-device and per-group
// exceptions.
//
// It does not match names. The blocklists' single Matcher holds every
// list's rules with the list's index; this package turns a client into the
// set of list indexes that applies to it now (a blocklists.ListSet), and
// the Matcher counts only those. So sixteen groups cost sixteen sets of
// 256 bytes, not sixteen tables.
package groups

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	// The schedules' time zones must load on any machine, including a
	// container image with no zoneinfo.
	_ "time/tzdata"
)

// DefaultGroup is the group of clients in no other group. Configured with
// its name, it says which lists they get; otherwise they get every list.
const DefaultGroup = "default"

// HostPrefix marks a member named by the device itself (its DHCP lease or
// what Vigil learned): "host:kids-tablet". A bare name must be a
// [[clients]] entry's, so that a typo is an error and not a group that
// silently matches nobody.
const HostPrefix = "host:"

// MaxGroups is how many groups a configuration may have: a client's groups
// are a 64-bit mask.
const MaxGroups = 64

// Schedule modes.
const (
	// ModeOn: the schedule's lists apply inside the window only.
	ModeOn = "on"
	// ModeOff: the schedule's lists do not apply inside the window.
	ModeOff = "off"
)

// Config is one [[groups]] table.
type Config struct {
	// Name is how the group appears in the log, the API and the CLI.
	Name string `toml:"name"`
	// Clients are the members: [[clients]] names, IP addresses, prefixes,
	// MAC addresses, and "host:NAME" for a name the device gave itself.
	Clients []string `toml:"clients"`
	// Lists are the lists that apply, by name; omitted, every list does;
	// empty ([]), none does.
	Lists []string `toml:"lists"`
	// Answer is how the group's blocked names are answered ("null",
	// "nxdomain", "refused"); "" keeps [blocking].answer.
	Answer string `toml:"answer"`
	// Upstreams, when set, answer the group's forwarded questions instead
	// of [upstream].servers (same syntax, strategy and timeout): a filtered
	// resolver for the children, say. [[forward]] zones still go where
	// they say.
	Upstreams []string `toml:"upstreams"`
	// Schedules switch some lists on or off at some times.
	Schedules []ScheduleConfig `toml:"schedules"`
}

// ScheduleConfig is one [[groups.schedules]] table.
type ScheduleConfig struct {
	// Lists are the lists the schedule switches.
	Lists []string `toml:"lists"`
	// Days are the days the window starts on ("mon" … "sun", "monday" …,
	// "weekdays", "weekend"); none means every day. A window that runs
	// past midnight belongs to the day it starts on.
	Days []string `toml:"days"`
	// From and To bound the window, "HH:MM" in local wall-clock time; To
	// before From runs past midnight; To may be "24:00".
	From string `toml:"from"`
	To   string `toml:"to"`
	// Mode is "on" (the lists apply inside the window only; the default)
	// or "off" (they do not apply inside it).
	Mode string `toml:"mode"`
	// TimeZone is an IANA zone such as "Europe/Brussels"; "" is the
	// machine's local time.
	TimeZone string `toml:"timezone"`
}

// FieldError is a configuration error at one key of one group, so that
// the caller can point at the file's line.
type FieldError struct {
	// Group is the index of the [[groups]] table.
	Group int
	// Schedule is the index of the [[groups.schedules]] table within it, or
	// -1 for a key of the group itself.
	Schedule int
	// Key is the key ("lists", "timezone"), "" for the table as a whole.
	Key string
	// Name is the group's name, for the message.
	Name string
	Err  error
}

func (e *FieldError) Error() string {
	at := fmt.Sprintf("groups[%d]", e.Group)
	if e.Name != "" {
		at += " (" + e.Name + ")"
	}
	if e.Schedule >= 0 {
		at += fmt.Sprintf(".schedules[%d]", e.Schedule)
	}
	if e.Key != "" {
		at += "." + e.Key
	}
	return at + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Known is what the rest of the configuration names, for checking that a
// group names only what exists.
type Known struct {
	// Lists are the [[lists]] names (and built-in lists).
	Lists []string
	// Clients are the [[clients]] names.
	Clients []string
	// CheckUpstream checks an upstream address as [upstream].servers
	// takes it; nil accepts any.
	CheckUpstream func(string) error
}

// Validate checks the [[groups]] tables; every error is a *FieldError.
func Validate(cfgs []Config, known Known) error {
	var errs []error
	fail := func(g, s int, key string, format string, args ...any) {
		errs = append(errs, &FieldError{Group: g, Schedule: s, Key: key, Name: cfgs[g].Name, Err: fmt.Errorf(format, args...)})
	}
	if len(cfgs) > MaxGroups {
		errs = append(errs, &FieldError{Group: MaxGroups, Schedule: -1, Err: fmt.Errorf("want at most %d groups, got %d", MaxGroups, len(cfgs))})
	}
	names := map[string]bool{}
	for i := range cfgs {
		c := &cfgs[i]
		switch {
		case strings.TrimSpace(c.Name) == "":
			fail(i, -1, "name", "want a name such as \"kids\"")
		case strings.ContainsAny(c.Name, ",\x00") || strings.TrimSpace(c.Name) != c.Name:
			fail(i, -1, "name", "want a name without commas or surrounding spaces, got %q", c.Name)
		case names[c.Name]:
			fail(i, -1, "name", "%q is used by another group", c.Name)
		}
		names[c.Name] = true
		if c.Name == DefaultGroup && len(c.Clients) > 0 {
			fail(i, -1, "clients", "the %q group is every client in no other group: want no clients", DefaultGroup)
		}
		for j, m := range c.Clients {
			if _, err := parseMember(m, known.Clients); err != nil {
				fail(i, -1, fmt.Sprintf("clients[%d]", j), "%v", err)
			}
		}
		for j, l := range c.Lists {
			if err := knownList(l, known.Lists); err != nil {
				fail(i, -1, fmt.Sprintf("lists[%d]", j), "%v", err)
			}
		}
		if known.CheckUpstream != nil {
			for j, u := range c.Upstreams {
				if err := known.CheckUpstream(u); err != nil {
					fail(i, -1, fmt.Sprintf("upstreams[%d]", j), "%v", err)
				}
			}
		}
		if c.Upstreams != nil && len(c.Upstreams) == 0 {
			fail(i, -1, "upstreams", "want at least one server, or no upstreams key for [upstream].servers")
		}
		switch c.Answer {
		case "", "null", "nxdomain", "refused":
		default:
			fail(i, -1, "answer", "want \"null\", \"nxdomain\" or \"refused\" (or nothing, for [blocking].answer), got %q", c.Answer)
		}
		var windows []*window
		for s := range c.Schedules {
			w, serrs := parseSchedule(&c.Schedules[s], known.Lists)
			for _, e := range serrs {
				errs = append(errs, &FieldError{Group: i, Schedule: s, Key: e.key, Name: c.Name, Err: e.err})
			}
			if w == nil {
				windows = append(windows, nil)
				continue
			}
			if w.mode == ModeOff && c.Lists != nil {
				for _, l := range w.lists {
					if !slices.Contains(c.Lists, l) && !listInOnSchedule(c, l) {
						fail(i, s, "lists", "list %q is not one of the group's lists: switching it off changes nothing", l)
					}
				}
			}
			for t, other := range windows {
				if other == nil {
					continue
				}
				if l, at, ok := contradicts(w, other); ok {
					fail(i, s, "", "contradicts schedules[%d]: list %q would be both on and off on %s at %s", t, l, at.Weekday(), at.Format("15:04"))
				}
			}
			windows = append(windows, w)
		}
	}
	return errors.Join(errs...)
}

func listInOnSchedule(c *Config, list string) bool {
	for _, s := range c.Schedules {
		if s.Mode != ModeOff && slices.Contains(s.Lists, list) {
			return true
		}
	}
	return false
}

func knownList(name string, lists []string) error {
	if slices.Contains(lists, name) {
		return nil
	}
	if s := closest(name, lists); s != "" {
		return fmt.Errorf("no list is named %q (did you mean %q?)", name, s)
	}
	return fmt.Errorf("no list is named %q", name)
}

// member is one parsed entry of a group's clients.
type member struct {
	name   string // a client's name ([[clients]] or learned)
	prefix netip.Prefix
	mac    [6]byte
	isMAC  bool
}

func parseMember(s string, clients []string) (member, error) {
	switch {
	case strings.HasPrefix(s, HostPrefix):
		n := strings.TrimSpace(strings.TrimPrefix(s, HostPrefix))
		if n == "" {
			return member{}, fmt.Errorf("want a device name after %q, got %q", HostPrefix, s)
		}
		return member{name: n}, nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return member{}, fmt.Errorf("want a prefix such as \"192.168.2.0/24\", got %q", s)
		}
		return member{prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return member{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if hw, err := net.ParseMAC(s); err == nil && len(hw) == 6 {
		return member{mac: [6]byte(hw), isMAC: true}, nil
	}
	if slices.Contains(clients, s) {
		return member{name: s}, nil
	}
	if c := closest(s, clients); c != "" {
		return member{}, fmt.Errorf("%q is no [[clients]] name, address, prefix or MAC (did you mean %q? a name the device gave itself is written %q)", s, c, HostPrefix+s)
	}
	return member{}, fmt.Errorf("%q is no [[clients]] name, address, prefix or MAC (a name the device gave itself is written %q)", s, HostPrefix+s)
}

// window is a parsed schedule.
type window struct {
	lists    []string
	days     [7]bool // by time.Weekday
	from, to int     // minutes since midnight; to may be 1440
	mode     string
	loc      *time.Location
	zone     string // as configured, for messages
}

type keyErr struct {
	key string
	err error
}

func parseSchedule(c *ScheduleConfig, lists []string) (*window, []keyErr) {
	var errs []keyErr
	w := &window{lists: c.Lists, mode: c.Mode, zone: c.TimeZone}
	if w.mode == "" {
		w.mode = ModeOn
	}
	if w.mode != ModeOn && w.mode != ModeOff {
		errs = append(errs, keyErr{"mode", fmt.Errorf("want \"on\" (the lists apply inside the window only) or \"off\" (they do not apply inside it), got %q", c.Mode)})
	}
	if len(c.Lists) == 0 {
		errs = append(errs, keyErr{"lists", errors.New("want the lists the schedule switches, such as [\"tiktok\"]")})
	}
	for j, l := range c.Lists {
		if err := knownList(l, lists); err != nil {
			errs = append(errs, keyErr{fmt.Sprintf("lists[%d]", j), err})
		}
	}
	if len(c.Days) == 0 {
		w.days = [7]bool{true, true, true, true, true, true, true}
	}
	for j, d := range c.Days {
		days, ok := dayNames[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			errs = append(errs, keyErr{fmt.Sprintf("days[%d]", j), fmt.Errorf("want a day such as \"mon\", \"weekdays\" or \"weekend\", got %q", d)})
		}
		for _, wd := range days {
			w.days[wd] = true
		}
	}
	var err error
	if w.from, err = parseClock(c.From, false); err != nil {
		errs = append(errs, keyErr{"from", err})
	}
	if w.to, err = parseClock(c.To, true); err != nil {
		errs = append(errs, keyErr{"to", err})
	}
	if c.From != "" && c.From == c.To {
		errs = append(errs, keyErr{"to", fmt.Errorf("want a time other than from (%q): the window would be empty", c.From)})
	}
	w.loc = time.Local
	if c.TimeZone != "" {
		if w.loc, err = time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
			errs = append(errs, keyErr{"timezone", fmt.Errorf("want an IANA time zone such as \"Europe/Brussels\" (or nothing, for this machine's), got %q", c.TimeZone)})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return w, nil
}

var dayNames = func() map[string][]time.Weekday {
	m := map[string][]time.Weekday{
		"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
		"weekend":  {time.Saturday, time.Sunday},
		"weekends": {time.Saturday, time.Sunday},
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		full := strings.ToLower(d.String())
		m[full] = []time.Weekday{d}
		m[full[:3]] = []time.Weekday{d}
	}
	return m
}()

// parseClock reads "HH:MM" into minutes since midnight; "24:00" only when
// end is set.
func parseClock(s string, end bool) (int, error) {
	bad := fmt.Errorf("want a time of day such as \"21:00\", got %q", s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, bad
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && (mm != 0 || !end) {
		return 0, bad
	}
	return hh*60 + mm, nil
}

// active reports whether t falls inside the window, on the wall clock of
// its time zone: on a day the clocks change, a window is as long as the
// wall clock says (an hour shorter or longer).
func (w *window) active(t time.Time) bool {
	t = t.In(w.loc)
	min := t.Hour()*60 + t.Minute()
	wd := t.Weekday()
	if w.from < w.to {
		return w.days[wd] && min >= w.from && min < w.to
	}
	if min >= w.from {
		return w.days[wd]
	}
	return min < w.to && w.days[(wd+6)%7] // the window began the day before
}

// describe is the window in words, for explain.
func (w *window) describe() string {
	var days []string
	all := true
	for d := time.Sunday; d <= time.Saturday; d++ {
		if w.days[(d+1)%7] { // Monday first
			days = append(days, strings.ToLower(((d + 1) % 7).String()[:3]))
		} else {
			all = false
		}
	}
	when := fmt.Sprintf("%02d:%02d–%02d:%02d", w.from/60, w.from%60, w.to/60, w.to%60)
	if !all {
		when = strings.Join(days, ",") + " " + when
	}
	if w.zone != "" {
		when += " " + w.zone
	}
	return when
}

// contradicts reports a list that one window switches on and the other
// off at a moment both cover. Windows in different time zones are not
// compared: whether they meet depends on the date.
func contradicts(a, b *window) (string, time.Time, bool) {
	if a.mode == b.mode || a.zone != b.zone {
		return "", time.Time{}, false
	}
	var list string
	for _, l := range a.lists {
		if slices.Contains(b.lists, l) {
			list = l
			break
		}
	}
	if list == "" {
		return "", time.Time{}, false
	}
	// Every minute of a week, in UTC so that no clock change interferes:
	// 2024-01-01 was a Monday.
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ua, ub := *a, *b
	ua.loc, ub.loc = time.UTC, time.UTC
	for m := 0; m < 7*24*60; m++ {
		t := start.Add(time.Duration(m) * time.Minute)
		if ua.active(t) && ub.active(t) {
			return list, t, true
		}
	}
	return "", time.Time{}, false
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := EditDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b (bytes), for
// "did you mean" messages here and in the API's client matching.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
