package resolver_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-dns/vigil/resolver"
	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

// dotServer starts a DNS-over-TLS stub on 127.0.0.1 answering A 192.0.2.1,
// counting handshakes.
func dotServer(t *testing.T, cert rt.Cert) (addr string, handshakes *atomic.Int64) {
	handshakes = new(atomic.Int64)
	conf := &tls.Config{Certificates: []tls.Certificate{cert.TLS}, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		handshakes.Add(1)
		return nil, nil
	}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Net: "tcp-tls", Handler: rt.A("192.0.2.1", 60)}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String(), handshakes
}

// dohServer starts a DNS-over-HTTPS stub (HTTP/2) answering A 192.0.2.2,
// counting connections.
func dohServer(t *testing.T, cert rt.Cert) (url string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if r.Method != http.MethodPost || q.Unpack(body) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 2)}}
		out, _ := m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		_, _ = w.Write(out)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	s.EnableHTTP2 = true
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL + "/dns-query", conns
}

func TestEncryptedUpstreams(t *testing.T) {
	cert := rt.NewCert(t, []string{"dns.test"}, net.IPv4(127, 0, 0, 1))
	dot, handshakes := dotServer(t, cert)
	doh, conns := dohServer(t, cert)
	for _, tc := range []struct {
		name, upstream, want string
		count                *atomic.Int64
	}{
		{"dot", "tls://" + dot, "192.0.2.1", handshakes},
		{"doh", doh, "192.0.2.2", conns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := startVigil(t, []string{tc.upstream}, func(c *testConfig) {
				c.Upstream.CAFile = cert.PEMFile
				c.Cache.Enabled = false
			})
			before := tc.count.Load()
			for i := range 20 {
				r := rt.Exchange(t, "udp", v.addr, rt.Question("n"+string(rune('a'+i))+".example", dns.TypeA))
				if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.want {
					t.Fatalf("query %d: %v", i, r.Answer)
				}
			}
			if n := tc.count.Load() - before; n != 1 {
				t.Errorf("%d connections for 20 sequential queries, want 1 (reuse)", n)
			}
		})
	}
}

func TestEncryptedUpstreamCertificateMismatch(t *testing.T) {
	wrong := rt.NewCert(t, []string{"someone-else.test"}) // no 127.0.0.1, not dns.test
	dot, _ := dotServer(t, wrong)
	doh, _ := dohServer(t, wrong)
	for _, up := range []string{"tls://" + dot, doh} {
		v := startVigil(t, []string{up}, func(c *testConfig) {
			c.Upstream.CAFile = wrong.PEMFile // trusted issuer, wrong name
			c.Upstream.Timeout = 500 * time.Millisecond
			c.Server.QueryTimeout = time.Second
		})
		r := rt.Exchange(t, "udp", v.addr, rt.Question("x.example", dns.TypeA))
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s with a certificate for another name: rcode %s, want SERVFAIL", up, dns.RcodeToString[r.Rcode])
		}
	}
}

// TestBootstrapResolvesUpstreamName reaches a DoT upstream by name through
// a plain bootstrap server.
func TestBootstrapResolvesUpstreamName(t *testing.T) {
	cert := rt.NewCert(t, []string{"dns.test"})
	dot, _ := dotServer(t, cert)
	_, port, _ := net.SplitHostPort(dot)
	boot := rt.NewUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "dns.test." && r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "dns.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(127, 0, 0, 1)}}
		}
		_ = w.WriteMsg(m)
	})
	v := startVigil(t, []string{"tls://dns.test:" + port}, func(c *testConfig) {
		c.Upstream.CAFile = cert.PEMFile
		c.Upstream.Bootstrap = resolver.MustParseUpstreams(boot.Addr)
	})
	r := rt.Exchange(t, "udp", v.addr, rt.Question("via-name.example", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("answer %v", r.Answer)
	}
	if boot.Queries() == 0 {
		t.Error("the bootstrap server was not asked")
	}
}

func TestParseUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"9.9.9.9:53":                           "udp://9.9.9.9:53",
		"9.9.9.9":                              "udp://9.9.9.9:53",
		"tcp://[2620:fe::fe]:53":               "tcp://[2620:fe::fe]:53",
		"tls://1.1.1.1":                        "tls://1.1.1.1:853",
		"tls://dns.quad9.net:853":              "tls://dns.quad9.net:853",
		"tls://dns.quad9.net":                  "tls://dns.quad9.net:853",
		"https://cloudflare-dns.com/dns-query": "https://cloudflare-dns.com/dns-query",
	} {
		spec, err := resolver.ParseUpstream(in)
		if err != nil || spec.String() != want {
			t.Errorf("ParseUpstream(%q) = %s, %v; want %s", in, spec, err, want)
		}
	}
	for _, bad := range []string{"quic://1.1.1.1", "udp://dns.quad9.net:53", "tls://", "https://", "1.2.3.4:0", "tls://bad name:853"} {
		if _, err := resolver.ParseUpstream(bad); err == nil {
			t.Errorf("ParseUpstream(%q) accepted", bad)
		}
	}
}
