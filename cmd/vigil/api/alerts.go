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
	Mutes   []alerts.Mute  `json:"mutes"`
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
	rep := AlertsReport{Alerts: []alerts.Alert{}, Mutes: []alerts.Mute{}}
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
	if m, err := a.d.Alerts.Mutes(); err == nil && m != nil {
		rep.Mutes = m
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

// ackAlert marks an alert as seen.
func (a *api) ackAlert(w http.ResponseWriter, r *http.Request) error {
	if a.d.Alerts == nil {
		return badRequest(errors.New("alerts are off"))
	}
	if err := a.d.Alerts.Ack(r.PathValue("id")); err != nil {
		return err
	}
	return ok(w, map[string]string{"status": "acknowledged"})
}

// muteAlerts silences (or, with on false, lets speak again) ?rule for
// ?client, or for every client when none is named.
func (a *api) muteAlerts(on bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.d.Alerts == nil {
			return badRequest(errors.New("alerts are off"))
		}
		q := r.URL.Query()
		client := ""
		if c := q.Get("client"); c != "" {
			id, err := a.resolveClient(c)
			if err != nil {
				return err
			}
			client = id
		}
		var err error
		if on {
			err = a.d.Alerts.Mute(q.Get("rule"), client)
		} else {
			err = a.d.Alerts.Unmute(q.Get("rule"), client)
		}
		if err != nil {
			return badRequest(err)
		}
		return ok(w, map[string]string{"status": map[bool]string{true: "muted", false: "unmuted"}[on]})
	}
}
