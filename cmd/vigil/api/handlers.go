package api

import (
	"errors"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/resolver"
)

// health answers load balancers and "vigil health"; it needs no
// credentials (see auth).
func (a *api) health(w http.ResponseWriter, r *http.Request) error {
	out := map[string]any{
		"status": "ok", // DNS answers; a degraded store shows under "store", missing rules under "lists_warning"
		"uptime": time.Since(a.d.Started).Round(time.Second).String(),
	}
	if warn := blocklists.Warning(a.d.Lists.Current(), a.d.Lists.Status()); warn != "" {
		out["lists_warning"] = warn // DNS answers, but may block nothing
	}
	if a.d.Store != nil {
		out["store"] = a.d.Store.Status()
	}
	if a.d.Fleet != nil {
		out["fleet"] = a.d.Fleet.Stats() // shipping behind or PostgreSQL away: DNS answers all the same
	}
	if a.d.Dnstap != nil {
		out["dnstap"] = a.d.Dnstap.Stats()
	}
	return ok(w, out)
}

// stats reports the server's, the cache's and the log's counters and the
// Go runtime's memory, for the dashboard.
func (a *api) stats(w http.ResponseWriter, r *http.Request) error {
	out := map[string]any{"server": a.d.Server.Stats()}
	qm := a.d.Server.Metrics()
	out["queries_by_type"] = qm.ByType
	out["queries_by_result"] = qm.ByResult
	out["upstreams"] = upstreamFigures(a.d.Upstreams.Metrics())
	out["log_allowed"] = a.d.AllowedLogged
	if a.d.Cache != nil {
		out["cache"] = a.d.Cache.Stats()
	}
	if a.d.QueryLog != nil {
		out["querylog"] = a.d.QueryLog.Stats()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out["runtime"] = map[string]any{
		"goroutines": runtime.NumGoroutine(), "heap_alloc": ms.HeapAlloc, "heap_sys": ms.HeapSys,
		"sys": ms.Sys, "gc_cycles": ms.NumGC,
	}
	return ok(w, out)
}

// reload re-reads the configuration file. A rejected file is a 400 whose
// status says the running configuration stays.
func (a *api) reload(w http.ResponseWriter, r *http.Request) error {
	if err := a.d.Reload(r.Context()); err != nil {
		return &httpError{status: http.StatusBadRequest, err: err, note: "rejected; the running configuration stays"}
	}
	out := map[string]any{"status": "reloaded", "rules": a.d.Lists.Current().Matcher.Len()}
	if a.d.PendingRestart != nil {
		if p := a.d.PendingRestart(); len(p) > 0 {
			// Changed in the file, not applied: the listeners, the store and
			// the like are set up when the server starts.
			out["status"] = "reloaded; changed settings that take effect at the next restart: " + strings.Join(p, ", ")
			out["restart_needed"] = p
		}
	}
	return ok(w, out)
}

// maxPause bounds a pause, so a slip of the finger cannot turn blocking
// off for good.
const maxPause = 7 * 24 * time.Hour

// PauseReply is the answer of POST /api/v1/pause.
type PauseReply struct {
	// Client is the client paused; "" for everyone.
	Client string `json:"client"`
	// Group is the group paused, when one was.
	Group string `json:"group,omitempty"`
	// Status is every pause in force after this one.
	Status resolver.PauseStatus `json:"status"`
	// Until is when this pause ends.
	Until time.Time `json:"until"`
}

// pauseStatus reports the pauses in force.
func (a *api) pauseStatus(w http.ResponseWriter, r *http.Request) error {
	return ok(w, a.d.Pause.Status())
}

// pause pauses blocking for ?duration, for everyone or for ?client.
func (a *api) pause(w http.ResponseWriter, r *http.Request) error {
	d, err := time.ParseDuration(r.URL.Query().Get("duration"))
	if err != nil || d <= 0 || d > maxPause {
		return badRequest(errors.New("want ?duration= a positive duration up to 168h, such as 5m"))
	}
	client, group, err := a.pauseTarget(r)
	if err != nil {
		return err
	}
	target := client
	if group != "" {
		target = blocklists.ScopeGroup + group
	}
	until := a.d.Pause.Pause(target, d)
	return ok(w, PauseReply{Client: client, Group: group, Until: until, Status: a.d.Pause.Status()})
}

// pauseTarget reads ?client (forgivingly) or ?group (one of the
// configuration's); neither means everyone.
func (a *api) pauseTarget(r *http.Request) (client, group string, err error) {
	q := r.URL.Query()
	if g := strings.TrimSpace(q.Get("group")); g != "" {
		who, err := a.asker("", g)
		return "", who.Group, err
	}
	client, err = a.resolveClient(q.Get("client"))
	return client, "", err
}

// resume ends ?client's pause, or every pause when no client is named.
func (a *api) resume(w http.ResponseWriter, r *http.Request) error {
	client, group, err := a.pauseTarget(r)
	if err != nil {
		return err
	}
	if group != "" {
		client = blocklists.ScopeGroup + group
	}
	a.d.Pause.Resume(client)
	return ok(w, a.d.Pause.Status())
}

// errNoName is the answer to a question about no name.
var errNoName = errors.New("want ?name=example.com")

// UpstreamFigure is one upstream's answered exchanges, errors and latency,
// from the forwarder's histogram, for GET /api/v1/stats.
type UpstreamFigure struct {
	Upstream string  `json:"upstream"`
	Answered uint64  `json:"answered"`
	Errors   uint64  `json:"errors"`
	MeanMs   float64 `json:"mean_ms"`
	// P95Ms is the histogram bound under which 95 % of the answers came
	// (an upper estimate); 0 with no answers.
	P95Ms float64 `json:"p95_ms"`
}

func upstreamFigures(ms []resolver.UpstreamMetrics) []UpstreamFigure {
	out := make([]UpstreamFigure, 0, len(ms))
	for _, m := range ms {
		f := UpstreamFigure{Upstream: m.Upstream, Errors: m.Errors}
		for _, n := range m.Buckets {
			f.Answered += n
		}
		if f.Answered > 0 {
			f.MeanMs = float64(m.Sum.Microseconds()) / 1000 / float64(f.Answered)
			var seen uint64
			for i, n := range m.Buckets {
				seen += n
				if seen*100 >= f.Answered*95 {
					if i < len(resolver.LatencyBuckets) {
						f.P95Ms = float64(resolver.LatencyBuckets[i].Microseconds()) / 1000
					} else {
						f.P95Ms = float64(resolver.LatencyBuckets[len(resolver.LatencyBuckets)-1].Microseconds()) / 1000
					}
					break
				}
			}
		}
		out = append(out, f)
	}
	return out
}
