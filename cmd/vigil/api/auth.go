package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// auth guards the API and the dashboard. With a token configured, every
// request that changes something needs it (as "Authorization: Bearer
// TOKEN") or a session cookie obtained by logging in with it; when the
// API listens beyond loopback, reading needs it too (health excepted, for
// health checks). Without a token (allowed on loopback only) reads and
// changes need no credentials. Credentials are never logged.
//
// Whatever the token, a browser must not be able to act for a page of
// another site, so on top of credentials:
//   - on a loopback listener, a request must name this machine in its
//     Host header (a loopback name, an IP address, or http.allowed_hosts),
//     which a DNS-rebinding page cannot do;
//   - a fetch of the API that the browser marks cross-site or same-site
//     (Sec-Fetch-Site) is refused before any work is done;
//   - a change (any method but GET and HEAD) must come from Vigil's own
//     page (Sec-Fetch-Site same-origin, or an Origin equal to the API's
//     own) or, without those browser headers, carry ClientHeader or
//     credentials: a header a page of another site cannot add without a
//     CORS preflight, which the API never grants;
//   - profiles (/debug/pprof) need the token and are off without one.
type auth struct {
	token      string
	ttl        time.Duration
	readsOpen  bool     // loopback: read-only endpoints need no credentials
	checkHost  bool     // loopback: refuse hosts that are not this machine's
	hosts      []string // http.allowed_hosts, lowercase, no trailing dot
	origin     *http.CrossOriginProtection
	now        func() time.Time
	mu         sync.Mutex
	sessions   map[string]time.Time // session id -> expiry
	cookieName string
}

// ClientHeader marks a request from a program rather than a browser (the
// CLI sends it; scripts should). A page of another site cannot send it
// without a CORS preflight, which the API refuses, so a change that
// carries it was not forged by a page.
const ClientHeader = "X-Vigil-Client"

// maxBodyBytes bounds every request body but an audit's: a login is a
// token of a few dozen bytes.
const maxBodyBytes = 4 << 10

// maxAuditBytes bounds the body of POST /api/v1/lists/audit: the popular
// names to judge the lists against (the CLI sends at most 100,000, some
// 2.5 MB). Only a request that passed the checks for changes (the CLI's
// header or credentials) may send it.
const maxAuditBytes = 4 << 20

// auditPath is the one endpoint that reads a large body.
const auditPath = "/api/v1/lists/audit"

// newAuth returns the access rules for cfg. Reads are open only when the
// API listens on loopback, where only this machine can reach it.
func newAuth(cfg Config) *auth {
	ap, _ := cfg.Addr()
	hosts := make([]string, len(cfg.AllowedHosts))
	for i, h := range cfg.AllowedHosts {
		hosts[i] = strings.TrimSuffix(strings.ToLower(h), ".")
	}
	loopback := ap.Addr().IsLoopback()
	return &auth{
		token: cfg.Token, ttl: cfg.SessionTTL, readsOpen: loopback, checkHost: loopback, hosts: hosts,
		origin: http.NewCrossOriginProtection(),
		now:    time.Now, sessions: map[string]time.Time{}, cookieName: "vigil_session",
	}
}

// validToken compares in constant time, so the answer's timing does not
// tell how much of a guess was right.
func (a *auth) validToken(t string) bool {
	return a.token != "" && subtle.ConstantTimeCompare([]byte(t), []byte(a.token)) == 1
}

// authenticated says whether r carries the token or a live session.
func (a *auth) authenticated(r *http.Request) bool {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.validToken(t) {
		return true
	}
	c, err := r.Cookie(a.cookieName)
	if err != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[c.Value]
	if ok && a.now().After(exp) {
		delete(a.sessions, c.Value)
		return false
	}
	return ok
}

// wrap returns h behind the access rules.
func (a *auth) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.hostCheck(r); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		if isAPI(r.URL.Path) && crossSite(r) {
			writeError(w, http.StatusForbidden, errCrossOrigin)
			return
		}
		limit := int64(maxBodyBytes)
		if r.URL.Path == auditPath {
			limit = maxAuditBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		authed := a.authenticated(r)
		if !a.open(r) && !authed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			writeError(w, http.StatusUnauthorized, errLogIn)
			return
		}
		if !safeMethod(r.Method) {
			if err := a.originCheck(r, authed); err != nil {
				writeError(w, http.StatusForbidden, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// open says whether r needs no credentials.
func (a *auth) open(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case a.token == "":
		return true // loopback only (Config.Validate); profiles are not served
	case strings.HasPrefix(p, "/debug/"):
		return false // profiles: memory contents and CPU time, the token's holder only
	case p == "/api/v1/health" || p == "/api/v1/login":
		return true
	case !safeMethod(r.Method):
		return false
	case a.readsOpen:
		return true
	default:
		return !isAPI(p) // the dashboard's files
	}
}

// isAPI says whether path is an endpoint rather than a dashboard file.
func isAPI(path string) bool {
	return strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/metrics") || strings.HasPrefix(path, "/debug/")
}

// safeMethod says whether a request with method changes nothing.
func safeMethod(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// crossSite says whether the browser marks r as sent by a page of another
// origin than the API's (a no-cors fetch can still make the API work, even
// if the page cannot read the answer). Programs send no Sec-Fetch-Site.
func crossSite(r *http.Request) bool {
	s := r.Header.Get("Sec-Fetch-Site")
	return s == "cross-site" || s == "same-site"
}

// errCrossOrigin answers a request a page of another site made.
var errCrossOrigin = errors.New("cross-origin request refused: only Vigil's own dashboard, the CLI and programs sending " + ClientHeader + " may use the API")

// errNoClientHeader answers a change that carries neither a browser's
// origin headers nor ClientHeader nor credentials.
var errNoClientHeader = errors.New("changes need the header " + ClientHeader + ": any value (curl -H '" + ClientHeader + ": curl' ...), or the token")

// originCheck refuses a change that a page of another site could have
// sent. The browser's own word (Sec-Fetch-Site, Origin) decides when it
// gave one; without it the request is from a program, which must say so
// with ClientHeader or prove itself with credentials, because an old
// browser's cross-site form sends neither header.
func (a *auth) originCheck(r *http.Request, authed bool) error {
	if err := a.origin.Check(r); err != nil {
		return errCrossOrigin
	}
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return nil // same origin, as the browser says
	}
	if r.Header.Get(ClientHeader) == "" && !authed {
		return errNoClientHeader
	}
	return nil
}

// hostCheck refuses, on a loopback listener, a request whose Host is not
// this machine: a loopback name, an IP address or one of allowed_hosts.
// A DNS-rebinding page reaches 127.0.0.1 under a name of its own, and
// the browser then treats the API as that page's origin; the Host header
// is how the API tells. An IP address cannot be rebound, and localhost
// never leaves the machine.
func (a *auth) hostCheck(r *http.Request) error {
	if !a.checkHost || r.Host == "" {
		return nil // beyond loopback the token guards everything; no Host: not a browser
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil || host == "localhost" || slices.Contains(a.hosts, host) {
		return nil
	}
	return fmt.Errorf("host %q is not this machine's: open the dashboard as http://127.0.0.1 or http://localhost, or add the name to http.allowed_hosts", host)
}

// errLogIn answers a request that needs credentials and has none.
var errLogIn = errors.New("log in first: POST /api/v1/login with the token from http.token, or send Authorization: Bearer TOKEN")

// errWrongToken answers a login with a wrong token.
var errWrongToken = errors.New("wrong token")

// errLoginBody answers a login whose body is not a small form or JSON.
var errLoginBody = errors.New(`want the token as a form (token=...) or JSON ({"token": "..."})`)

// login exchanges the token for a session cookie. It reads a small form
// or JSON body and nothing else: a multipart body would be parsed into
// memory and temporary files before the token could be checked.
func (a *auth) login(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Token string `json:"token"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch ct {
	case "application/json":
		err = json.NewDecoder(r.Body).Decode(&body)
	case "application/x-www-form-urlencoded":
		if err = r.ParseForm(); err == nil {
			body.Token = r.PostForm.Get("token")
		}
	default:
		return &httpError{status: http.StatusUnsupportedMediaType, err: errLoginBody}
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return &httpError{status: http.StatusRequestEntityTooLarge, err: fmt.Errorf("login body over %d bytes: %w", mbe.Limit, errLoginBody)}
	}
	if err != nil {
		return badRequest(fmt.Errorf("reading the login: %w", err))
	}
	if !a.validToken(body.Token) {
		time.Sleep(200 * time.Millisecond) // slows guessing down a little
		return &httpError{status: http.StatusUnauthorized, err: errWrongToken}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand: it crashes the program instead)
	id := hex.EncodeToString(b)
	exp := a.now().Add(a.ttl)
	a.mu.Lock()
	for k, e := range a.sessions { // forget expired sessions
		if a.now().After(e) {
			delete(a.sessions, k)
		}
	}
	a.sessions[id] = exp
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: a.cookieName, Value: id, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return ok(w, map[string]any{"status": "logged in", "expires": exp})
}

// logout forgets the session, and the cookie with it.
func (a *auth) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(a.cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: a.cookieName, Value: "", Path: "/", MaxAge: -1})
	return ok(w, map[string]string{"status": "logged out"})
}
