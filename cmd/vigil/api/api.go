// Package api is Vigil's HTTP API: the JSON endpoints under /api/v1/, the
// Prometheus metrics, the embedded dashboard and the access rules that
// guard them, plus Client, the Go client the CLI and the tests use.
//
// The package serves; it does not wire. cmd/vigil builds the resolver, the
// lists and the store and hands them in through Deps, so what the API can
// reach is written in one struct rather than found through a locator.
package api

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/vigil-dns/vigil/blocklists"
	"github.com/vigil-dns/vigil/cmd/vigil/alerts"
	"github.com/vigil-dns/vigil/resolver"
	"github.com/vigil-dns/vigil/resolver/dnstap"
	"github.com/vigil-dns/vigil/resolver/groups"
	"github.com/vigil-dns/vigil/resolver/neighbors"
	"github.com/vigil-dns/vigil/store"
	"github.com/vigil-dns/vigil/store/fleet"
	"github.com/vigil-dns/vigil/store/querylog"
)

// Deps is everything the API reads or changes. The interfaces are the few
// methods the API calls, so a test can hand in a fake and the API cannot
// reach further into the types behind them.
type Deps struct {
	// Config is the [http] section: the token and session length, and the
	// listen address, which decides whether reads need credentials.
	Config Config
	// Metrics is the [metrics] section; with Enabled off there is no
	// /metrics.
	Metrics MetricsConfig
	// Server reports the DNS server's counters; never nil.
	Server Server
	// Upstreams reports the forwarder's per-upstream counters; never nil.
	Upstreams Upstreams
	// Cache reports the answer cache's counters; nil when the cache is off.
	Cache CacheStats
	// Lists is the blocklists manager; never nil.
	Lists Lists
	// Log reads the per-client log from the store; never nil. With a
	// fleet, it reads the fleet-wide log.
	Log LogReader
	// LogFor reads one replica's log in a fleet (?replica=NAME); nil
	// without a fleet.
	LogFor func(replica string) LogReader
	// Fleet reports the fleet shipper's state; nil without a fleet.
	Fleet FleetReporter
	// Dnstap reports the dnstap output; nil without one.
	Dnstap DnstapReporter
	// QueryLog reports the log writer's counters; nil when the log is off.
	QueryLog QueryLogStats
	// Neighbors is what the network told about devices (leases, the
	// neighbour table); nil when nothing is learned.
	Neighbors NeighborTable
	// AllowedLogged says the log records allowed lookups too
	// (querylog.log_allowed), so devices' total queries can be counted.
	AllowedLogged bool
	// Clients returns the [[clients]] entries in use; nil means none.
	Clients func() []ClientInfo
	// Alerts are the alerts raised and their delivery; nil when [alerts]
	// is off.
	Alerts Alerts
	// ListEditor adds, removes and switches lists by hand; nil when lists
	// cannot be changed here.
	ListEditor ListEditor
	// Names are the names given to devices by hand; nil when devices
	// cannot be named here.
	Names DeviceNamer
	// Groups returns the [[groups]] in force; nil means none.
	Groups func() *groups.Groups
	// Assign moves devices between groups; nil when they cannot be.
	Assign GroupAssigner
	// ListNames returns the [[lists]] names in use; nil means none.
	ListNames func() []string
	// Series reads the hourly totals for the dashboard's charts; never nil.
	Series SeriesReader
	// Pause pauses and resumes blocking; never nil.
	Pause Pauser
	// Reload re-reads and applies the configuration file, returning why
	// not when the file is rejected; never nil.
	Reload func(ctx context.Context) error
	// PendingRestart names the settings changed in the file that only a
	// restart applies; nil means none.
	PendingRestart func() []string
	// Started is when the server started, for the health check's uptime.
	Started time.Time
	// Retention is how far back the log and the hourly totals reach (the
	// longer of querylog.retention and querylog.allowed_retention): every
	// window a request asks for is clamped to it, so a request's work is
	// bounded by what is kept. Zero means maxWindow.
	Retention time.Duration
	// Store reports the store's mode (read-only or unavailable on a full
	// or damaged disk) for the health check; nil leaves it out.
	Store StoreStatus
}

// Alerts is what the API reads of the alerts (*alerts.Engine).
type Alerts interface {
	History(since time.Time, limit int) ([]alerts.Alert, error)
	Test(ctx context.Context, destination string) error
	Counts() (fired, failed map[string]uint64)
	Ack(id string) error
	Mute(rule, client string) error
	Unmute(rule, client string) error
	Mutes() ([]alerts.Mute, error)
}

// ListEditor changes the lists by hand, over the configuration's.
type ListEditor interface {
	AddList(l blocklists.ListConfig) error
	RemoveList(name string) error
	SetListEnabled(name string, on bool) error
	Added() []string
}

// DeviceNamer names devices by hand, by MAC or address.
type DeviceNamer interface {
	Names() map[string]string
	SetName(key, name string) error
	ForgetName(key string) error
}

// GroupAssigner moves a device between groups by hand, overriding the
// configuration's [[groups]], and back.
type GroupAssigner interface {
	Assign(client string, groups []string) error
	Unassign(client string) error
}

// StoreStatus is what the API reads of the store (*store.Store).
type StoreStatus interface {
	Status() store.Status
}

// Server is what the API reads of the DNS server (*resolver.Server).
type Server interface {
	Stats() resolver.ServerStats
	Metrics() resolver.QueryMetrics
}

// Upstreams is what the API reads of the forwarders (*resolver.Router).
type Upstreams interface {
	Metrics() []resolver.UpstreamMetrics
	Scrubbed() uint64
	RebindDropped() uint64
}

// CacheStats is what the API reads of the answer cache (*resolver.Cache).
type CacheStats interface {
	Stats() resolver.CacheStats
}

// QueryLogStats is what the API reads of the log writer (*querylog.Log).
type QueryLogStats interface {
	Stats() querylog.Stats
}

// Lists is what the API uses of the blocklists (*blocklists.Manager).
type Lists interface {
	Current() *blocklists.Set
	Status() []blocklists.SourceStatus
	Refresh(ctx context.Context, progress blocklists.Progress) []blocklists.SourceStatus
	Allowed() ([]string, error)
	// AddException allows or blocks a name for a device, a group or
	// everyone, for a while or for good; RemoveException ends one.
	AddException(e store.Exception) error
	RemoveException(scope, name string) error
	Exceptions() ([]store.Exception, error)
	// Audit compiles each enabled deny list alone and reports what the
	// allowlists rescue from it and which popular names it blocks.
	Audit(popular []string) ([]blocklists.ListAudit, error)
}

// LogReader answers questions about the per-client log (*querylog.Log).
type LogReader interface {
	Entries(f querylog.Filter) (querylog.Page, error)
	Clients(since, until time.Time) ([]querylog.ClientSummary, error)
	Client(client string, since, until time.Time) (querylog.ClientSummary, error)
	ClientDays(client string, since, until time.Time) ([]querylog.VendorDay, error)
	Top(since, until time.Time, n int) (querylog.TopReport, error)
	TopAllowed(since, until time.Time, n int) (querylog.TopReport, error)
	Identities(since time.Time) ([]string, error)
	AllowedCounts(since, until time.Time) (map[string]int, error)
}

// DnstapReporter reports the dnstap output (*dnstap.Writer).
type DnstapReporter interface {
	Stats() dnstap.Stats
}

// FleetReporter reports a fleet replica's shipping (*fleet.Fleet).
type FleetReporter interface {
	Stats() fleet.Stats
}

// logOf is the log a request reads: the fleet's, or with ?replica= one
// replica's.
func (a *api) logOf(r *http.Request) LogReader {
	if rep := r.URL.Query().Get("replica"); rep != "" && a.d.LogFor != nil {
		return a.d.LogFor(rep)
	}
	return a.d.Log
}

// NeighborTable is what the API reads of the learned devices
// (*neighbors.Watcher).
type NeighborTable interface {
	Devices() []neighbors.Device
}

// SeriesReader reads the hourly totals. The implementation should bring
// them up to date first, so a chart shows the current hour as it stands.
type SeriesReader interface {
	Series(since, until time.Time) ([]store.SeriesPoint, error)
}

// Pauser pauses and resumes blocking (*resolver.Pauser).
type Pauser interface {
	Pause(client string, d time.Duration) time.Time
	Resume(client string)
	Status() resolver.PauseStatus
}

// api holds the handlers; each endpoint is one method.
type api struct {
	d Deps
	// auditing holds a token while an audit runs: it compiles every list,
	// so one at a time.
	auditing chan struct{}
	// window is how far back a request may look; never zero.
	window time.Duration
	now    func() time.Time
}

// maxWindow bounds a window when Deps.Retention is not given.
const maxWindow = 400 * 24 * time.Hour

// New returns the API's handler, behind the access rules.
func New(d Deps) http.Handler {
	a := &api{d: d, window: d.Retention, now: time.Now, auditing: make(chan struct{}, 1)}
	if a.window <= 0 {
		a.window = maxWindow
	}
	guard := newAuth(d.Config)
	mux := http.NewServeMux()
	for pattern, h := range map[string]handlerFunc{
		"POST /api/v1/login":                     guard.login,
		"POST /api/v1/logout":                    guard.logout,
		"GET /api/v1/health":                     a.health,
		"GET /api/v1/stats":                      a.stats,
		"GET /api/v1/blocked":                    a.blocked,
		"GET /api/v1/clients":                    a.clients,
		"GET /api/v1/devices":                    a.devices,
		"PUT /api/v1/devices/name":               a.nameDevice,
		"DELETE /api/v1/devices/name":            a.forgetDeviceName,
		"GET /api/v1/clients/{client}":           a.client,
		"GET /api/v1/clients/{client}/days":      a.clientDays,
		"GET /api/v1/top":                        a.top,
		"GET /api/v1/series":                     a.series,
		"GET /api/v1/lists":                      a.lists,
		"POST /api/v1/lists/update":              a.updateLists,
		"POST /api/v1/lists":                     a.addList,
		"DELETE /api/v1/lists/{name}":            a.removeList,
		"POST /api/v1/lists/{name}/enable":       a.switchList(true),
		"POST /api/v1/lists/{name}/disable":      a.switchList(false),
		"POST " + auditPath:                      a.auditLists,
		"GET /api/v1/explain":                    a.explain,
		"GET /api/v1/functional":                 a.functional,
		"GET /api/v1/allow":                      a.allowed,
		"POST /api/v1/allow":                     a.except(false),
		"DELETE /api/v1/allow":                   a.unexcept,
		"POST /api/v1/block":                     a.except(true),
		"DELETE /api/v1/block":                   a.unexcept,
		"GET /api/v1/exceptions":                 a.exceptions,
		"GET /api/v1/groups":                     a.groupsReport,
		"GET /api/v1/alerts":                     a.alerts,
		"POST /api/v1/alerts/test":               a.testAlert,
		"POST /api/v1/alerts/{id}/ack":           a.ackAlert,
		"POST /api/v1/alerts/mute":               a.muteAlerts(true),
		"DELETE /api/v1/alerts/mute":             a.muteAlerts(false),
		"GET /api/v1/clients/{client}/groups":    a.clientGroups,
		"PUT /api/v1/clients/{client}/groups":    a.assign,
		"DELETE /api/v1/clients/{client}/groups": a.unassign,
		"POST /api/v1/reload":                    a.reload,
		"GET /api/v1/pause":                      a.pauseStatus,
		"POST /api/v1/pause":                     a.pause,
		"POST /api/v1/resume":                    a.resume,
	} {
		mux.Handle(pattern, h)
	}
	if d.Metrics.Enabled {
		mux.Handle("GET /metrics", metricsHandler(d))
	}
	// The dashboard: static files embedded in the binary.
	mux.Handle("GET /", http.FileServerFS(webFS()))
	// Profiles for operators chasing CPU or memory: with a token only, and
	// for its holder only (see auth), since a heap profile shows what the
	// process holds and a CPU profile costs CPU.
	if d.Config.Token != "" {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	}
	return guard.wrap(mux)
}
