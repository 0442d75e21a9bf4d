package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/store/querylog"
)

// newAPI returns the HTTP API's handler, behind the access rules.
func newAPI(inst *instance) http.Handler {
	mux := http.NewServeMux()
	guard := newAuth(inst.cfg.HTTP)
	mux.HandleFunc("POST /api/v1/login", guard.login)
	mux.HandleFunc("POST /api/v1/logout", guard.logout)
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"status": "ok",
			"uptime": time.Since(inst.started).Round(time.Second).String(),
		})
	})
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{"server": inst.srv.Stats()}
		if inst.chain.Cache != nil {
			out["cache"] = inst.chain.Cache.Stats()
		}
		if inst.qlog != nil {
			out["querylog"] = inst.qlog.Stats()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out["runtime"] = map[string]any{
			"goroutines": runtime.NumGoroutine(), "heap_alloc": ms.HeapAlloc, "heap_sys": ms.HeapSys,
			"sys": ms.Sys, "gc_cycles": ms.NumGC,
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/blocked", func(w http.ResponseWriter, r *http.Request) {
		f, err := logFilterFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		page, err := inst.logs.Entries(f)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, querylog.ErrBadCursor) {
				status = http.StatusBadRequest
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, page)
	})
	mux.HandleFunc("GET /api/v1/clients", func(w http.ResponseWriter, r *http.Request) {
		since, until, err := windowFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		cs, err := inst.logs.Clients(since, until)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"since": since, "until": until, "clients": cs})
	})
	mux.HandleFunc("GET /api/v1/clients/{client}", func(w http.ResponseWriter, r *http.Request) {
		since, until, err := windowFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		cs, err := inst.logs.Client(r.PathValue("client"), since, until)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, cs)
	})
	mux.HandleFunc("GET /api/v1/top", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		since, until, err := windowFromQuery(q)
		if err == nil && q.Get("limit") != "" {
			_, err = strconv.Atoi(q.Get("limit"))
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		n, _ := strconv.Atoi(q.Get("limit"))
		if n <= 0 {
			n = 10
		}
		rep, err := inst.logs.Top(since, until, n)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("GET /api/v1/lists", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, listsReport(inst.lists))
	})
	mux.HandleFunc("POST /api/v1/lists/update", func(w http.ResponseWriter, r *http.Request) {
		// Progress streams as one JSON object per line, so a CLI can draw
		// a progress bar; the last line carries the final report.
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		flusher, _ := w.(http.Flusher)
		inst.lists.Refresh(r.Context(), func(done, total int, st blocklists.SourceStatus) {
			_ = enc.Encode(updateEvent{Done: done, Total: total, Source: &st})
			if flusher != nil {
				flusher.Flush()
			}
		})
		rep := listsReport(inst.lists)
		_ = enc.Encode(updateEvent{Final: &rep})
	})
	mux.HandleFunc("GET /api/v1/explain", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSpace(r.URL.Query().Get("name"))
		if name == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?name=example.com"})
			return
		}
		ex, err := explain(inst.lists.Current().Matcher, name)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ex)
	})
	mux.HandleFunc("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := inst.reload(r.Context()); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "status": "rejected; the running configuration stays"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "reloaded", "rules": inst.lists.Current().Matcher.Len()})
	})
	mux.HandleFunc("GET /api/v1/series", func(w http.ResponseWriter, r *http.Request) {
		since, until, err := windowFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if until.IsZero() {
			until = time.Now()
		}
		inst.series.flush() // include what was counted since the last flush
		pts, err := inst.store.Series(since, until)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"points": pts})
	})
	mux.HandleFunc("GET /api/v1/clients/{client}/days", func(w http.ResponseWriter, r *http.Request) {
		since, until, err := windowFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		days, err := inst.logs.ClientDays(r.PathValue("client"), since, until)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"client": r.PathValue("client"), "days": days})
	})
	mux.HandleFunc("GET /api/v1/allow", func(w http.ResponseWriter, r *http.Request) {
		names, err := inst.lists.Allowed()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"names": names})
	})
	mux.HandleFunc("POST /api/v1/allow", func(w http.ResponseWriter, r *http.Request) {
		if err := inst.lists.AllowNow(r.URL.Query().Get("name")); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?name= a valid domain name: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "allowed", "name": r.URL.Query().Get("name")})
	})
	mux.HandleFunc("DELETE /api/v1/allow", func(w http.ResponseWriter, r *http.Request) {
		if err := inst.lists.RemoveAllowed(r.URL.Query().Get("name")); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "removed"})
	})
	mux.HandleFunc("GET /api/v1/pause", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, inst.pause.Status())
	})
	mux.HandleFunc("POST /api/v1/pause", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("duration"))
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?duration= a positive duration up to 168h, such as 5m"})
			return
		}
		client := r.URL.Query().Get("client")
		until := inst.pause.Pause(client, d)
		writeJSON(w, http.StatusOK, map[string]any{"client": client, "until": until, "status": inst.pause.Status()})
	})
	mux.HandleFunc("POST /api/v1/resume", func(w http.ResponseWriter, r *http.Request) {
		inst.pause.Resume(r.URL.Query().Get("client"))
		writeJSON(w, http.StatusOK, inst.pause.Status())
	})
	if inst.cfg.Metrics.Enabled {
		mux.Handle("GET /metrics", metricsHandler(inst))
	}
	// The dashboard: static files embedded in the binary.
	mux.Handle("GET /", http.FileServerFS(webFS()))
	// Profiles for operators chasing CPU or memory, on the API's address
	// (loopback by default).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	return guard.wrap(mux)
}

// windowFromQuery reads since (a duration back from now, or an RFC 3339
// time; default 24h) and until (RFC 3339; default now).
func windowFromQuery(q url.Values) (since, until time.Time, err error) {
	now := time.Now()
	since = now.Add(-24 * time.Hour)
	if s := q.Get("since"); s != "" {
		if since, err = parseTimeArg(s, now); err != nil {
			return since, until, fmt.Errorf("since: %w", err)
		}
	}
	if s := q.Get("until"); s != "" {
		if until, err = parseTimeArg(s, now); err != nil {
			return since, until, fmt.Errorf("until: %w", err)
		}
	}
	return since, until, nil
}

// parseTimeArg reads "24h" (that long ago), "7d" (days ago) or an RFC 3339
// time.
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("want a duration such as 24h or 7d, or an RFC 3339 time, got %q", s)
	}
	return t, nil
}

func logFilterFromQuery(q url.Values) (querylog.Filter, error) {
	since, until, err := windowFromQuery(q)
	if err != nil {
		return querylog.Filter{}, err
	}
	if q.Get("since") == "" {
		since = time.Time{} // the whole log unless asked
	}
	f := querylog.Filter{
		Client: q.Get("client"), Vendor: q.Get("vendor"), List: q.Get("list"), Name: q.Get("name"),
		Since: since, Until: until, Cursor: q.Get("cursor"), Allowed: q.Get("allowed") == "true",
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return f, fmt.Errorf("limit: want 1 to 1000, got %q", l)
		}
		f.Limit = n
	}
	return f, nil
}

// listsStatus is the lists report of the API and the CLI.
type listsStatus struct {
	Rules      int                       `json:"rules"`
	Generation uint64                    `json:"generation"`
	Built      time.Time                 `json:"built"`
	Sources    []blocklists.SourceStatus `json:"sources"`
}

func listsReport(m *blocklists.Manager) listsStatus {
	set := m.Current()
	return listsStatus{Rules: set.Matcher.Len(), Generation: set.Generation, Built: set.Built, Sources: m.Status()}
}

// updateEvent is one line of the update stream.
type updateEvent struct {
	Done   int                      `json:"done,omitempty"`
	Total  int                      `json:"total,omitempty"`
	Source *blocklists.SourceStatus `json:"source,omitempty"`
	Final  *listsStatus             `json:"final,omitempty"`
}

// explanation says whether and why a name is blocked.
type explanation struct {
	Name    string `json:"name"`
	Blocked bool   `json:"blocked"`
	Matched bool   `json:"matched"` // some rule applies (a block or an exception)
	List    string `json:"list,omitempty"`
	Vendor  string `json:"vendor,omitempty"`
	Kind    string `json:"kind,omitempty"` // "deny" or "allow"
	Rule    string `json:"rule,omitempty"`
}

func explain(m *blocklists.Matcher, name string) (explanation, error) {
	n, err := blocklists.NormalizeName(name)
	if err != nil {
		return explanation{}, err
	}
	ex := explanation{Name: n}
	v, ok := m.Match(n)
	if !ok {
		return ex, nil
	}
	ex.Matched, ex.Blocked = true, v.Blocked
	ex.List, ex.Vendor, ex.Rule = v.List.Name, v.List.Vendor, v.Rule.String()
	ex.Kind = "deny"
	if !v.Blocked {
		ex.Kind = "allow"
	}
	return ex, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
