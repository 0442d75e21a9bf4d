package resolver

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	rt "github.com/vigil-dns/vigil/resolver/resolvertest"
)

func writeCert(t *testing.T, dir string, c rt.Cert) (string, string) {
	t.Helper()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	der, err := x509MarshalKey(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Rename(keyFile+".tmp", keyFile)
	_ = os.Rename(certFile+".tmp", certFile)
	return certFile, keyFile
}

// TestCertReloaderPicksUpRenewal replaces the certificate files and checks
// new handshakes get the new certificate without a restart.
func TestCertReloaderPicksUpRenewal(t *testing.T) {
	dir := t.TempDir()
	first := rt.NewCert(t, []string{"first.test"})
	certFile, keyFile := writeCert(t, dir, first)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.GetCertificate(nil)
	if name, err := parseLeaf(got); err != nil || name != "first.test" {
		t.Fatalf("initial certificate for %q (%v)", name, err)
	}
	second := rt.NewCert(t, []string{"second.test"})
	time.Sleep(10 * time.Millisecond) // a different modification time
	writeCert(t, dir, second)
	r.mu.Lock()
	r.lastCheck = time.Time{} // skip the check interval
	r.mu.Unlock()
	got, _ = r.GetCertificate(nil)
	if name, err := parseLeaf(got); err != nil || name != "second.test" {
		t.Errorf("after renewal the certificate is for %q (%v), want second.test", name, err)
	}
	if _, err := NewCertReloader(filepath.Join(dir, "missing.pem"), keyFile); err == nil {
		t.Error("a missing certificate file was accepted")
	}
}

func TestDoHClientBehindTrustedProxy(t *testing.T) {
	proxies := NewAccessList([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	cases := []struct{ remote, xff, want string }{
		{"127.0.0.1:5000", "192.168.1.50", "192.168.1.50"},
		{"127.0.0.1:5000", "203.0.113.9, 192.168.1.51", "192.168.1.51"}, // the hop the proxy added
		{"127.0.0.2:5000", "192.168.1.50", "127.0.0.2"},                 // not a trusted proxy
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"127.0.0.1:5000", "garbage", "127.0.0.1"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "/dns-query", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := dohClient(r, proxies); got.String() != tc.want {
			t.Errorf("remote %s, XFF %q: client %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func x509MarshalKey(c rt.Cert) ([]byte, error) {
	return x509.MarshalECPrivateKey(c.TLS.PrivateKey.(*ecdsa.PrivateKey))
}

func parseLeaf(c *tls.Certificate) (string, error) {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return "", err
	}
	return leaf.DNSNames[0], nil
}
