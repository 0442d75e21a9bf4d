package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// TestMetricsExactCounts sends a known mix of queries and checks /metrics
// shows exactly those counts.
func TestMetricsExactCounts(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 300))
	cfgPath := writeTestConfig(t, up.Addr, `
[[clients]]
name = "phone"
addresses = ["127.0.0.7"]
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
`)
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	ask := func(name string, qtype uint16) { rt.Exchange(t, "udp", addr, rt.Question(name, qtype)) }
	for range 3 {
		ask("a.xiaomi.example", dns.TypeA) // blocked x3
	}
	ask("fresh.example", dns.TypeA)    // forwarded
	ask("fresh.example", dns.TypeA)    // cached (fast path)
	ask("fresh.example", dns.TypeAAAA) // forwarded
	ask("anything.example", dns.TypeANY)
	rt.Exchange(t, "tcp", addr, rt.Question("fresh.example", dns.TypeA)) // cached over TCP
	r, _, err := sendFromT("127.0.0.7").Exchange(rt.Question("b.xiaomi.example", dns.TypeA), addr)
	if err != nil || len(r.Answer) != 1 {
		t.Fatal(err)
	}

	resp, err := http.Get("http://" + inst.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`vigil_queries_total{proto="udp",result="blocked"} 4`,
		`vigil_queries_total{proto="udp",result="forwarded"} 2`,
		`vigil_queries_total{proto="udp",result="cached"} 1`,
		`vigil_queries_total{proto="udp",result="local"} 1`,
		`vigil_queries_total{proto="tcp",result="cached"} 1`,
		`vigil_queries_by_type_total{type="A"} 7`,
		`vigil_queries_by_type_total{type="AAAA"} 1`,
		`vigil_queries_by_type_total{type="ANY"} 1`,
		`vigil_blocked_total{client="",list="xiaomi",vendor="Xiaomi"} 3`,
		`vigil_blocked_total{client="phone",list="xiaomi",vendor="Xiaomi"} 1`,
		`vigil_cache_hits_total 2`,
		`vigil_list_rules 1`,
		`vigil_upstream_duration_seconds_count{upstream="udp://` + up.Addr + `"} 2`,
		`vigil_blocking_paused 0`,
		`vigil_udp_shed_total 0`,
		`vigil_store_mode{mode="read-write"} 1`,
		`vigil_store_low_disk 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "vigil_") {
				t.Log(l)
			}
		}
	}
}

func sendFromT(src string) *dns.Client {
	return &dns.Client{Net: "udp", Timeout: 2 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}}
}

// TestReload changes the list and the upstream in the file and reloads
// over the API while queries flow: the change applies, no query is lost;
// an invalid file is rejected and the running configuration stays.
func TestReload(t *testing.T) {
	up1 := rt.NewUpstream(t, rt.A("192.0.2.1", 1))
	up2 := rt.NewUpstream(t, rt.A("192.0.2.2", 1))
	cfgPath := writeTestConfig(t, up1.Addr, "[[lists]]\nname = \"v\"\nentries = [\"||old.example^\"]\n")
	inst := startServe(t, cfgPath)
	addr := inst.srv.UDPAddrs()[0].String()
	if got := answerOf(t, addr, "old.example"); got != "0.0.0.0" {
		t.Fatalf("before reload: %s", got)
	}

	// Load during the reload: every query must be answered.
	stop := make(chan struct{})
	lost := make(chan int)
	go func() {
		n := 0
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				lost <- n
				return
			default:
			}
			if _, _, err := c.Exchange(rt.Question("load"+strconv.Itoa(i)+".example", dns.TypeA), addr); err != nil {
				n++
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	body, _ := os.ReadFile(cfgPath)
	body = bytes.Replace(body, []byte("||old.example^"), []byte("||new.example^"), 1)
	body = bytes.Replace(body, []byte(up1.Addr), []byte(up2.Addr), 1)
	if err := os.WriteFile(cfgPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	post := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+inst.apiAddr+"/api/v1/reload", nil)
		req.Header.Set(api.ClientHeader, "test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, msg := post(); code != 200 {
		t.Fatalf("reload: %d %s", code, msg)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if n := <-lost; n != 0 {
		t.Errorf("%d queries unanswered during the reload", n)
	}
	if got := answerOf(t, addr, "old.example"); got != "192.0.2.2" {
		t.Errorf("old.example after reload: %s, want forwarded to the new upstream", got)
	}
	if got := answerOf(t, addr, "new.example"); got != "0.0.0.0" {
		t.Errorf("new.example after reload: %s, want blocked", got)
	}

	// An invalid file is rejected; the running configuration stays.
	if err := os.WriteFile(cfgPath, append(body, []byte("\n[bogus]\nx = 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, msg := post(); code != 400 || !strings.Contains(msg, "bogus") {
		t.Errorf("invalid reload: %d %s", code, msg)
	}
	if got := answerOf(t, addr, "new.example"); got != "0.0.0.0" {
		t.Errorf("after a rejected reload: %s, want the running configuration", got)
	}
}
