package resolver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bootstrap resolves the host names of encrypted upstreams through plain
// DNS servers, caching answers for their TTL (at least a minute), so
// Vigil never depends on itself to find its upstreams.
type Bootstrap struct {
	servers []Upstream

	mu    sync.Mutex
	cache map[string]bootEntry
}

type bootEntry struct {
	addrs   []netip.Addr
	expires time.Time
}

// NewBootstrap returns a resolver over plain DNS servers.
func NewBootstrap(specs []UpstreamSpec) *Bootstrap {
	b := &Bootstrap{cache: map[string]bootEntry{}}
	for _, s := range specs {
		b.servers = append(b.servers, NewPlainUpstream(s))
	}
	return b
}

// Lookup returns host's addresses (IPv4 first).
func (b *Bootstrap) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	name := dns.Fqdn(host)
	b.mu.Lock()
	e, ok := b.cache[name]
	b.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.addrs, nil
	}
	var errs []error
	for _, srv := range b.servers {
		var addrs []netip.Addr
		ttl := uint32(3600)
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(name, t)
			m.Id = dns.Id()
			r, err := srv.Exchange(ctx, m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, rr := range r.Answer {
				var ip net.IP
				switch a := rr.(type) {
				case *dns.A:
					ip = a.A
				case *dns.AAAA:
					ip = a.AAAA
				default:
					continue
				}
				if addr, ok := netip.AddrFromSlice(ip); ok {
					addrs = append(addrs, addr.Unmap())
					ttl = min(ttl, rr.Header().Ttl)
				}
			}
		}
		if len(addrs) > 0 {
			b.mu.Lock()
			b.cache[name] = bootEntry{addrs: addrs, expires: time.Now().Add(time.Duration(max(ttl, 60)) * time.Second)}
			b.mu.Unlock()
			return addrs, nil
		}
	}
	return nil, fmt.Errorf("bootstrapping %s: %w", host, errors.Join(append(errs, errors.New("no address found"))...))
}

// dialTarget returns the address to connect to for spec.
func dialTarget(ctx context.Context, spec UpstreamSpec, boot *Bootstrap) (string, error) {
	if spec.Addr.IsValid() {
		return spec.Addr.String(), nil
	}
	if boot == nil {
		return "", fmt.Errorf("%s: no bootstrap servers to resolve %s", spec, spec.Host)
	}
	addrs, err := boot.Lookup(ctx, spec.Host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(addrs[0].String(), strconv.Itoa(int(spec.Port))), nil
}

// LoadCAFile returns the system roots plus the certificates in file ("" for
// the system roots alone).
func LoadCAFile(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("upstream.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream.ca_file: no PEM certificate in %s", file)
	}
	return pool, nil
}

func serverName(spec UpstreamSpec) string {
	if spec.Host != "" {
		return spec.Host
	}
	return spec.Addr.Addr().String()
}

// TLSUpstream speaks DNS over TLS (RFC 7858), verifying the server's
// certificate against its name and reusing connections: a few idle ones
// are kept and closed after IdleTimeout.
type TLSUpstream struct {
	spec UpstreamSpec
	conf *tls.Config
	boot *Bootstrap

	mu   sync.Mutex
	idle []*idleConn
}

type idleConn struct {
	c     *tls.Conn
	since time.Time
}

const (
	tlsMaxIdle     = 4
	tlsIdleTimeout = 30 * time.Second
)

// NewTLSUpstream returns a DoT upstream trusting roots.
func NewTLSUpstream(spec UpstreamSpec, roots *x509.CertPool, boot *Bootstrap) *TLSUpstream {
	return &TLSUpstream{spec: spec, boot: boot,
		conf: &tls.Config{ServerName: serverName(spec), RootCAs: roots, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(8)}}
}

var _ Upstream = (*TLSUpstream)(nil)

// String implements Upstream.
func (u *TLSUpstream) String() string { return u.spec.String() }

func (u *TLSUpstream) get() *tls.Conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.idle) > 0 {
		ic := u.idle[len(u.idle)-1]
		u.idle = u.idle[:len(u.idle)-1]
		if time.Since(ic.since) < tlsIdleTimeout {
			return ic.c
		}
		ic.c.Close()
	}
	return nil
}

func (u *TLSUpstream) put(c *tls.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.idle) >= tlsMaxIdle {
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	u.idle = append(u.idle, &idleConn{c: c, since: time.Now()})
}

func (u *TLSUpstream) dial(ctx context.Context) (*tls.Conn, error) {
	target, err := dialTarget(ctx, u.spec, u.boot)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: u.conf}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u.spec, err)
	}
	return c.(*tls.Conn), nil
}

// Exchange implements Upstream.
func (u *TLSUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	// A reused connection the server has meanwhile closed fails at once;
	// then one fresh connection is tried.
	for attempt := 0; ; attempt++ {
		c, reused := u.get(), true
		if c == nil {
			if c, err = u.dial(ctx); err != nil {
				return nil, err
			}
			reused = false
		}
		r, err := u.roundTrip(ctx, c, m, wire)
		if err == nil {
			u.put(c)
			return r, nil
		}
		c.Close()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (u *TLSUpstream) roundTrip(ctx context.Context, c *tls.Conn, m *dns.Msg, wire []byte) (*dns.Msg, error) {
	stop := deadlineFromContext(ctx, c)
	defer stop()
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := c.Write(out); err != nil {
		return nil, fmt.Errorf("sending to %s: %w", u.spec, err)
	}
	var lb [2]byte
	if _, err := io.ReadFull(c, lb[:]); err != nil {
		return nil, tcpReadError(u.spec, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, tcpReadError(u.spec, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf); err != nil {
		return nil, fmt.Errorf("unpacking reply from %s: %w", u.spec, err)
	}
	if !replyMatches(m, r) {
		return nil, fmt.Errorf("%s: %w", u.spec, ErrMismatch)
	}
	return r, nil
}

// DoHUpstream speaks DNS over HTTPS (RFC 8484, POST), over HTTP/2 with
// connection reuse, verifying the server's certificate.
type DoHUpstream struct {
	spec   UpstreamSpec
	client *http.Client
}

// NewDoHUpstream returns a DoH upstream trusting roots.
func NewDoHUpstream(spec UpstreamSpec, roots *x509.CertPool, boot *Bootstrap) *DoHUpstream {
	u := &DoHUpstream{spec: spec}
	dialer := &net.Dialer{}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{ServerName: serverName(spec), RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     tlsIdleTimeout,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			target, err := dialTarget(ctx, spec, boot)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, target)
		},
	}
	u.client = &http.Client{Transport: tr}
	return u
}

var _ Upstream = (*DoHUpstream)(nil)

// String implements Upstream.
func (u *DoHUpstream) String() string { return u.spec.String() }

// Exchange implements Upstream.
func (u *DoHUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.spec.URL, bytes.NewReader(wire))
	if err != nil {
		return nil, fmt.Errorf("building request to %s: %w", u.spec, err)
	}
	req.Header.Set("Content-Type", "application/dns-message")
	req.Header.Set("Accept", "application/dns-message")
	resp, err := u.client.Do(req)
	if err != nil {
		if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: %w", u.spec, ErrTimeout)
		}
		return nil, fmt.Errorf("asking %s: %w", u.spec, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered HTTP %s", u.spec, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDNSMessage+1))
	if err != nil {
		return nil, fmt.Errorf("reading from %s: %w", u.spec, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(body); err != nil {
		return nil, fmt.Errorf("unpacking reply from %s: %w", u.spec, err)
	}
	if !replyMatches(m, r) {
		return nil, fmt.Errorf("%s: %w", u.spec, ErrMismatch)
	}
	return r, nil
}
