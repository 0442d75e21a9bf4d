package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigil-dns/vigil/store/querylog"
)

// ClientsReport is the answer of GET /api/v1/clients: every client with
// blocked lookups in the window.
type ClientsReport struct {
	Since   time.Time                `json:"since"`
	Until   time.Time                `json:"until"` // zero: up to now
	Clients []querylog.ClientSummary `json:"clients"`
}

// blocked pages through the log, newest first, filtered by the query.
func (a *api) blocked(w http.ResponseWriter, r *http.Request) error {
	f, err := a.logFilterFromQuery(r.URL.Query())
	var he *httpError
	if errors.As(err, &he) {
		return err // an unknown client: 404
	}
	if err != nil {
		return badRequest(err)
	}
	page, err := a.logOf(r).Entries(f)
	if errors.Is(err, querylog.ErrBadCursor) {
		return badRequest(err)
	}
	if err != nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	return ok(w, page)
}

// clients summarises every client with blocked lookups in the window.
func (a *api) clients(w http.ResponseWriter, r *http.Request) error {
	return a.answerWindow(w, r, func(since, until time.Time) (any, error) {
		cs, err := a.logOf(r).Clients(since, until)
		return ClientsReport{Since: since, Until: until, Clients: cs}, err
	})
}

// client summarises one client's blocked lookups in the window; the
// client may be named by any of its names' spellings, addresses or MAC.
func (a *api) client(w http.ResponseWriter, r *http.Request) error {
	client, err := a.logClient(r.PathValue("client"))
	if err != nil {
		return err
	}
	return a.answerWindow(w, r, func(since, until time.Time) (any, error) {
		return a.logOf(r).Client(client, since, until)
	})
}

// clientDays counts one client's blocked lookups per vendor and day.
func (a *api) clientDays(w http.ResponseWriter, r *http.Request) error {
	client, err := a.logClient(r.PathValue("client"))
	if err != nil {
		return err
	}
	return a.answerWindow(w, r, func(since, until time.Time) (any, error) {
		days, err := a.logOf(r).ClientDays(client, since, until)
		return map[string]any{"client": client, "days": days}, err
	})
}

// answerWindow answers with what read finds in the request's window
// (since, until): a bad window is the client's fault, a failed read the
// store's.
func (a *api) answerWindow(w http.ResponseWriter, r *http.Request, read func(since, until time.Time) (any, error)) error {
	since, until, err := a.windowFromQuery(r.URL.Query())
	if err != nil {
		return badRequest(err)
	}
	v, err := read(since, until)
	if err != nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	return ok(w, v)
}

// maxLimit bounds the rows of one answer.
const maxLimit = 1000

// top ranks the most blocked vendors, clients and names (?limit each,
// default 10, at most maxLimit).
func (a *api) top(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	since, until, err := a.windowFromQuery(q)
	if err != nil {
		return badRequest(err)
	}
	n := 10
	if l := q.Get("limit"); l != "" {
		if n, err = strconv.Atoi(l); err != nil {
			return badRequest(err)
		}
		if n <= 0 {
			n = 10
		}
		n = min(n, maxLimit)
	}
	top := a.logOf(r).Top
	if q.Get("allowed") == "1" || q.Get("allowed") == "true" {
		if !a.d.AllowedLogged {
			return badRequest(errors.New("allowed lookups are not logged: turn querylog.log_allowed on to see the top permitted names"))
		}
		top = a.logOf(r).TopAllowed
	}
	rep, err := top(since, until, n)
	if err != nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	return ok(w, rep)
}

// series returns the hourly totals of queries and blocked lookups.
func (a *api) series(w http.ResponseWriter, r *http.Request) error {
	since, until, err := a.windowFromQuery(r.URL.Query())
	if err != nil {
		return badRequest(err)
	}
	if until.IsZero() {
		until = a.now()
	}
	pts, err := a.d.Series.Series(since, until)
	if err != nil {
		return badRequest(err)
	}
	return ok(w, map[string]any{"points": pts})
}

// windowFromQuery reads since (a duration back from now, or an RFC 3339
// time; default 24h) and until (RFC 3339; default now, zero). The window
// is clamped to what the log keeps (a.window back from now) and to now:
// the log's work grows with the window (one row per day for a client's
// days), and nothing older or newer exists.
func (a *api) windowFromQuery(q url.Values) (since, until time.Time, err error) {
	now := a.now()
	since = now.Add(-24 * time.Hour)
	if s := q.Get("since"); s != "" {
		if since, err = ParseTimeArg(s, now); err != nil {
			return since, until, fmt.Errorf("since: %w", err)
		}
	}
	if s := q.Get("until"); s != "" {
		if until, err = ParseTimeArg(s, now); err != nil {
			return since, until, fmt.Errorf("until: %w", err)
		}
	}
	since, until = a.clamp(since, until, now)
	return since, until, nil
}

// clamp bounds a window to [now - a.window, now]; a zero until stays zero
// (up to now).
func (a *api) clamp(since, until, now time.Time) (time.Time, time.Time) {
	if floor := now.Add(-a.window); since.Before(floor) {
		since = floor
	}
	if since.After(now) {
		since = now
	}
	if until.After(now) {
		until = now
	}
	return since, until
}

// logFilterFromQuery reads GET /api/v1/blocked's parameters.
func (a *api) logFilterFromQuery(q url.Values) (querylog.Filter, error) {
	since, until, err := a.windowFromQuery(q)
	if err != nil {
		return querylog.Filter{}, err
	}
	if q.Get("since") == "" {
		since, _ = a.clamp(time.Time{}, until, a.now()) // the whole log unless asked
	}
	client, err := a.logClient(q.Get("client"))
	if err != nil {
		return querylog.Filter{}, err
	}
	f := querylog.Filter{
		Client: client, Vendor: q.Get("vendor"), List: q.Get("list"), Name: q.Get("name"), QType: q.Get("type"),
		Since: since, Until: until, Cursor: q.Get("cursor"), Allowed: q.Get("allowed") == "true",
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return f, fmt.Errorf("limit: want 1 to %d, got %q", maxLimit, l)
		}
		f.Limit = n
	}
	return f, nil
}
