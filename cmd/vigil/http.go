package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
)

// newAPI returns the HTTP API's handler.
func newAPI(inst *instance) http.Handler {
	mux := http.NewServeMux()
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
		writeJSON(w, http.StatusOK, out)
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
	return mux
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
