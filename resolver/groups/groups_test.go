package groups

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

// household is the example: kids (TikTok only at night on
// weekdays), the vacuum (its cloud allowed, analytics blocked), guests
// with nothing, and a default group for everyone else.
func household() []Config {
	return []Config{
		{Name: "kids", Clients: []string{"kids-tablet", "192.168.1.50", "192.168.2.0/24", "aa:bb:cc:dd:ee:ff", "host:switch"},
			Lists: []string{"tiktok", "xiaomi", "functional-allow"},
			Schedules: []ScheduleConfig{{Lists: []string{"tiktok"}, Days: []string{"mon", "tue", "wed", "thu", "fri"},
				From: "21:00", To: "07:00", TimeZone: "Europe/Brussels"}}},
		{Name: "vacuum", Clients: []string{"vacuum"}, Lists: []string{"xiaomi", "vacuum-cloud"}, Answer: "nxdomain"},
		{Name: "guests", Clients: []string{"192.168.2.128/25"}, Lists: []string{}},
		{Name: DefaultGroup, Lists: []string{"xiaomi", "ads"}},
	}
}

var knownHousehold = Known{
	Lists:   []string{"tiktok", "xiaomi", "functional-allow", "vacuum-cloud", "ads"},
	Clients: []string{"kids-tablet", "vacuum", "dad-phone"},
}

func TestValidateHousehold(t *testing.T) {
	if err := Validate(household(), knownHousehold); err != nil {
		t.Fatal(err)
	}
}

func TestMembership(t *testing.T) {
	g := New(household(), knownHousehold.Clients)
	mac := func(s string) [6]byte {
		var hw [6]byte
		for i := range 6 {
			var b byte
			for _, c := range s[3*i : 3*i+2] {
				b = b<<4 | byte(strings.IndexRune("0123456789abcdef", c))
			}
			hw[i] = b
		}
		return hw
	}
	cases := []struct {
		name string
		addr string
		mac  string
		want string
	}{
		{"kids-tablet", "10.0.0.9", "", "kids"},                              // by [[clients]] name
		{"", "192.168.1.50", "", "kids"},                                     // by address
		{"", "192.168.2.7", "", "kids"},                                      // by prefix
		{"", "10.0.0.1", "aa:bb:cc:dd:ee:ff", "kids"},                        // by MAC
		{"switch", "10.0.0.2", "", "kids"},                                   // by the name it gave itself
		{"vacuum", "192.168.1.60", "", "vacuum"},                             // its own group
		{"vacuum", "192.168.2.200", "", "kids,vacuum,guests"},                // a union: name and two prefixes
		{"", "192.168.2.200", "", "kids,guests"},                             // two prefixes
		{"dad-phone", "192.168.1.10", "", DefaultGroup},                      // in no group
		{"", "::ffff:192.168.1.50", "", DefaultGroup},                        // addresses are unmapped by the caller
		{"", "10.9.9.9", "00:00:00:00:00:01", DefaultGroup},                  // an unknown MAC
		{"KIDS-TABLET", "10.0.0.9", "", DefaultGroup},                        // names are exact
		{"vacuum", "192.168.1.60", "aa:bb:cc:dd:ee:ff", "kids,vacuum"},       // MAC and name
		{"", "192.168.1.50", "aa:bb:cc:dd:ee:ff", "kids"},                    // the same group twice
		{"host:switch", "10.0.0.3", "", DefaultGroup},                        // the prefix is syntax, not the name
		{"kids-tablet", "192.168.2.129", "", "kids,guests"},                  // name and prefix
		{"", "fd00::1", "", DefaultGroup},                                    // IPv6
		{"", "192.168.1.51", "", DefaultGroup},                               // next door
		{"", "192.168.3.1", "", DefaultGroup},                                // outside the prefixes
		{"", "192.168.2.255", "", "kids,guests"},                             // broadcast end of both
		{"", "192.168.2.127", "", "kids"},                                    // below guests' half
		{"", "192.168.2.128", "", "kids,guests"},                             // guests' first
		{"", "192.168.2.0", "", "kids"},                                      // kids' first
		{"vacuum", "10.0.0.1", "00:00:00:00:00:00", "vacuum"},                // the zero MAC is no MAC
		{"", "10.0.0.1", "AA:BB:CC:DD:EE:FF", DefaultGroup},                  // callers pass MACs parsed; see mac()
		{"guest", "10.0.0.1", "", DefaultGroup},                              // not a member name
		{"", "192.168.1.50", "", "kids"},                                     // again: memoised
		{"vacuum", "192.168.2.200", "", "kids,vacuum,guests"},                // again: memoised
		{"dad-phone", "192.168.1.10", "aa:bb:cc:dd:ee:ff", "kids"},           // MAC wins over no group
		{"kids-tablet", "192.168.2.200", "aa:bb:cc:dd:ee:ff", "kids,guests"}, // one group, many ways
	}
	for _, tc := range cases {
		var hw [6]byte
		if tc.mac != "" && strings.ToLower(tc.mac) == tc.mac {
			hw = mac(tc.mac)
		}
		m := g.Of(tc.name, netip.MustParseAddr(tc.addr), hw)
		got := ""
		if m != nil {
			got = m.Joined
		}
		if got != tc.want {
			t.Errorf("Of(%q, %s, %s) = %q, want %q", tc.name, tc.addr, tc.mac, got, tc.want)
		}
	}
	if m := g.Of("vacuum", netip.MustParseAddr("192.168.2.200"), [6]byte{}); m.Answer != "nxdomain" {
		t.Errorf("answer of kids+vacuum = %q, want the first group's that is set (vacuum's nxdomain)", m.Answer)
	}
	if n := testing.AllocsPerRun(100, func() { g.Of("vacuum", netip.MustParseAddr("192.168.2.200"), [6]byte{}) }); n != 0 {
		t.Errorf("Of allocates %v times for a known combination", n)
	}
	if m := New(nil, nil).Of("x", netip.MustParseAddr("10.0.0.1"), [6]byte{}); m != nil {
		t.Errorf("no groups: Of = %+v, want nil", m)
	}
}

// matcher builds one Matcher for the household's lists, with a device's
// and a group's exceptions and a global allow, the way the blocklists
// manager does: a device's own exceptions are $important, so that they
// beat what applies to everyone.
func matcher(t *testing.T) *blocklists.Matcher {
	t.Helper()
	b := blocklists.NewBuilder()
	add := func(info blocklists.ListInfo, rules ...blocklists.Rule) {
		i, err := b.AddList(info)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			b.Add(i, r)
		}
	}
	add(blocklists.ListInfo{Name: "tiktok"}, blocklists.Rule{Name: "tiktok.example", Suffix: true})
	add(blocklists.ListInfo{Name: "xiaomi"}, blocklists.Rule{Name: "xiaomi.example", Suffix: true}, blocklists.Rule{Name: "shared.example", Suffix: true})
	add(blocklists.ListInfo{Name: "functional-allow", Allow: true}, blocklists.Rule{Name: "find.xiaomi.example"})
	add(blocklists.ListInfo{Name: "vacuum-cloud", Allow: true}, blocklists.Rule{Name: "cloud.xiaomi.example", Suffix: true})
	add(blocklists.ListInfo{Name: "ads"}, blocklists.Rule{Name: "ads.example", Suffix: true}, blocklists.Rule{Name: "shared.example", Suffix: true})
	add(blocklists.ListInfo{Name: "allowed-now", Allow: true, Scope: ScopeEveryone}, blocklists.Rule{Name: "ok.ads.example"})
	add(blocklists.ListInfo{Name: "allowed:client:dad-phone", Allow: true, Scope: ScopeClient + "dad-phone"}, blocklists.Rule{Name: "xiaomi.example"})
	add(blocklists.ListInfo{Name: "blocked:client:10.0.0.5", Scope: ScopeClient + "10.0.0.5"}, blocklists.Rule{Name: "ok.ads.example", Important: true})
	add(blocklists.ListInfo{Name: "blocked:group:guests", Scope: ScopeGroup + "guests"}, blocklists.Rule{Name: "tiktok.example", Suffix: true})
	m, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// One Matcher, three clients in three groups, the same name: three
// answers; and every precedence rule of a single policy still holds
// within a group's lists.
func TestViewDecides(t *testing.T) {
	g := New(household(), knownHousehold.Clients)
	m := matcher(t)
	brussels, _ := time.LoadLocation("Europe/Brussels")
	weekdayNight := time.Date(2026, 12, 1, 22, 0, 0, 0, brussels) // a Tuesday
	weekdayNoon := time.Date(2026, 12, 1, 12, 0, 0, 0, brussels)
	cases := []struct {
		client, addr string
		at           time.Time
		query        string
		want         string // "blocked LIST", "allowed LIST" or "none"
	}{
		{"kids-tablet", "10.0.0.9", weekdayNight, "www.tiktok.example.", "blocked tiktok"},
		{"kids-tablet", "10.0.0.9", weekdayNoon, "www.tiktok.example.", "none"},
		{"vacuum", "10.0.0.8", weekdayNight, "www.tiktok.example.", "none"},
		{"", "192.168.2.200", weekdayNoon, "www.tiktok.example.", "blocked blocked:group:guests"}, // guests' own exception; kids' schedule is off
		{"dad-phone", "10.0.0.7", weekdayNight, "www.tiktok.example.", "none"},
		{"kids-tablet", "10.0.0.9", weekdayNoon, "api.xiaomi.example.", "blocked xiaomi"},
		{"kids-tablet", "10.0.0.9", weekdayNoon, "find.xiaomi.example.", "allowed functional-allow"},
		{"vacuum", "10.0.0.8", weekdayNoon, "find.xiaomi.example.", "blocked xiaomi"}, // not the vacuum's allowlist
		{"vacuum", "10.0.0.8", weekdayNoon, "a.cloud.xiaomi.example.", "allowed vacuum-cloud"},
		{"kids-tablet", "10.0.0.9", weekdayNoon, "a.cloud.xiaomi.example.", "blocked xiaomi"},
		{"dad-phone", "10.0.0.7", weekdayNoon, "xiaomi.example.", "allowed allowed:client:dad-phone"}, // his own exception
		{"dad-phone", "10.0.0.7", weekdayNoon, "api.xiaomi.example.", "blocked xiaomi"},               // exact, so not below
		{"mum-phone", "10.0.0.6", weekdayNoon, "xiaomi.example.", "blocked xiaomi"},                   // not hers
		{"mum-phone", "10.0.0.6", weekdayNoon, "x.shared.example.", "blocked xiaomi"},                 // in two lists: the first reported
		{"vacuum", "10.0.0.8", weekdayNoon, "x.shared.example.", "blocked xiaomi"},
		{"", "192.168.2.130", weekdayNoon, "x.shared.example.", "blocked xiaomi"}, // kids (prefix) and guests (none)
		{"mum-phone", "10.0.0.6", weekdayNoon, "x.ads.example.", "blocked ads"},
		{"kids-tablet", "10.0.0.9", weekdayNoon, "x.ads.example.", "none"},
		{"mum-phone", "10.0.0.6", weekdayNoon, "ok.ads.example.", "allowed allowed-now"}, // for everyone
		{"vacuum", "10.0.0.8", weekdayNoon, "ok.ads.example.", "allowed allowed-now"},
		{"", "10.0.0.5", weekdayNoon, "ok.ads.example.", "blocked blocked:client:10.0.0.5"}, // a nameless device's own block
		{"", "10.0.0.4", weekdayNoon, "ok.ads.example.", "allowed allowed-now"},
	}
	for _, tc := range cases {
		v := g.ViewFor(m.Lists(), tc.at)
		mem := g.Of(tc.client, netip.MustParseAddr(tc.addr), [6]byte{})
		r, ok := m.MatchIn(tc.query, v.Set(mem, tc.client, netip.MustParseAddr(tc.addr)))
		got := "none"
		switch {
		case ok && r.Blocked:
			got = "blocked " + r.List.Name
		case ok:
			got = "allowed " + r.List.Name
		}
		if got != tc.want {
			t.Errorf("%s (%s) at %s asks %s: %s, want %s", tc.client, tc.addr, tc.at.Format("Mon 15:04"), tc.query, got, tc.want)
		}
	}
}

// With no groups and no scoped lists the view filters nothing, so the
// Matcher takes its unfiltered path.
func TestViewWithoutGroups(t *testing.T) {
	b := blocklists.NewBuilder()
	_, _ = b.AddList(blocklists.ListInfo{Name: "l"})
	m, _ := b.Build()
	v := New(nil, nil).ViewFor(m.Lists(), time.Now())
	if s := v.Set(nil, "", netip.MustParseAddr("10.0.0.1")); s != nil {
		t.Errorf("Set = %v, want nil (every list)", s)
	}
	if !v.Matches(m.Lists(), time.Now().Add(time.Hour)) {
		t.Error("a view without schedules should not expire")
	}
}

func TestScheduleWindows(t *testing.T) {
	brussels, _ := time.LoadLocation("Europe/Brussels")
	newYork, _ := time.LoadLocation("America/New_York")
	night := &ScheduleConfig{Lists: []string{"x"}, Days: []string{"weekdays"}, From: "21:00", To: "07:00", TimeZone: "Europe/Brussels"}
	day := &ScheduleConfig{Lists: []string{"x"}, Days: []string{"sat"}, From: "01:30", To: "03:30", TimeZone: "Europe/Brussels"}
	toMidnight := &ScheduleConfig{Lists: []string{"x"}, From: "18:00", To: "24:00", TimeZone: "America/New_York"}
	at := func(loc *time.Location, y int, mo time.Month, d, h, mi int) time.Time {
		return time.Date(y, mo, d, h, mi, 0, 0, loc)
	}
	cases := []struct {
		name string
		s    *ScheduleConfig
		t    time.Time
		want bool
	}{
		{"Monday 20:59", night, at(brussels, 2026, 11, 30, 20, 59), false},
		{"Monday 21:00", night, at(brussels, 2026, 11, 30, 21, 0), true},
		{"Tuesday 06:59, from Monday", night, at(brussels, 2026, 12, 1, 6, 59), true},
		{"Tuesday 07:00", night, at(brussels, 2026, 12, 1, 7, 0), false},
		{"Friday 23:00", night, at(brussels, 2026, 12, 4, 23, 0), true},
		{"Saturday 03:00, from Friday", night, at(brussels, 2026, 12, 5, 3, 0), true},
		{"Saturday 22:00", night, at(brussels, 2026, 12, 5, 22, 0), false},
		{"Monday 03:00, Sunday began none", night, at(brussels, 2026, 11, 30, 3, 0), false},
		{"the same instant in UTC", night, at(time.UTC, 2026, 11, 30, 20, 0), true}, // 21:00 in Brussels
		{"the same instant in UTC, before", night, at(time.UTC, 2026, 11, 30, 19, 59), false},
		// 2026-03-28 is a Saturday; Brussels springs forward on Sunday 29
		// March. 2026-10-25 (Sunday) falls back. Saturday's window on the
		// eve is as usual:
		{"Saturday 01:30 before a change", day, at(brussels, 2026, 3, 28, 1, 30), true},
		{"Saturday 03:29", day, at(brussels, 2026, 3, 28, 3, 29), true},
		{"Saturday 03:30", day, at(brussels, 2026, 3, 28, 3, 30), false},
		// The spring-forward night: Friday 21:00 to Saturday 07:00 is not
		// affected; Sunday night into Monday is. On Monday 30 March 2026
		// 06:59 CEST (04:59 UTC) the window is still on.
		{"Monday after spring forward 06:59", night, at(brussels, 2026, 3, 30, 6, 59), false}, // Sunday began none
		{"Sunday 29 March 21:00, wall clock", night, at(brussels, 2026, 3, 29, 21, 0), false},
		{"Monday 30 March 21:00 CEST", night, at(brussels, 2026, 3, 30, 21, 0), true},
		{"Monday 30 March 19:00 UTC is 21:00 CEST", night, at(time.UTC, 2026, 3, 30, 19, 0), true},
		{"Monday 30 March 20:00 UTC (winter would be 21:00)", night, at(time.UTC, 2026, 3, 30, 20, 0), true},
		{"Monday 30 March 18:59 UTC is 20:59 CEST", night, at(time.UTC, 2026, 3, 30, 18, 59), false},
		// New York falls back on 1 November 2026: 18:00–24:00 local.
		{"New York 17:59 EST", toMidnight, at(newYork, 2026, 11, 1, 17, 59), false},
		{"New York 18:00 EST", toMidnight, at(newYork, 2026, 11, 1, 18, 0), true},
		{"New York 23:59", toMidnight, at(newYork, 2026, 11, 1, 23, 59), true},
		{"New York midnight", toMidnight, at(newYork, 2026, 11, 2, 0, 0), false},
		{"23:00 UTC is 18:00 EST", toMidnight, at(time.UTC, 2026, 11, 2, 23, 0), true},
		{"22:00 UTC is 18:00 EDT before the change", toMidnight, at(time.UTC, 2026, 10, 31, 22, 0), true},
		{"22:00 UTC is 17:00 EST after it", toMidnight, at(time.UTC, 2026, 11, 2, 22, 0), false},
	}
	for _, tc := range cases {
		w, errs := parseSchedule(tc.s, tc.s.Lists)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", tc.name, errs)
		}
		if got := w.active(tc.t); got != tc.want {
			t.Errorf("%s (%s): active = %v, want %v", tc.name, tc.t.Format(time.RFC3339), got, tc.want)
		}
	}
}

// A schedule that switches a list off inside its window, and a view's
// validity: it is rebuilt on the next minute, so a window opens on time.
func TestScheduleOffAndViewExpiry(t *testing.T) {
	cfg := []Config{{Name: "kids", Clients: []string{"10.0.0.9"}, Schedules: []ScheduleConfig{
		{Lists: []string{"tiktok"}, Days: []string{"sat"}, From: "14:00", To: "16:00", Mode: ModeOff, TimeZone: "UTC"},
	}}}
	if err := Validate(cfg, knownHousehold); err != nil {
		t.Fatal(err)
	}
	g := New(cfg, nil)
	m := matcher(t)
	kid := g.Of("", netip.MustParseAddr("10.0.0.9"), [6]byte{})
	sat := func(h, mi, s int) time.Time { return time.Date(2026, 12, 5, h, mi, s, 0, time.UTC) }
	for _, tc := range []struct {
		at   time.Time
		want bool // tiktok blocked
	}{{sat(13, 59, 59), true}, {sat(14, 0, 0), false}, {sat(15, 59, 0), false}, {sat(16, 0, 0), true}} {
		v := g.ViewFor(m.Lists(), tc.at)
		r, ok := m.MatchIn("tiktok.example.", v.Set(kid, "", netip.MustParseAddr("10.0.0.9")))
		if got := ok && r.Blocked; got != tc.want {
			t.Errorf("at %s: blocked = %v, want %v", tc.at.Format("15:04:05"), got, tc.want)
		}
		if !v.Matches(m.Lists(), tc.at) || v.Matches(m.Lists(), tc.at.Truncate(time.Minute).Add(time.Minute)) {
			t.Errorf("at %s: the view should be valid to the end of the minute, until %s", tc.at.Format("15:04:05"), v.Until)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	base := func() Config { return Config{Name: "kids", Clients: []string{"kids-tablet"}} }
	cases := []struct {
		name string
		cfg  func() []Config
		key  string // the FieldError's place
		want string // in the message
	}{
		{"unknown list", func() []Config { c := base(); c.Lists = []string{"tiktk"}; return []Config{c} }, "groups[0].lists[0]", `did you mean "tiktok"`},
		{"unknown client", func() []Config { c := base(); c.Clients = []string{"kids-tablt"}; return []Config{c} }, "groups[0].clients[0]", `did you mean "kids-tablet"`},
		{"unknown client, host: hint", func() []Config { c := base(); c.Clients = []string{"switch"}; return []Config{c} }, "groups[0].clients[0]", `"host:switch"`},
		{"bad prefix", func() []Config { c := base(); c.Clients = []string{"192.168.1.0/33"}; return []Config{c} }, "groups[0].clients[0]", "prefix"},
		{"no name", func() []Config { c := base(); c.Name = ""; return []Config{c} }, "groups[0].name", "want a name"},
		{"duplicate name", func() []Config { return []Config{base(), base()} }, "groups[1].name", "used by another group"},
		{"default with clients", func() []Config { c := base(); c.Name = DefaultGroup; return []Config{c} }, "groups[0].clients", "no clients"},
		{"bad answer", func() []Config { c := base(); c.Answer = "ip"; return []Config{c} }, "groups[0].answer", `"refused"`},
		{"unknown time zone", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "21:00", To: "07:00", TimeZone: "Europe/Bruxelles"}}
			return []Config{c}
		}, "groups[0].schedules[0].timezone", "IANA"},
		{"bad clock", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "9pm", To: "07:00"}}
			return []Config{c}
		}, "groups[0].schedules[0].from", `"21:00"`},
		{"24:00 is an end only", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "24:00", To: "07:00"}}
			return []Config{c}
		}, "groups[0].schedules[0].from", "time of day"},
		{"empty window", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "07:00", To: "07:00"}}
			return []Config{c}
		}, "groups[0].schedules[0].to", "empty"},
		{"bad day", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, Days: []string{"funday"}, From: "21:00", To: "07:00"}}
			return []Config{c}
		}, "groups[0].schedules[0].days[0]", "weekdays"},
		{"no lists", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{From: "21:00", To: "07:00"}}
			return []Config{c}
		}, "groups[0].schedules[0].lists", "want the lists"},
		{"bad mode", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "21:00", To: "07:00", Mode: "block"}}
			return []Config{c}
		}, "groups[0].schedules[0].mode", `"off"`},
		{"off for a list the group lacks", func() []Config {
			c := base()
			c.Lists = []string{"xiaomi"}
			c.Schedules = []ScheduleConfig{{Lists: []string{"tiktok"}, From: "21:00", To: "07:00", Mode: ModeOff}}
			return []Config{c}
		}, "groups[0].schedules[0].lists", "changes nothing"},
		{"contradicting schedules", func() []Config {
			c := base()
			c.Schedules = []ScheduleConfig{
				{Lists: []string{"tiktok"}, Days: []string{"weekdays"}, From: "21:00", To: "07:00"},
				{Lists: []string{"ads", "tiktok"}, Days: []string{"sat"}, From: "06:00", To: "08:00", Mode: ModeOff},
			}
			return []Config{c}
		}, "groups[0].schedules[1]", `"tiktok" would be both on and off on Saturday at 06:00`},
	}
	for _, tc := range cases {
		err := Validate(tc.cfg(), knownHousehold)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want a FieldError", tc.name, err)
			continue
		}
		if at, _, _ := strings.Cut(strings.Replace(fe.Error(), " ("+fe.Name+")", "", 1), ": "); at != tc.key || !strings.Contains(fe.Error(), tc.want) {
			t.Errorf("%s: got %q, want it at %s and saying %s", tc.name, fe.Error(), tc.key, tc.want)
		}
	}
	// Schedules that meet without contradicting are fine: both on.
	c := base()
	c.Schedules = []ScheduleConfig{
		{Lists: []string{"tiktok"}, From: "21:00", To: "07:00"},
		{Lists: []string{"tiktok"}, Days: []string{"sat"}, From: "06:00", To: "23:00"},
	}
	if err := Validate([]Config{c}, knownHousehold); err != nil {
		t.Errorf("overlapping schedules that agree: %v", err)
	}
}

// A device moved by hand is in the groups it was moved to, whatever the
// configuration says of its name, address or MAC; moved to none, it is in
// the default group.
func TestAssign(t *testing.T) {
	g := New(household(), knownHousehold.Clients).Assign(map[string][]string{
		"kids-tablet":  {"vacuum", "gone"}, // a group since removed is ignored
		"192.168.1.50": {},                 // out of kids: the default group
		"dad-phone":    {"kids", "guests"},
	})
	cases := []struct {
		name, addr, want string
	}{
		{"kids-tablet", "192.168.2.7", "vacuum"}, // by name, over its prefix
		{"", "192.168.1.50", DefaultGroup},
		{"dad-phone", "10.0.0.1", "kids,guests"},
		{"", "192.168.2.7", "kids"}, // others as configured
	}
	for _, tc := range cases {
		if m := g.Of(tc.name, netip.MustParseAddr(tc.addr), [6]byte{}); m == nil || m.Joined != tc.want {
			t.Errorf("Of(%q, %s) = %+v, want %s", tc.name, tc.addr, m, tc.want)
		}
	}
	info := g.Info(knownHousehold.Lists, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	if info[0].Name != "kids" || strings.Join(info[0].Assigned, ",") != "dad-phone" || strings.Join(info[0].Off, ",") != "tiktok" {
		t.Errorf("kids: %+v, want dad-phone assigned and tiktok off at noon", info[0])
	}
}
