package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
)

// AlertsReport is GET /api/v1/alerts.
type AlertsReport struct {
	// Enabled says whether alerts are evaluated ([alerts]).
	Enabled bool           `json:"enabled"`
	Alerts  []alerts.Alert `json:"alerts"`
}

// alerts lists the alerts raised since ?since (default 7 days), newest
// first, at most ?limit (default 100).
func (a *api) alerts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("since") == "" {
		q.Set("since", "7d")
	}
	since, _, err := a.windowFromQuery(q)
	if err != nil {
		return badRequest(err)
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > maxLimit {
			return badRequest(fmt.Errorf("limit: want 1 to %d, got %q", maxLimit, l))
		}
	}
	rep := AlertsReport{Alerts: []alerts.Alert{}}
	if a.d.Alerts == nil {
		return ok(w, rep)
	}
	rep.Enabled = true
	h, err := a.d.Alerts.History(since, limit)
	if err != nil {
		return err
	}
	if h != nil {
		rep.Alerts = h
	}
	return ok(w, rep)
}

// testAlert sends a sample alert to ?destination, or to every one.
func (a *api) testAlert(w http.ResponseWriter, r *http.Request) error {
	if a.d.Alerts == nil {
		return badRequest(errors.New("alerts are off: configure an [[alerts.destinations]] first"))
	}
	if err := a.d.Alerts.Test(r.Context(), r.URL.Query().Get("destination")); err != nil {
		return &httpError{status: http.StatusBadGateway, err: err}
	}
	return ok(w, map[string]string{"status": "sent"})
}
