package main

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-dns/vigil/cmd/vigil/api"
	"github.com/vigil-dns/vigil/store/fleet"
	"github.com/vigil-dns/vigil/store/querylog"
)

// fleetLog is the log the API reads with a fleet: the fleet-wide log in
// PostgreSQL, or this replica's own when PostgreSQL cannot answer (not
// reached yet, down): the dashboard then shows what this replica saw
// rather than an error. local is nil for another replica's log, which
// only the database has.
type fleetLog struct {
	db     *fleet.Reader
	local  api.LogReader
	log    *zap.Logger
	warned *atomic.Bool // one warning per outage, shared by the readers
}

// fromFleet asks the database, then the local log if it cannot answer.
func fromFleet[T any](l fleetLog, read func(api.LogReader) (T, error)) (T, error) {
	v, err := read(l.db)
	if err == nil {
		l.warned.Store(false)
		return v, nil
	}
	if l.local == nil {
		return v, err
	}
	if !l.warned.Swap(true) {
		l.log.Warn("the fleet's log cannot be read: answering from this replica's own log", zap.Error(err))
	}
	return read(l.local)
}

func (l fleetLog) Entries(f querylog.Filter) (querylog.Page, error) {
	return fromFleet(l, func(r api.LogReader) (querylog.Page, error) { return r.Entries(f) })
}

func (l fleetLog) Clients(since, until time.Time) ([]querylog.ClientSummary, error) {
	return fromFleet(l, func(r api.LogReader) ([]querylog.ClientSummary, error) { return r.Clients(since, until) })
}

func (l fleetLog) Client(client string, since, until time.Time) (querylog.ClientSummary, error) {
	return fromFleet(l, func(r api.LogReader) (querylog.ClientSummary, error) { return r.Client(client, since, until) })
}

func (l fleetLog) ClientDays(client string, since, until time.Time) ([]querylog.VendorDay, error) {
	return fromFleet(l, func(r api.LogReader) ([]querylog.VendorDay, error) { return r.ClientDays(client, since, until) })
}

func (l fleetLog) Top(since, until time.Time, n int) (querylog.TopReport, error) {
	return fromFleet(l, func(r api.LogReader) (querylog.TopReport, error) { return r.Top(since, until, n) })
}

func (l fleetLog) TopAllowed(since, until time.Time, n int) (querylog.TopReport, error) {
	return fromFleet(l, func(r api.LogReader) (querylog.TopReport, error) { return r.TopAllowed(since, until, n) })
}

func (l fleetLog) Identities(since time.Time) ([]string, error) {
	return fromFleet(l, func(r api.LogReader) ([]string, error) { return r.Identities(since) })
}

func (l fleetLog) AllowedCounts(since, until time.Time) (map[string]int, error) {
	return fromFleet(l, func(r api.LogReader) (map[string]int, error) { return r.AllowedCounts(since, until) })
}

// fleetReaders returns the API's fleet-wide log and its per-replica logs.
func (r *running) fleetReaders() (all api.LogReader, one func(string) api.LogReader) {
	warned := new(atomic.Bool)
	log := r.log.Named("fleet")
	all = fleetLog{db: r.fleet.Reader(""), local: r.logs, log: log, warned: warned}
	one = func(replica string) api.LogReader {
		l := fleetLog{db: r.fleet.Reader(replica), log: log, warned: warned}
		if replica == r.fleet.Replica() {
			l.local = r.logs
		}
		return l
	}
	return all, one
}
