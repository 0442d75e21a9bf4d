package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// auth guards the API and the dashboard. With a token configured, every
// request that changes something needs it (as "Authorization: Bearer
// TOKEN") or a session cookie obtained by logging in with it; when the
// API listens beyond loopback, reading needs it too (health excepted, for
// health checks). Without a token (allowed on loopback only) everything is
// open. Credentials are never logged.
type auth struct {
	token      string
	ttl        time.Duration
	readsOpen  bool // loopback: read-only endpoints need no credentials
	now        func() time.Time
	mu         sync.Mutex
	sessions   map[string]time.Time // session id -> expiry
	cookieName string
}

func newAuth(cfg HTTPConfig) *auth {
	return &auth{
		token: cfg.Token, ttl: cfg.SessionTTL, readsOpen: cfg.Listen.Addr().IsLoopback(),
		now: time.Now, sessions: map[string]time.Time{}, cookieName: "vigil_session",
	}
}

func (a *auth) validToken(t string) bool {
	return a.token != "" && subtle.ConstantTimeCompare([]byte(t), []byte(a.token)) == 1
}

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
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		open := a.token == "" ||
			r.URL.Path == "/api/v1/health" || r.URL.Path == "/api/v1/login" ||
			(read && a.readsOpen) ||
			(read && !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/metrics") && !strings.HasPrefix(r.URL.Path, "/debug/"))
		if !open && !a.authenticated(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "log in first: POST /api/v1/login with the token from http.token, or send Authorization: Bearer TOKEN"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// login exchanges the token for a session cookie.
func (a *auth) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token string `json:"token"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body)
	} else {
		body.Token = r.FormValue("token")
	}
	if !a.validToken(body.Token) {
		time.Sleep(200 * time.Millisecond) // slows guessing down a little
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong token"})
		return
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
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
	writeJSON(w, http.StatusOK, map[string]any{"status": "logged in", "expires": exp})
}

func (a *auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(a.cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: a.cookieName, Value: "", Path: "/", MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}
