package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/api"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// flakyListServer serves fixed lists on 127.0.0.1 until told to fail.
type flakyListServer struct {
	*httptest.Server
	mu   sync.Mutex
	mode string
}

func newFlakyListServer(t *testing.T, lists map[string]string) *flakyListServer {
	s := &flakyListServer{mode: "ok"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode := s.mode
		s.mu.Unlock()
		switch mode {
		case "404":
			http.NotFound(w, r)
		case "html":
			fmt.Fprint(w, "<html><head><title>Sign in to the hotel wifi</title></head><body></body></html>")
		case "empty":
		default:
			body, ok := lists[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, body)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *flakyListServer) set(mode string) { s.mu.Lock(); s.mode = mode; s.mu.Unlock() }

// upstreamWithCNAME answers alias.* with a CNAME into a blocked zone and
// every A question with 192.0.2.1.
func upstreamWithCNAME(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	name := q.Name
	if strings.HasPrefix(name, "alias.") {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "edge.adblock.example."})
		name = "edge.adblock.example."
	}
	if q.Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
	}
	_ = w.WriteMsg(m)
}

func answerOf(t *testing.T, addr, name string) string {
	t.Helper()
	r := rt.Exchange(t, "udp", addr, rt.Question(name, dns.TypeA))
	var parts []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			parts = append(parts, a.A.String())
		}
	}
	return strings.Join(parts, ",")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBlocklistsEndToEnd runs Vigil with lists served over HTTP on
// 127.0.0.1 and checks blocking over UDP, then list-server failures, then a
// restart with the list server gone.
func TestBlocklistsEndToEnd(t *testing.T) {
	up := rt.NewUpstream(t, upstreamWithCNAME)
	ls := newFlakyListServer(t, map[string]string{
		"/adblock.txt": "[Adblock Plus]\n||adblock.example^\n||second.example^\n",
		"/hosts.txt":   "0.0.0.0 hosts.example\n0.0.0.0 other-hosts.example\n",
	})
	extra := fmt.Sprintf(`
[blocklists]
refresh_jitter = "0s"
[[lists]]
name = "vendor"
vendor = "Vendor"
sources = ["%[1]s/adblock.txt", "%[1]s/hosts.txt"]
[[lists]]
name = "mine"
kind = "allow"
entries = ["ok.adblock.example"]
`, ls.URL)
	cfgPath := writeTestConfig(t, up.Addr, extra)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	waitFor(t, "the first download", func() bool { return inst.lists.Current().Matcher.Len() >= 5 })

	check := func(t *testing.T) {
		t.Helper()
		for name, want := range map[string]string{
			"adblock.example":        "0.0.0.0",   // adblock rule
			"deep.adblock.example":   "0.0.0.0",   // adblock rules cover subdomains
			"hosts.example":          "0.0.0.0",   // hosts rule
			"sub.hosts.example":      "192.0.2.1", // hosts rules are exact
			"ok.adblock.example":     "192.0.2.1", // allowlisted
			"unlisted.example":       "192.0.2.1", // forwarded
			"alias.innocent.example": "0.0.0.0",   // CNAME into a blocked name
		} {
			if got := answerOf(t, addr, name); got != want {
				t.Errorf("%s: answer %q, want %q", name, got, want)
			}
		}
	}
	check(t)

	var out, errOut bytes.Buffer
	for _, mode := range []string{"404", "html", "empty"} {
		ls.set(mode)
		out.Reset()
		err := run(context.Background(), []string{"lists", "update", "-config", cfgPath, "-json"}, &out, &errOut)
		if err != nil {
			t.Fatalf("lists update with the server answering %s: %v", mode, err)
		}
		var rep api.ListsStatus
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		for _, s := range rep.Sources {
			if s.Status != blocklists.StatusFailedCached {
				t.Errorf("%s: source %s is %q, want %q", mode, s.Source, s.Status, blocklists.StatusFailedCached)
			}
		}
		check(t)
	}

	// "vigil lists" shows the failure and the cached copies.
	out.Reset()
	if err := run(context.Background(), []string{"lists", "-config", cfgPath}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "failed-using-cached-copy") || !strings.Contains(out.String(), "Vendor") {
		t.Errorf("vigil lists output:\n%s", out.String())
	}
	// "vigil explain" through the API.
	out.Reset()
	if err := run(context.Background(), []string{"explain", "-config", cfgPath, "x.adblock.example"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "BLOCKED") || !strings.Contains(out.String(), "||adblock.example^") {
		t.Errorf("explain output: %s", out.String())
	}
}

// TestRestartWithoutListServerBlocks stops Vigil, takes the list server
// away and checks the first query after a restart is blocked.
func TestRestartWithoutListServerBlocks(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	ls := newFlakyListServer(t, map[string]string{"/l.txt": "||phone-home.example^\n"})
	cfgPath := writeTestConfig(t, up.Addr, fmt.Sprintf("[[lists]]\nname = \"v\"\nsources = [%q]\n", ls.URL+"/l.txt"))

	// First run: fetch the list, then stop.
	inst, stop := runServe(t, cfgPath)
	waitFor(t, "the first download", func() bool { return inst.lists.Current().Matcher.Len() == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// With the server stopped, the CLI reads the store directly.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"explain", "-config", cfgPath, "a.phone-home.example"}, &out, &errOut); err != nil {
		t.Fatalf("offline explain: %v", err)
	}
	if !strings.Contains(out.String(), "BLOCKED") {
		t.Errorf("offline explain: %s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"lists", "-config", cfgPath, "-json"}, &out, &errOut); err != nil {
		t.Fatalf("offline lists: %v", err)
	}
	if !strings.Contains(out.String(), `"status": "updated"`) {
		t.Errorf("offline lists: %s", out.String())
	}

	ls.Close()
	inst2 := startServe(t, cfgPath)
	if got := answerOf(t, inst2.srv.UDPAddrs()[0].String(), "x.phone-home.example"); got != "0.0.0.0" {
		t.Errorf("first query after an offline restart answered %q, want blocked", got)
	}
}

func TestListsParseCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.txt")
	if err := os.WriteFile(path, []byte("0.0.0.0 A.example\n0.0.0.0 bad..example\n0.0.0.0 b.example c.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"lists", "parse", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "a.example\nb.example\nc.example\n" {
		t.Errorf("rules:\n%s", got)
	}
	if e := errOut.String(); !strings.Contains(e, path+":2:") || !strings.Contains(e, "3 entries") || !strings.Contains(e, "1 rejected") {
		t.Errorf("summary:\n%s", e)
	}
	out.Reset()
	if err := run(context.Background(), []string{"lists", "parse", path, "-format", "wildcard"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"lists", "parse", path, "-format", "nonsense"}, &out, &errOut); exitCode(err) != 2 {
		t.Errorf("bad -format: %v", err)
	}
}

func TestPauseAndHealthCommands(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, "[[lists]]\nname = \"v\"\nentries = [\"||tracker.example^\"]\n")
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"health", "-config", cfgPath}, &out, &errOut); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := run(context.Background(), []string{"pause", "10m", "-config", cfgPath, "-client", "127.0.0.1"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := answerOf(t, addr, "x.tracker.example"); got != "192.0.2.1" {
		t.Errorf("paused: %s", got)
	}
	out.Reset()
	if err := run(context.Background(), []string{"resume", "-config", cfgPath}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "blocking resumed\n" {
		t.Errorf("resume printed %q, want a sentence, not JSON", got)
	}
	if got := answerOf(t, addr, "x.tracker.example"); got != "0.0.0.0" {
		t.Errorf("resumed: %s", got)
	}
	if err := run(context.Background(), []string{"pause", "soon", "-config", cfgPath}, &out, &errOut); exitCode(err) != 2 {
		t.Errorf("bad duration: %v", err)
	}
}

// TestListsShowsDisabledList: a list with enabled = false is in "vigil
// lists" and the lists API as off, with what turning it on breaks, and
// its source is never requested.
func TestListsShowsDisabledList(t *testing.T) {
	up := rt.NewUpstream(t, upstreamWithCNAME)
	ls := newFlakyListServer(t, map[string]string{"/cloud.txt": "||cloud.example^\n", "/on.txt": "||on.example^\n"})
	cfgPath := writeTestConfig(t, up.Addr, fmt.Sprintf(`
[[lists]]
name = "on"
sources = ["%[1]s/on.txt"]
[[lists]]
name = "example-cloud"
vendor = "Example"
sources = ["%[1]s/cloud.txt"]
enabled = false
breaks = ["push", "find-device"]
`, ls.URL))
	inst := startServe(t, cfgPath)
	waitFor(t, "the first download", func() bool { return inst.lists.Current().Matcher.Len() >= 1 })
	if got := answerOf(t, inst.srv.UDPAddrs()[0].String(), "cloud.example"); got != "192.0.2.1" {
		t.Errorf("cloud.example: answer %q; a disabled list must not block", got)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"lists", "-config", cfgPath}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if want := "example-cloud: off (enabled = false); turning it on breaks push, find-device"; !strings.Contains(out.String(), want) {
		t.Errorf("vigil lists output lacks %q:\n%s", want, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"lists", "-config", cfgPath, "-json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var rep api.ListsStatus
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, s := range rep.Sources {
		off := s.List == "example-cloud"
		if s.Enabled == off || (off && (s.Status != blocklists.StatusDisabled || len(s.Breaks) != 2)) {
			t.Errorf("source %+v", s)
		}
	}
}

// TestListsAuditCommand runs "vigil lists audit" against a running server
// (through its API) and with the server stopped (the store opened
// directly): both say which names the allowlist rescues from the deny
// list and which popular names it blocks.
func TestListsAuditCommand(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, `
[[lists]]
name = "vendor"
vendor = "Vendor"
entries = ["||micloud.example^", "||ads.example^$important"]
[[lists]]
name = "keep"
kind = "allow"
entries = ["@@||find.micloud.example^", "@@||x.ads.example^"]
`)
	top := filepath.Join(t.TempDir(), "top-1m.csv")
	// Past the first four, filler: the body is well over the API's usual
	// 4 KiB limit, which the audit's own limit allows.
	var topText strings.Builder
	topText.WriteString("1,www.example\n2,micloud.example\n3,find.micloud.example\n4,x.ads.example\n")
	for i := 5; i <= 5000; i++ {
		fmt.Fprintf(&topText, "%d,filler-%d.example.org\n", i, i)
	}
	if err := os.WriteFile(top, []byte(topText.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(how string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"lists", "audit", "-config", cfgPath, "-top", top}, &out, &errOut); err != nil {
			t.Fatalf("%s: %v (%s)", how, err, errOut.String())
		}
		got := out.String()
		for _, want := range []string{
			"vendor (Vendor, 2 rules)",
			"rescued by the allowlists: 1\n    find.micloud.example (||micloud.example^)",
			"blocks 3 of the top 5000 names (1 of them allowed anyway)",
			"#2 micloud.example (||micloud.example^)",
			"#3 find.micloud.example (||micloud.example^) allowed by keep",
			"#4 x.ads.example (||ads.example^$important)\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: output lacks %q:\n%s", how, want, got)
			}
		}
	}
	inst, stop := runServe(t, cfgPath)
	_ = inst
	check("through the API")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	check("offline")
}
