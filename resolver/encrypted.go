package resolver

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// CertReloader serves a certificate from files and reloads it when they
// change (a renewed Let's Encrypt certificate, say), without a restart.
// Files are checked at most every few seconds, during handshakes.
type CertReloader struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

// NewCertReloader loads the certificate and key, failing with the file
// names when they cannot be used.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) load() error {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading tls certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certMod, r.keyMod = &cert, ci.ModTime(), ki.ModTime()
	return nil
}

// certCheckInterval bounds how often the files are looked at.
const certCheckInterval = 5 * time.Second

// GetCertificate implements tls.Config.GetCertificate. A reload that fails
// (a half-written file) keeps the previous certificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastCheck) >= certCheckInterval {
		r.lastCheck = now
		ci, cerr := os.Stat(r.certFile)
		ki, kerr := os.Stat(r.keyFile)
		if cerr == nil && kerr == nil && (!ci.ModTime().Equal(r.certMod) || !ki.ModTime().Equal(r.keyMod)) {
			_ = r.load()
		}
	}
	return r.cert, nil
}

// TLSConfig returns a server TLS configuration using the reloader.
func (r *CertReloader) TLSConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: nextProtos}
}

// dohMaxBody bounds a DoH request body: one DNS message.
const dohMaxBody = maxDNSMessage

// DoHHandler answers DNS over HTTPS (RFC 8484): GET with ?dns=<base64url>
// and POST with an application/dns-message body, at path. Queries go
// through the same packet path as UDP and TCP: access list, rate limit,
// client identification, chain and log. Requests from trustedProxies are
// attributed to the address in their X-Forwarded-For (the last hop the
// proxy added).
func (s *Server) DoHHandler(path string, trustedProxies []netip.Prefix) http.Handler {
	proxies := NewAccessList(trustedProxies)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		var req []byte
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query().Get("dns")
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(q, "="))
			if err != nil || len(b) == 0 {
				http.Error(w, "want ?dns= a base64url DNS message", http.StatusBadRequest)
				return
			}
			req = b
		case http.MethodPost:
			if ct := r.Header.Get("Content-Type"); ct != "application/dns-message" {
				http.Error(w, "want Content-Type: application/dns-message", http.StatusUnsupportedMediaType)
				return
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, dohMaxBody+1))
			if err != nil || len(b) == 0 || len(b) > dohMaxBody {
				http.Error(w, "want one DNS message as the body", http.StatusBadRequest)
				return
			}
			req = b
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "want GET or POST", http.StatusMethodNotAllowed)
			return
		}
		client := dohClient(r, proxies)
		if s.overLimit(client, ProtoDoH) {
			http.Error(w, "over the rate limit", http.StatusTooManyRequests)
			return
		}
		reply := s.respond(req, client, ProtoDoH, nil, newReaderBufs(0, nil))
		if reply == nil {
			http.Error(w, "not a DNS query", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/dns-message")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(reply)
	})
}

// dohClient is the request's client address: the peer, or for a trusted
// reverse proxy the last address it put in X-Forwarded-For.
func dohClient(r *http.Request, proxies *AccessList) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap()
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" && proxies.Allowed(peer) {
		parts := strings.Split(xff, ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
			return a.Unmap()
		}
	}
	return peer
}

// startEncrypted opens the DoT and DoH listeners. Caller holds s.mu.
func (s *Server) startEncrypted() error {
	if len(s.cfg.DoTListen) == 0 && len(s.cfg.DoHListen) == 0 {
		return nil
	}
	certs, err := NewCertReloader(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return err
	}
	for _, ap := range s.cfg.DoTListen {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			return fmt.Errorf("listening for DNS over TLS on %s: %w", ap, err)
		}
		tl := tls.NewListener(ln, certs.TLSConfig("dot"))
		s.listeners = append(s.listeners, tl)
		s.wg.Add(1)
		go s.serveTCP(tl, ProtoDoT)
	}
	for _, ap := range s.cfg.DoHListen {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			return fmt.Errorf("listening for DNS over HTTPS on %s: %w", ap, err)
		}
		hs := &http.Server{
			Handler:           s.DoHHandler(s.cfg.DoHPath, s.cfg.DoHTrustedProxies),
			TLSConfig:         certs.TLSConfig("h2", "http/1.1"),
			ReadHeaderTimeout: s.cfg.TCPReadTimeout,
			IdleTimeout:       s.cfg.TCPIdleTimeout,
			ErrorLog:          nil,
		}
		s.dohServers = append(s.dohServers, hs)
		s.dohAddrs = append(s.dohAddrs, ln.Addr())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = hs.ServeTLS(ln, "", "")
		}()
	}
	return nil
}

// DoTAddrs and DoHAddrs return the bound encrypted listener addresses.
func (s *Server) DoTAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners[s.plainTCP:] {
		out = append(out, l.Addr())
	}
	return out
}

// DoHAddrs returns the bound DoH listener addresses.
func (s *Server) DoHAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.dohAddrs...)
}
