package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
	"github.com/vigil-dns/vigil/store/querylog"
)

// testCert writes a self-signed certificate for 127.0.0.1 and localhost
// and returns the file names and a pool trusting it.
func testCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestEncryptedListeners queries Vigil over DoT and DoH (GET and POST),
// checks blocked names are blocked and logged per client with their
// protocol, and that a client not trusting the certificate is refused.
func TestEncryptedListeners(t *testing.T) {
	up := rt.NewUpstream(t, rt.A("192.0.2.1", 60))
	certFile, keyFile, pool := testCert(t)
	// The [server] table is written by writeTestConfig; the encrypted
	// listeners are added to it by rewriting the file.
	cfgPath := writeTestConfig(t, up.Addr, `
[querylog]
flush_interval = "20ms"
log_lines = false
[[lists]]
name = "xiaomi"
vendor = "Xiaomi"
entries = ["||xiaomi.example^"]
`)
	body, _ := os.ReadFile(cfgPath)
	body = bytes.Replace(body, []byte("max_inflight = 64\n"), []byte(fmt.Sprintf(
		"max_inflight = 64\ndot_listen = [\"127.0.0.1:0\"]\ndoh_listen = [\"127.0.0.1:0\"]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile)), 1)
	if err := os.WriteFile(cfgPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	inst := startServe(t, cfgPath)
	dot := inst.srv.DoTAddrs()[0].String()
	doh := "https://" + inst.srv.DoHAddrs()[0].String() + "/dns-query"

	// DoT: one connection, several queries.
	conn, err := dns.DialWithTLS("tcp", dot, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct{ name, want string }{{"a.xiaomi.example", "0.0.0.0"}, {"ok.example", "192.0.2.1"}, {"b.xiaomi.example", "0.0.0.0"}} {
		if err := conn.WriteMsg(rt.Question(tc.name, dns.TypeA)); err != nil {
			t.Fatal(err)
		}
		r, err := conn.ReadMsg()
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.want {
			t.Fatalf("DoT %s: %v %v, want %s", tc.name, r, err, tc.want)
		}
	}

	// DoH: GET and POST over HTTP/2.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	doDoH := func(method, name string) *dns.Msg {
		q, _ := rt.Question(name, dns.TypeA).Pack()
		var resp *http.Response
		var err error
		if method == "GET" {
			resp, err = hc.Get(doh + "?dns=" + base64.RawURLEncoding.EncodeToString(q))
		} else {
			resp, err = hc.Post(doh, "application/dns-message", bytes.NewReader(q))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/dns-message" || resp.ProtoMajor != 2 {
			t.Fatalf("DoH %s: %s %s proto %s", method, resp.Status, resp.Header.Get("Content-Type"), resp.Proto)
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, method := range []string{"GET", "POST"} {
		if r := doDoH(method, "c.xiaomi.example"); r.Answer[0].(*dns.A).A.String() != "0.0.0.0" {
			t.Errorf("DoH %s: blocked name answered %v", method, r.Answer)
		}
		if r := doDoH(method, "fine.example"); r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Errorf("DoH %s: %v", method, r.Answer)
		}
	}
	if resp, err := hc.Post(doh, "text/plain", bytes.NewReader([]byte("x"))); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("DoH with a wrong content type: %v %v", resp, err)
	}

	// A client that does not trust the certificate gets no answer.
	if _, err := dns.DialWithTLS("tcp", dot, &tls.Config{}); err == nil {
		t.Error("DoT handshake succeeded without trusting the certificate")
	}

	waitFor(t, "the log", func() bool { return inst.qlog.Stats().Written >= 4 })
	page, err := apiClient(t, inst).Blocked(context.Background(), url.Values{"client": {"127.0.0.1"}})
	noErr(t, err)
	protos := map[querylog.Proto]int{}
	for _, e := range page.Entries {
		protos[e.Proto]++
	}
	if protos[querylog.ProtoDoT] != 2 || protos[querylog.ProtoDoH] != 2 {
		t.Errorf("logged protocols %v, want 2 dot and 2 doh", protos)
	}
}
