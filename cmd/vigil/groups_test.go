package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

const groupLists = `
[[lists]]
name = "tiktok"
vendor = "TikTok"
entries = ["||tiktok.example^"]
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
[[lists]]
name = "vacuum-cloud"
kind = "allow"
entries = ["||cloud.xiaomi.example^"]
[identify]
neighbor_table = ""
[[clients]]
name = "kids-tablet"
addresses = ["127.0.0.2"]
[[clients]]
name = "vacuum"
addresses = ["127.0.0.3"]
`

const householdGroups = `
[[groups]]
name = "kids"
clients = ["kids-tablet"]
lists = ["tiktok", "xiaomi"]
[[groups.schedules]]
lists = ["tiktok"]
from = "00:00"
to = "24:00"
[[groups]]
name = "vacuum"
clients = ["vacuum", "127.0.0.5"]
lists = ["xiaomi", "vacuum-cloud"]
answer = "refused"
[[groups]]
name = "default"
lists = ["xiaomi"]
`

// answerText sums an answer up: "blocked" (0.0.0.0), "refused",
// "forwarded" (the upstream's 192.0.2.1).
func answerText(r *dns.Msg) string {
	switch {
	case r.Rcode == dns.RcodeRefused:
		return "refused"
	case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
		return dns.RcodeToString[r.Rcode]
	case r.Answer[0].(*dns.A).A.String() == "0.0.0.0":
		return "blocked"
	case r.Answer[0].(*dns.A).A.String() == "192.0.2.1":
		return "forwarded"
	}
	return r.Answer[0].String()
}

// Three clients in three groups ask the same names of one server and get
// the answers their groups call for; the log records each one's group.
func TestGroupsEndToEnd(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	inst := startServe(t, writeTestConfig(t, up.Addr, groupLists+householdGroups))
	addr := inst.srv.UDPAddrs()[0].String()
	cases := []struct {
		from, name, want string
	}{
		{"127.0.0.2", "v.tiktok.example", "blocked"},   // kids: TikTok (its schedule is all day)
		{"127.0.0.3", "v.tiktok.example", "forwarded"}, // vacuum: not its list
		{"127.0.0.4", "v.tiktok.example", "forwarded"}, // default: not its list
		{"127.0.0.2", "a.cloud.xiaomi.example", "blocked"},
		{"127.0.0.3", "a.cloud.xiaomi.example", "forwarded"}, // the vacuum's cloud is allowed for it only
		{"127.0.0.4", "a.cloud.xiaomi.example", "blocked"},
		{"127.0.0.3", "api.xiaomi.example", "refused"}, // the vacuum group's answer mode
		{"127.0.0.5", "api.xiaomi.example", "refused"}, // a member by address
		{"127.0.0.1", "www.example.org", "forwarded"},
	}
	for _, tc := range cases {
		// Twice: the second may be answered from packed bytes or the
		// cache, and must agree.
		for i := range 2 {
			if got := answerText(queryFrom(t, tc.from, addr, tc.name)); got != tc.want {
				t.Errorf("%s asks %s (%d): %s, want %s", tc.from, tc.name, i, got, tc.want)
			}
		}
	}
	waitFor(t, "the log writer", func() bool { return inst.qlog.Stats().Written >= 10 })
	page, err := apiClient(t, inst).Blocked(t.Context(), url.Values{"limit": {"100"}})
	if err != nil {
		t.Fatal(err)
	}
	groupsOf := map[string]string{}
	for _, e := range page.Entries {
		groupsOf[e.Client] = e.Group
	}
	for client, want := range map[string]string{"kids-tablet": "kids", "vacuum": "vacuum", "127.0.0.4": "default", "127.0.0.5": "vacuum"} {
		if groupsOf[client] != want {
			t.Errorf("the log records %s in group %q, want %q (all: %v)", client, groupsOf[client], want, groupsOf)
		}
	}
	// Blocked lookups per group: kids 4 (TikTok and the cloud, twice
	// each), vacuum 4 (two clients, twice each), default 2.
	resp, err := http.Get("http://" + inst.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`vigil_blocked_by_group_total{group="kids"} 4`, `vigil_blocked_by_group_total{group="vacuum"} 4`, `vigil_blocked_by_group_total{group="default"} 2`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A reload moves a client into another group while it keeps asking: no
// query goes unanswered, and once the reload returns its answers follow
// the new group.
func TestReloadMovesClientBetweenGroups(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+householdGroups)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	if got := answerText(queryFrom(t, "127.0.0.4", addr, "v.tiktok.example")); got != "forwarded" {
		t.Fatalf("before: %s", got)
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		answered atomic.Int64
		failed   atomic.Value
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		for i := 0; i < 5000 && !stop.Load(); i++ {
			r, _, err := c.Exchange(rt.Question("v.tiktok.example", dns.TypeA), addr)
			if err != nil || r.Rcode != dns.RcodeSuccess {
				failed.Store(err)
				return
			}
			answered.Add(1)
		}
	}()
	waitFor(t, "queries flowing", func() bool { return answered.Load() > 50 })
	body, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(string(body), `clients = ["kids-tablet"]`, `clients = ["kids-tablet", "127.0.0.4"]`, 1)
	if err := os.WriteFile(cfgPath, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := inst.reload.reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := answerText(queryFrom(t, "127.0.0.4", addr, "v.tiktok.example"))
	before := answered.Load()
	waitFor(t, "more queries after the reload", func() bool { return answered.Load() > before+50 })
	stop.Store(true)
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Errorf("a query failed during the reload: %v", err)
	}
	if got != "blocked" {
		t.Errorf("after the reload 127.0.0.4 (now in kids) gets %s for TikTok, want blocked", got)
	}
}

// Every mistake in a group is reported at its file and line by vigil
// check.
func TestCheckLocatesGroupErrors(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+`
[[groups]]
name = "kids"
clients = ["kids-tablt"]
lists = ["tiktok"]
[[groups.schedules]]
lists = ["tiktok"]
from = "21:00"
to = "07:00"
timezone = "Europe/Bruxelles"
[[groups]]
name = "vacuum"
lists = ["vacum-cloud"]
upstreams = ["gopher://10.0.0.1"]
`)
	src, _ := os.ReadFile(cfgPath)
	lineOf := func(s string) int {
		for i, l := range strings.Split(string(src), "\n") {
			if strings.Contains(l, s) {
				return i + 1
			}
		}
		t.Fatalf("%q not in the config", s)
		return 0
	}
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"check", "-config", cfgPath}, &out, &errOut)
	if err == nil {
		t.Fatal("check accepted the config")
	}
	msg := err.Error() + errOut.String()
	for _, want := range []struct {
		at   string
		says string
	}{
		{`clients = ["kids-tablt"]`, `did you mean "kids-tablet"`},
		{`timezone = "Europe/Bruxelles"`, "IANA time zone"},
		{`lists = ["vacum-cloud"]`, `did you mean "vacuum-cloud"`},
		{`upstreams = ["gopher://10.0.0.1"]`, `upstreams[0]`},
	} {
		prefix := cfgPath + ":" + strconv.Itoa(lineOf(want.at)) + ": "
		found := false
		for _, l := range strings.Split(msg, "\n") {
			if strings.Contains(l, prefix) && strings.Contains(l, want.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("want a line starting %q saying %s; got:\n%s", prefix, want.says, msg)
		}
	}
}

// cli runs a vigil command against the test's configuration and returns
// its output.
func cli(t *testing.T, cfgPath string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{args[0], "-config", cfgPath}, args[1:]...)
	if err := run(t.Context(), full, &out, &errOut); err != nil {
		t.Fatalf("vigil %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// A user fixes one device without touching the others: an allow for one
// client unblocks that client only, a block for one client blocks it only,
// a group's allow covers its members, an exception with an end ends by
// itself, and each is visible and removable.
func TestExceptionsPerDeviceAndGroup(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+householdGroups)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	expect := func(step string, want map[string]string, name string) {
		t.Helper()
		for from, w := range want {
			if got := answerText(queryFrom(t, from, addr, name)); got != w {
				t.Errorf("%s: %s asks %s: %s, want %s", step, from, name, got, w)
			}
		}
	}
	expect("before", map[string]string{"127.0.0.2": "blocked", "127.0.0.4": "blocked"}, "a.xiaomi.example")

	out := cli(t, cfgPath, "allow", "a.xiaomi.example", "-client", "KIDS-Tablet")
	if !strings.Contains(out, "a.xiaomi.example allowed for client kids-tablet") {
		t.Errorf("allow said %q", out)
	}
	expect("allowed for the tablet", map[string]string{"127.0.0.2": "forwarded", "127.0.0.4": "blocked"}, "a.xiaomi.example")
	expect("only that name", map[string]string{"127.0.0.2": "blocked"}, "b.a.xiaomi.example")

	cli(t, cfgPath, "block", "www.example.org", "-client", "127.0.0.4", "-for", "1h")
	expect("blocked for 127.0.0.4", map[string]string{"127.0.0.4": "blocked", "127.0.0.2": "forwarded"}, "www.example.org")

	cli(t, cfgPath, "allow", "api.xiaomi.example", "-group", "default")
	expect("allowed for the default group", map[string]string{"127.0.0.4": "forwarded", "127.0.0.2": "blocked", "127.0.0.3": "refused"}, "api.xiaomi.example")

	list := cli(t, cfgPath, "exceptions")
	for _, want := range []string{"a.xiaomi.example  allow   client kids-tablet", "www.example.org   block   client 127.0.0.4", "api.xiaomi.example  allow   group default"} {
		if !strings.Contains(strings.Join(strings.Fields(list), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("exceptions lack %q:\n%s", want, list)
		}
	}

	cli(t, cfgPath, "allow", "-remove", "a.xiaomi.example", "-client", "kids-tablet")
	expect("removed", map[string]string{"127.0.0.2": "blocked"}, "a.xiaomi.example")

	// An exception with an end: gone by itself once it ends.
	cli(t, cfgPath, "allow", "c.xiaomi.example", "-client", "127.0.0.4", "-for", "1s")
	expect("for a second", map[string]string{"127.0.0.4": "forwarded"}, "c.xiaomi.example")
	waitFor(t, "the exception to end", func() bool {
		return answerText(queryFrom(t, "127.0.0.4", addr, "c.xiaomi.example")) == "blocked"
	})
	if list := cli(t, cfgPath, "exceptions"); strings.Contains(list, "c.xiaomi.example") {
		t.Errorf("an ended exception is still listed:\n%s", list)
	}
}

// explain -client and -group tell each client's truth: its groups, the
// list and the schedule or exception that decide.
func TestExplainForClientAndGroup(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+householdGroups)
	startServe(t, cfgPath)
	cli(t, cfgPath, "allow", "v.tiktok.example", "-client", "127.0.0.9")
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"-client", "kids-tablet"}, []string{"for kids-tablet, in group kids:", "v.tiktok.example is BLOCKED by list \"tiktok\"", "group kids, schedule 00:00–24:00"}},
		{[]string{"-client", "127.0.0.3"}, []string{"for vacuum, in group vacuum:", "not blocked: no list that applies"}},
		{[]string{"-client", "127.0.0.4"}, []string{"in group default:", "not blocked"}},
		{[]string{"-client", "127.0.0.9"}, []string{"allowed by list \"allowed:client:127.0.0.9\"", "this device's own exception"}},
		{[]string{"-group", "kids"}, []string{"for group kids:", "BLOCKED by list \"tiktok\""}},
		{nil, []string{"BLOCKED by list \"tiktok\""}},
	}
	for _, tc := range cases {
		out := cli(t, cfgPath, append([]string{"explain", "v.tiktok.example"}, tc.args...)...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %v: want %q in\n%s", tc.args, w, out)
			}
		}
	}
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"explain", "-config", cfgPath, "-group", "kdis", "v.tiktok.example"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `did you mean "kids"`) {
		t.Errorf("explain for an unknown group: %v", err)
	}
}

// A group's pause lets its members through and no one else.
func TestPauseGroup(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+householdGroups)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	if out := cli(t, cfgPath, "pause", "-group", "kids", "10m"); !strings.Contains(out, "paused for group kids") {
		t.Errorf("pause said %q", out)
	}
	for from, want := range map[string]string{"127.0.0.2": "forwarded", "127.0.0.4": "blocked"} {
		if got := answerText(queryFrom(t, from, addr, "x.xiaomi.example")); got != want {
			t.Errorf("kids paused: %s gets %s, want %s", from, got, want)
		}
	}
	if out := cli(t, cfgPath, "resume", "-group", "kids"); !strings.Contains(out, "resumed") {
		t.Errorf("resume said %q", out)
	}
	if got := answerText(queryFrom(t, "127.0.0.2", addr, "x.xiaomi.example")); got != "blocked" {
		t.Errorf("after resuming, kids get %s", got)
	}
}

// A device moved between groups by hand follows its new groups at once
// and after a restart, shows in vigil groups and the device list, and
// goes back to the configuration's groups on reset.
func TestMoveDeviceBetweenGroups(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+householdGroups)
	inst, stop := runServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	ask := func(from string) string { return answerText(queryFrom(t, from, addr, "v.tiktok.example")) }
	if got := ask("127.0.0.4"); got != "forwarded" {
		t.Fatalf("before: %s", got)
	}
	if out := cli(t, cfgPath, "groups", "move", "127.0.0.4", "kids"); !strings.Contains(out, "127.0.0.4 is in kids (moved by hand)") {
		t.Errorf("move said %q", out)
	}
	if got := ask("127.0.0.4"); got != "blocked" {
		t.Errorf("moved into kids: %s, want blocked", got)
	}
	if out := cli(t, cfgPath, "groups", "move", "kids-tablet", ""); !strings.Contains(out, "kids-tablet is in default") {
		t.Errorf("move to none said %q", out)
	}
	if got := ask("127.0.0.2"); got != "forwarded" {
		t.Errorf("the tablet moved out of kids: %s, want forwarded", got)
	}
	list := cli(t, cfgPath, "groups")
	if !strings.Contains(list, "moved in:  127.0.0.4") || !strings.Contains(list, "schedule:  tiktok 00:00–24:00") {
		t.Errorf("vigil groups:\n%s", list)
	}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"groups", "move", "-config", cfgPath, "127.0.0.4", "kdis"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `did you mean "kids"`) {
		t.Errorf("moving into an unknown group: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	inst, stop = runServe(t, cfgPath)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	addr = inst.srv.UDPAddrs()[0].String()
	if got := ask("127.0.0.4"); got != "blocked" {
		t.Errorf("after a restart the moved device gets %s, want blocked", got)
	}
	rep, err := apiClient(t, inst).Devices(t.Context(), "24h", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Devices {
		if slices.Contains(d.Addresses, "127.0.0.4") && strings.Join(d.Groups, ",") != "kids" {
			t.Errorf("device %+v: want groups [kids]", d)
		}
	}
	if out := cli(t, cfgPath, "groups", "reset", "127.0.0.4"); !strings.Contains(out, "127.0.0.4 is in default (as the configuration says)") {
		t.Errorf("reset said %q", out)
	}
	if got := ask("127.0.0.4"); got != "forwarded" {
		t.Errorf("reset: %s, want forwarded", got)
	}
}

// A group with upstreams of its own gets its forwarded answers from them,
// others from [upstream]; the cache keeps the two apart, packed answers
// included.
func TestGroupUpstreams(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	kidsUp := rt.NewUpstream(t, rt.A("192.0.2.2", 300))
	inst := startServe(t, writeTestConfig(t, up.Addr, groupLists+`
[[groups]]
name = "kids"
clients = ["kids-tablet"]
upstreams = ["`+kidsUp.Addr+`"]
`))
	addr := inst.srv.UDPAddrs()[0].String()
	answer := func(from string) string {
		r := queryFrom(t, from, addr, "www.example.org")
		if len(r.Answer) != 1 {
			t.Fatalf("%s: %v", from, r)
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	for round := range 3 { // the first forwarded, the others from the cache
		if got := answer("127.0.0.4"); got != "192.0.2.1" {
			t.Errorf("round %d: 127.0.0.4 (no group) got %s, want [upstream]'s 192.0.2.1", round, got)
		}
		if got := answer("127.0.0.2"); got != "192.0.2.2" {
			t.Errorf("round %d: the kids' tablet got %s, want its group's upstream's 192.0.2.2", round, got)
		}
	}
	if kidsUp.Queries() != 1 || up.Queries() != 1 {
		t.Errorf("upstream queries: [upstream] %d, kids' %d; want one each (the rest from the cache)", up.Queries(), kidsUp.Queries())
	}
}

// A reload applies what it can and names the changed settings that only
// a restart applies, instead of saying "reloaded" as if all were in force.
func TestReloadNamesSettingsThatNeedARestart(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists)
	inst := startServe(t, cfgPath)
	body, _ := os.ReadFile(cfgPath)
	changed := strings.Replace(string(body), "max_inflight = 64", "max_inflight = 65", 1) +
		"[blocking]\nanswer = \"nxdomain\"\n[cache]\nmax_bytes = 1048576\n"
	if err := os.WriteFile(cfgPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+inst.apiAddr+"/api/v1/reload", nil)
	req.Header.Set("X-Vigil-Client", "test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status        string   `json:"status"`
		RestartNeeded []string `json:"restart_needed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Join(out.RestartNeeded, ",") != "server.max_inflight,cache.max_bytes" || !strings.Contains(out.Status, "next restart") {
		t.Errorf("reload said %+v; want server.max_inflight and cache.max_bytes named as needing a restart", out)
	}
	addr := inst.srv.UDPAddrs()[0].String()
	if r := queryFrom(t, "127.0.0.1", addr, "x.xiaomi.example"); r.Rcode != dns.RcodeNameError {
		t.Errorf("[blocking] answer was reloaded, yet a blocked name gets %s", dns.RcodeToString[r.Rcode])
	}
}

// A device named by hand is that name everywhere from then on: the log,
// client matching, the device list (named by "user"), groups by host name;
// a [[clients]] name cannot be taken; forgetting the name undoes it.
func TestNameDevice(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists+`
[[groups]]
name = "laptops"
clients = ["host:kids-laptop"]
lists = ["tiktok"]
[[groups]]
name = "default"
lists = ["xiaomi"]
`)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	if got := answerText(queryFrom(t, "127.0.0.6", addr, "v.tiktok.example")); got != "forwarded" {
		t.Fatalf("before naming: %s", got)
	}
	if got := answerText(queryFrom(t, "127.0.0.6", addr, "a.xiaomi.example")); got != "blocked" { // logged under its address
		t.Fatalf("before naming: %s", got)
	}
	if out := cli(t, cfgPath, "name", "127.0.0.6", "kids-laptop"); !strings.Contains(out, `127.0.0.6 is "kids-laptop" now`) {
		t.Errorf("name said %q", out)
	}
	if got := answerText(queryFrom(t, "127.0.0.6", addr, "v.tiktok.example")); got != "blocked" {
		t.Errorf("named kids-laptop, in group laptops by that name: %s, want blocked", got)
	}
	waitFor(t, "the log", func() bool { return inst.qlog.Stats().Written >= 2 })
	// Its history stays one: the lookup logged under its address before
	// it was named is its too.
	if out := cli(t, cfgPath, "log", "-client", "Kids-Laptop"); !strings.Contains(out, "v.tiktok.example") || !strings.Contains(out, "a.xiaomi.example") {
		t.Errorf("vigil log -client kids-laptop:\n%s", out)
	}
	rep, err := apiClient(t, inst).Devices(t.Context(), "24h", "", "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range rep.Devices {
		found = found || d.Name == "kids-laptop" && d.NameSource == "user"
	}
	if !found {
		t.Errorf("devices: %+v, want kids-laptop named by user", rep.Devices)
	}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"name", "-config", cfgPath, "127.0.0.6", "vacuum"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "[[clients]] name") {
		t.Errorf("taking a [[clients]] name: %v", err)
	}
	cli(t, cfgPath, "name", "-forget", "kids-laptop")
	if got := answerText(queryFrom(t, "127.0.0.6", addr, "v.tiktok.example")); got != "forwarded" {
		t.Errorf("the name forgotten: %s, want forwarded", got)
	}
}

// Lists changed by hand: one added from a URL is fetched and blocks, a
// configured one turned off stops blocking, both survive a restart, and
// the added one can be removed (a configured one cannot).
func TestListsChangedByHand(t *testing.T) {
	listSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "||extra.example^")
	}))
	defer listSrv.Close()
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, groupLists)
	inst, stop := runServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	ask := func(name string) string { return answerText(queryFrom(t, "127.0.0.9", addr, name)) }
	if out := cli(t, cfgPath, "lists", "add", "extra", listSrv.URL+"/list.txt", "-vendor", "Extra"); !strings.Contains(out, "list extra added") {
		t.Errorf("lists add said %q", out)
	}
	waitFor(t, "the added list to be fetched", func() bool { return ask("a.extra.example") == "blocked" })
	cli(t, cfgPath, "lists", "disable", "xiaomi")
	if got := ask("a.xiaomi.example"); got != "forwarded" {
		t.Errorf("xiaomi turned off: %s, want forwarded", got)
	}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"lists", "remove", "-config", cfgPath, "xiaomi"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("removing a configured list: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	inst, stop = runServe(t, cfgPath)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	addr = inst.srv.UDPAddrs()[0].String()
	if got := ask("a.extra.example"); got != "blocked" {
		t.Errorf("after a restart the added list (from its stored copy): %s, want blocked", got)
	}
	if got := ask("a.xiaomi.example"); got != "forwarded" {
		t.Errorf("after a restart xiaomi is still off: %s, want forwarded", got)
	}
	cli(t, cfgPath, "lists", "enable", "xiaomi")
	cli(t, cfgPath, "lists", "remove", "extra")
	if got := ask("a.xiaomi.example"); got != "blocked" {
		t.Errorf("xiaomi on again: %s", got)
	}
	if got := ask("b.extra.example"); got != "forwarded" {
		t.Errorf("extra removed: %s", got)
	}
}

// A vendor's cloud list is off for everyone (enabled = false); a group
// that names it gets it, and no one else does: the cloud tier applied to
// the devices meant to be cut off. `vigil lists` says so, with what it
// breaks there.
func TestOffListAppliesToTheGroupsNamingIt(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cloud := filepath.Join(t.TempDir(), "xiaomi-cloud.txt")
	if err := os.WriteFile(cloud, []byte("||xiaomi.example^$important\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeTestConfig(t, up.Addr, `
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||tracking.xiaomi.example^"]
[[lists]]
name = "xiaomi-cloud"
vendor = "Xiaomi"
enabled = false
breaks = ["push", "find-device"]
sources = [`+strconv.Quote(cloud)+`]
[identify]
neighbor_table = ""
[[clients]]
name = "vacuum"
addresses = ["127.0.0.3"]
[[groups]]
name = "offline"
clients = ["vacuum"]
lists = ["xiaomi", "xiaomi-cloud"]
[[groups]]
name = "everyone-else"
clients = ["127.0.0.4"]
`)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	for _, tc := range []struct{ from, name, want string }{
		{"127.0.0.3", "api.xiaomi.example", "blocked"},      // the group naming the cloud list
		{"127.0.0.3", "tracking.xiaomi.example", "blocked"}, // and its telemetry list
		{"127.0.0.4", "api.xiaomi.example", "forwarded"},    // lists omitted: every list that is on
		{"127.0.0.4", "tracking.xiaomi.example", "blocked"}, // ... which the telemetry list is
		{"127.0.0.6", "api.xiaomi.example", "forwarded"},    // in no group
		{"127.0.0.6", "tracking.xiaomi.example", "blocked"}, //
		{"127.0.0.3", "www.example.org", "forwarded"},       //
	} {
		if got := answerText(queryFrom(t, tc.from, addr, tc.name)); got != tc.want {
			t.Errorf("%s asks %s: %s, want %s", tc.from, tc.name, got, tc.want)
		}
	}
	out := cli(t, cfgPath, "lists")
	for _, want := range []string{"xiaomi-cloud: off for everyone, on for the groups that name it; it breaks there push, find-device"} {
		if !strings.Contains(out, want) {
			t.Errorf("vigil lists lacks %q:\n%s", want, out)
		}
	}
}
