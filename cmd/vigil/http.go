package main

import (
	"encoding/json"
	"net/http"
	"time"
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
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
