package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dt "github.com/dnstap/golang-dnstap"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// Vigil's dnstap stream, read with the reference decoder over a Unix
// socket: a query and a response message per lookup, on every path
// (packed blocked, forwarded, cached; UDP and TCP), with the verdict in
// the response's extra field. The collector starts after Vigil: Vigil
// connects when it comes.
func TestDnstapStream(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	sock := filepath.Join(t.TempDir(), "dnstap.sock")
	cfgPath := writeTestConfig(t, up.Addr, fmt.Sprintf(`
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
[[clients]]
name = "phone"
addresses = ["127.0.0.7"]
[identify]
neighbor_table = ""
[dnstap]
socket = %q
identity = "vigil-test"
`, sock))
	inst := startServe(t, cfgPath)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	in := dt.NewFrameStreamSockInput(ln)
	frames := make(chan []byte, 64)
	go in.ReadInto(frames)
	t.Cleanup(func() { ln.Close() })
	waitFor(t, "Vigil to connect to the collector", func() bool { return inst.tap.Stats().Connected })

	addr := inst.srv.UDPAddrs()[0].String()
	blocked := rt.Question("api.xiaomi.example", dns.TypeA)
	if r, _, err := sendFromT("127.0.0.7").Exchange(blocked, addr); err != nil || answerText(r) != "blocked" {
		t.Fatalf("blocked query: %v", err)
	}
	plain := rt.Question("www.example.org", dns.TypeA)
	for range 2 { // forwarded, then cached
		if r, _, err := sendFromT("127.0.0.8").Exchange(plain, addr); err != nil || answerText(r) != "forwarded" {
			t.Fatalf("forwarded query: %v", err)
		}
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if _, _, err := tcp.Exchange(rt.Question("tcp.example.org", dns.TypeA), addr); err != nil {
		t.Fatal(err)
	}

	type msg struct {
		typ   dt.Message_Type
		proto dt.SocketProtocol
		qname string
		extra string
		from  net.IP
	}
	var got []msg
	deadline := time.After(10 * time.Second)
	for len(got) < 8 {
		select {
		case f := <-frames:
			var d dt.Dnstap
			if err := proto.Unmarshal(f, &d); err != nil {
				t.Fatal(err)
			}
			if string(d.Identity) != "vigil-test" {
				t.Errorf("identity %q", d.Identity)
			}
			m := d.GetMessage()
			var q dns.Msg
			if err := q.Unpack(m.QueryMessage); err != nil {
				t.Fatal(err)
			}
			if m.GetType() == dt.Message_CLIENT_RESPONSE {
				var r dns.Msg
				if err := r.Unpack(m.ResponseMessage); err != nil || r.Id != q.Id {
					t.Errorf("response %v does not answer its query", err)
				}
			}
			got = append(got, msg{m.GetType(), m.GetSocketProtocol(), q.Question[0].Name, string(d.Extra), m.QueryAddress})
		case <-deadline:
			t.Fatalf("%d messages, want 8: %+v", len(got), got)
		}
	}
	if got[0].typ != dt.Message_CLIENT_QUERY || got[1].typ != dt.Message_CLIENT_RESPONSE || got[1].qname != "api.xiaomi.example." {
		t.Errorf("first pair %+v", got[:2])
	}
	if want := "vigil blocked list=xiaomi vendor=Xiaomi rule=||xiaomi.example^ client=phone"; got[1].extra != want {
		t.Errorf("blocked extra %q, want %q", got[1].extra, want)
	}
	if !got[1].from.Equal(net.ParseIP("127.0.0.7")) {
		t.Errorf("query address %v", got[1].from)
	}
	for _, i := range []int{3, 5} {
		if got[i].qname != "www.example.org." || !strings.HasPrefix(got[i].extra, "vigil answered NOERROR") {
			t.Errorf("message %d: %+v", i, got[i])
		}
	}
	if got[7].proto != dt.SocketProtocol_TCP || got[7].qname != "tcp.example.org." {
		t.Errorf("TCP message %+v", got[7])
	}
	waitFor(t, "the counters", func() bool { return inst.tap.Stats().Sent == 4 })
	resp, err := http.Get("http://" + inst.apiAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"vigil_dnstap_connected 1\n", "vigil_dnstap_sent_total 4\n", "vigil_dnstap_dropped_total 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
