package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/vigil-dns/vigil"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

func TestShippedConfigIsValid(t *testing.T) {
	file, err := os.ReadFile("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, vigil.DefaultConfig) {
		t.Fatal("the embedded default differs from config.toml")
	}
	cfg, err := loadConfig("../../config.toml")
	if err != nil {
		t.Fatalf("shipped config.toml: %v", err)
	}
	// The shipped file spells out every default: decoding it must give
	// exactly the built-in defaults, or the documentation is lying.
	def := defaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	def.Source = cfg.Source
	lists := cfg.Lists
	cfg.Lists = nil // the code has no default lists; the file enables some
	got, _ := json.Marshal(cfg)
	want, _ := json.Marshal(def)
	if !bytes.Equal(got, want) {
		t.Errorf("config.toml and the code's defaults disagree:\nfile: %s\ncode: %s", got, want)
	}
	if _, err := loadConfig(""); err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	vendors := map[string]bool{}
	functional := false
	for _, l := range lists {
		if l.Name == "functional" {
			functional = l.Allow() && len(l.Sources) == 1 && l.Sources[0] == "builtin:functional"
			continue
		}
		if len(l.Sources) == 0 || l.Allow() {
			t.Errorf("list %s: want a deny list with sources", l.Name)
		}
		vendors[l.Vendor] = true
	}
	if !functional {
		t.Error(`shipped config.toml does not enable the allowlist "functional" (sources = ["builtin:functional"])`)
	}
	for _, v := range []string{"Xiaomi", "Huawei", "OPPO/Realme", "Vivo", "Samsung", "Apple", "Amazon", "TikTok", "Microsoft", "LG", "Roku"} {
		if !vendors[v] {
			t.Errorf("shipped config.toml blocks no %s list by default", v)
		}
	}
}

func TestCheckReportsBadConfig(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string // substrings of the error
	}{
		{"unknown key", "[server]\nlisten = [\"127.0.0.1:53\"]\n\n[upstream]\nadress = \"1.1.1.1:53\"\n",
			[]string{":5:", `unknown key "upstream.adress"`}},
		{"unknown section", "[srever]\nlisten = []\n", []string{":1:", `unknown key "srever"`}},
		{"bad duration", "[upstream]\ntimeout = \"soon\"\n", []string{":2:", "upstream.timeout", "duration"}},
		{"bad listen", "[server]\nlisten = [\"localhost\"]\n", []string{":2:", "server.listen"}},
		{"bad prefix", "[server]\nallow = [\"10.0.0.0/33\"]\n", []string{":2:", "server.allow"}},
		{"bad upstream", "[upstream]\nservers = [\"quic://1.1.1.1\"]\n", []string{":2:", `key "upstream.servers"`, "udp://"}},
		{"bad strategy", "[upstream]\nstrategy = \"random\"\n", []string{"upstream.strategy", `"failover" or "parallel"`}},
		{"bad level", "[log]\nlevel = \"loud\"\n", []string{"log.level"}},
		{"wrong type", "[cache]\nmax_bytes = \"lots\"\n", []string{":2:", "cache.max_bytes"}},
		{"syntax", "[server\nlisten = 1\n", []string{":2:", "table name"}},
		{"gc off", "[server]\ngc_percent = -1\n", []string{"server.gc_percent", "10 to 1000"}},
		{"several problems", "[cache]\nmax_bytes = 1\n[server]\nmax_inflight = 0\n", []string{":2: cache.max_bytes", ":4: server.max_inflight"}},
		{"bad prefix in words", "[server]\nallow = [\"127.0.0.0/33\"]\n", []string{":2:", `want an IP prefix such as "192.168.1.0/24", got "127.0.0.0/33"`}},
		// Every problem, decoding and validation alike, each at its line,
		// top to bottom.
		{"every problem at its line", "[server]\nallow = [\"127.0.0.0/33\"]\n[blocking]\nanswer = \"blackhole\"\n" +
			"[[lists]]\nname = \"a\"\nformat = \"weird\"\nentries = [\"x.example\"]\n[[clients]]\nname = \"tv\"\naddresses = [\"10.0.0.1\"]\n[[clients]]\nname = \"tv\"\n",
			[]string{":2: key \"server.allow\"", ":4: blocking.answer", ":7: key \"lists.format\"", ":12: clients[1] (tv)", ":13: clients[1] (tv).name"}},
		{"missing list file", "[[lists]]\nname = \"a\"\nsources = [\"/nonexistent/vigil-test-list.txt\"]\n",
			[]string{":3: lists[0].sources[0]", "does not exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.toml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"check", "-config", path}, &out, &errOut)
			if err == nil {
				t.Fatal("check accepted a bad config")
			}
			if exitCode(err) == 0 {
				t.Error("exit code 0")
			}
			msg := err.Error()
			for _, w := range append(tc.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestCheckAcceptsShippedConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "-config", "../../config.toml"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "valid") {
		t.Errorf("output %q", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &out); exitCode(err) != 2 {
		t.Errorf("unknown command: err %v, want exit 2", err)
	}
	if err := run(context.Background(), []string{"check", "-h"}, &out, &out); exitCode(err) != 2 || !strings.Contains(out.String(), "-config") {
		t.Errorf("check -h: err %v, output %q", err, out.String())
	}
	// "vigil -h" is about vigil: the commands, not serve's flags.
	for _, h := range []string{"-h", "--help", "-help"} {
		out.Reset()
		if err := run(context.Background(), []string{h}, &out, &out); err != nil || !strings.Contains(out.String(), "Commands:") || !strings.Contains(out.String(), "devices") {
			t.Errorf("vigil %s: err %v, output %q", h, err, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"serve", "-h"}, &out, &out); exitCode(err) != 2 || !strings.Contains(out.String(), "Usage: vigil serve") {
		t.Errorf("serve -h: err %v, output %q", err, out.String())
	}
}

// writeTestConfig writes a configuration serving on 127.0.0.1:0 with the
// store in a temporary directory, plus extra TOML.
func writeTestConfig(t *testing.T, upstream, extra string) string {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf(`[server]
listen = ["127.0.0.1:0"]
max_inflight = 64
# One socket per address, so the UDP readers are two whatever the CPUs
# (the crash loss bound counts them).
udp_sockets = 1
[upstream]
servers = [%q]
[store]
dir = %q
[http]
listen = %q
[log]
level = "warn"
%s`, upstream, filepath.Join(dir, "state"), freeAddr(t), extra)
	path := filepath.Join(dir, "vigil.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServe runs serve in the background and returns what it started;
// the server stops when the test ends.
func startServe(t *testing.T, cfgPath string) *running {
	t.Helper()
	inst, stop := runServe(t, cfgPath)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return inst
}

// runServe runs serve in the background until stop is called; stop
// returns serve's error once it has returned.
func runServe(t *testing.T, cfgPath string) (inst *running, stop func() error) {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *running, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, testLogger(t), func(r *running) { ready <- r }) }()
	select {
	case inst = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not become ready")
	}
	return inst, func() error { cancel(); return <-done }
}

func TestServeEndToEnd(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	inst := startServe(t, writeTestConfig(t, up.Addr, ""))
	addr := inst.srv.UDPAddrs()[0].String()
	r := rt.Exchange(t, "udp", addr, rt.Question("example.com", dns.TypeA))
	if len(r.Answer) != 1 {
		t.Fatalf("%d answers", len(r.Answer))
	}
	resp, err := http.Get("http://" + inst.apiAddr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil || health["status"] != "ok" {
		t.Errorf("health %v, err %v", health, err)
	}
}

// testLogger logs warnings and errors through the test, not the chatter of
// a normal start.
func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for the API, which the CLI must find through the configuration.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestWarmRestart stops Vigil with a warm cache and starts it again with
// its upstream gone: the cached answer still comes back.
func TestWarmRestart(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 3600))
	cfgPath := writeTestConfig(t, up.Addr, "")
	inst, stop := runServe(t, cfgPath)
	rt.Exchange(t, "udp", inst.srv.UDPAddrs()[0].String(), rt.Question("warm.example", dns.TypeA))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Same store, but the upstream is now a black hole.
	cfgPath2 := strings.Replace(cfgPath, "vigil.toml", "vigil2.toml", 1)
	body, _ := os.ReadFile(cfgPath)
	body = bytes.Replace(body, []byte(up.Addr), []byte(rt.DeadAddr(t)), 1)
	if err := os.WriteFile(cfgPath2, body, 0o600); err != nil {
		t.Fatal(err)
	}
	inst2 := startServe(t, cfgPath2)
	waitFor(t, "the cache to be restored", func() bool { return inst2.chain.Cache.Stats().Entries == 1 })
	r := rt.Exchange(t, "udp", inst2.srv.UDPAddrs()[0].String(), rt.Question("warm.example", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl > 3600 || r.Answer[0].Header().Ttl < 3500 {
		t.Errorf("after a restart with no upstream: %v; want the cached answer", r.Answer)
	}
}

func TestVersionText(t *testing.T) {
	bi := func(settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		release string
		bi      *debug.BuildInfo
		want    string
	}{
		{"", bi("vcs.revision", "e1011e579484e6104f250302b9c38caaa7aa59a5", "vcs.time", "2026-12-01T19:03:38Z", "vcs.modified", "false"),
			"development build (commit e1011e579484, 2026-12-01T19:03:38Z) go1.26.8"},
		{"v1.2.0", bi("vcs.revision", "e1011e579484e6104f250302b9c38caaa7aa59a5", "vcs.modified", "true"),
			"v1.2.0 (commit e1011e579484, + local changes) go1.26.8"},
		{"v1.2.0", bi(), "v1.2.0 go1.26.8"},
		{"", bi(), "development build (no commit recorded: built outside a git checkout or with -buildvcs=false) go1.26.8"},
	} {
		if got := versionText(tc.release, tc.bi); got != tc.want {
			t.Errorf("versionText(%q) = %q, want %q", tc.release, got, tc.want)
		}
	}
}

// As the README's docker run has it: -http moves the API and dashboard,
// and VIGIL_HTTP_TOKEN is the token, so that changes need it.
func TestServeHTTPFlagAndTokenFromEnvironment(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, "")
	t.Setenv(tokenEnv, "token-from-the-environment")
	api := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-config", cfgPath, "-http", api}, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the API on -http's address", func() bool {
		resp, err := http.Get("http://" + api + "/api/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"token-from-the-environment", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+api+"/api/v1/pause?duration=1m", nil)
		req.Header.Set("X-Vigil-Client", "test")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("pause with token %q: %s, want %d", tc.token, resp.Status, tc.want)
		}
	}
}

// A port another program holds is named as such, with the usual suspect.
func TestServeNamesATakenPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	cfgPath := writeTestConfig(t, up.Addr, "")
	body, _ := os.ReadFile(cfgPath)
	body = []byte(strings.Replace(string(body), `listen = ["127.0.0.1:0"]`, `listen = ["`+pc.LocalAddr().String()+`"]`, 1))
	if err := os.WriteFile(cfgPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"serve", "-config", cfgPath}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "another program holds the port") || !strings.Contains(err.Error(), "systemd-resolved") {
		t.Errorf("serve on a taken port: %v", err)
	}
}
