package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-dns/vigil/resolver"
)

// metricsCollector turns the counters the packages keep (plain atomics, so
// the query path never touches a metrics library) into Prometheus metrics
// at scrape time.
type metricsCollector struct {
	d Deps

	queries, types, blocked, blockedGroup, upLatency, upErrors                       *prometheus.Desc
	cacheEntries, cacheBytes, cacheHits, cacheMisses, cacheStale                     *prometheus.Desc
	listEntries, listUpdated, listFailing, listRules, listGeneration                 *prometheus.Desc
	logQueued, logWritten, logDropped, logErrors, paused, tcpConns, scrubbed, rebind *prometheus.Desc
	shed, alertsFired, alertsFailed                                                  *prometheus.Desc
	storeMode, storeLowDisk, storeSkipped                                            *prometheus.Desc
	fleetConnected, fleetShipped, fleetPending, fleetErrors, fleetLost               *prometheus.Desc
	dnstapSent, dnstapDropped, dnstapConnected                                       *prometheus.Desc
}

// newMetricsCollector describes every metric once; Collect reads deps at
// each scrape.
func newMetricsCollector(deps Deps) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_"+name, help, labels, nil)
	}
	return &metricsCollector{
		d:               deps,
		queries:         d("queries_total", "Queries answered, by transport and result.", "proto", "result"),
		types:           d("queries_by_type_total", "Queries answered, by query type.", "type"),
		blocked:         d("blocked_total", "Blocked lookups by list, vendor and named client (\"\" for unnamed clients).", "list", "vendor", "client"),
		blockedGroup:    d("blocked_by_group_total", "Blocked lookups by the client's groups ([[groups]]; \"\" for clients in none), joined with \",\".", "group"),
		alertsFired:     d("alerts_total", "Alerts raised, by rule.", "rule"),
		alertsFailed:    d("alert_delivery_failures_total", "Alert deliveries given up after their retries, by destination.", "destination"),
		upLatency:       d("upstream_duration_seconds", "Round trip of answered upstream exchanges.", "upstream"),
		upErrors:        d("upstream_errors_total", "Failed upstream exchanges (timeouts, errors, SERVFAIL/REFUSED answers).", "upstream"),
		cacheEntries:    d("cache_entries", "Answers in the cache."),
		cacheBytes:      d("cache_bytes", "Memory held by cached answers."),
		cacheHits:       d("cache_hits_total", "Cache hits."),
		cacheMisses:     d("cache_misses_total", "Cache misses."),
		cacheStale:      d("cache_stale_answers_total", "Stale answers served while no upstream answered (RFC 8767)."),
		listEntries:     d("list_source_entries", "Rules in a list source's copy in use.", "list", "vendor", "source", "status"),
		listUpdated:     d("list_source_last_update_timestamp_seconds", "When a list source's copy in use was fetched.", "list", "source"),
		listFailing:     d("list_source_failing", "1 while a list source's latest update failed.", "list", "source"),
		listRules:       d("list_rules", "Distinct rules compiled from every list."),
		listGeneration:  d("list_generation", "Compilations of the lists since start."),
		logQueued:       d("querylog_queue_length", "Entries waiting for the per-client log writer."),
		logWritten:      d("querylog_written_total", "Entries written to the per-client log."),
		logDropped:      d("querylog_dropped_total", "Entries dropped: queue full, or disk nearly full.", "reason"),
		logErrors:       d("querylog_write_errors_total", "Entries lost to write errors."),
		paused:          d("blocking_paused", "1 while blocking is paused for everyone."),
		tcpConns:        d("tcp_connections", "Open TCP connections."),
		scrubbed:        d("upstream_scrubbed_records_total", "Out-of-bailiwick records dropped from upstream answers."),
		rebind:          d("rebind_dropped_records_total", "Private, loopback and link-local addresses dropped from public answers (DNS-rebinding protection)."),
		shed:            d("udp_shed_total", "UDP queries dropped unanswered: server.max_inflight queries were already waiting for upstreams."),
		storeMode:       d("store_mode", "1 for the store's current mode: read-write, or read-only or unavailable on a full or damaged disk (DNS answers either way).", "mode"),
		storeLowDisk:    d("store_low_disk", "1 while the store's disk has less free space than store.min_free_bytes."),
		storeSkipped:    d("store_skipped_writes_total", "Store writes skipped for want of disk space or a writable store."),
		fleetConnected:  d("fleet_connected", "1 while the fleet's PostgreSQL answers the shipper."),
		fleetShipped:    d("fleet_shipped_total", "Log entries shipped to the fleet's PostgreSQL."),
		fleetPending:    d("fleet_pending_bytes", "Bytes of the local log not shipped yet (they wait there while PostgreSQL is away)."),
		fleetErrors:     d("fleet_errors_total", "Failed attempts to reach or ship to the fleet's PostgreSQL."),
		fleetLost:       d("fleet_lost_bytes_total", "Bytes of the local log deleted by its retention, or damaged, before they were shipped."),
		dnstapSent:      d("dnstap_sent_total", "Queries (each a query and a response message) sent to the dnstap collector."),
		dnstapDropped:   d("dnstap_dropped_total", "Queries not sent to the dnstap collector: its queue was full or it was away."),
		dnstapConnected: d("dnstap_connected", "1 while the dnstap collector is connected."),
	}
}

var _ prometheus.Collector = (*metricsCollector)(nil)

// Describe implements prometheus.Collector.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	m := metricSink(ch)
	c.collectQueries(m)
	c.collectUpstreams(m)
	c.collectLists(m)
	if c.d.Cache != nil {
		cs := c.d.Cache.Stats()
		m.gauge(c.cacheEntries, float64(cs.Entries))
		m.gauge(c.cacheBytes, float64(cs.Bytes))
		m.counter(c.cacheHits, float64(cs.Hits))
		m.counter(c.cacheMisses, float64(cs.Misses))
		m.counter(c.cacheStale, float64(cs.Stale))
	}
	if c.d.Alerts != nil {
		fired, failed := c.d.Alerts.Counts()
		for rule, n := range fired {
			m.counter(c.alertsFired, float64(n), rule)
		}
		for dest, n := range failed {
			m.counter(c.alertsFailed, float64(n), dest)
		}
	}
	if c.d.QueryLog != nil {
		st := c.d.QueryLog.Stats()
		m.gauge(c.logQueued, float64(st.Queued))
		m.counter(c.logWritten, float64(st.Written))
		m.counter(c.logDropped, float64(st.Dropped), "queue_full")
		m.counter(c.logDropped, float64(st.LowDiskDropped), "low_disk")
		m.counter(c.logErrors, float64(st.WriteErrors))
	}
	m.gauge(c.paused, one(!c.d.Pause.Status().All.IsZero()))
	srv := c.d.Server.Stats()
	m.gauge(c.tcpConns, float64(srv.TCPConns))
	m.counter(c.shed, float64(srv.Shed))
	if c.d.Store != nil {
		st := c.d.Store.Status()
		m.gauge(c.storeMode, 1, string(st.Mode))
		m.gauge(c.storeLowDisk, one(st.LowDisk))
		m.counter(c.storeSkipped, float64(st.SkippedWrites))
	}
	if c.d.Fleet != nil {
		st := c.d.Fleet.Stats()
		m.gauge(c.fleetConnected, one(st.Connected))
		m.counter(c.fleetShipped, float64(st.Shipped))
		m.gauge(c.fleetPending, float64(st.Pending))
		m.counter(c.fleetErrors, float64(st.Errors))
		m.counter(c.fleetLost, float64(st.LostBytes))
	}
	if c.d.Dnstap != nil {
		st := c.d.Dnstap.Stats()
		m.counter(c.dnstapSent, float64(st.Sent))
		m.counter(c.dnstapDropped, float64(st.Dropped))
		m.gauge(c.dnstapConnected, one(st.Connected))
	}
}

// one is 1 for true, 0 for false: a state as a gauge.
func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricSink sends constant metrics to a scrape.
type metricSink chan<- prometheus.Metric

// counter sends a counter's value.
func (m metricSink) counter(d *prometheus.Desc, v float64, labels ...string) {
	m <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

// gauge sends a gauge's value.
func (m metricSink) gauge(d *prometheus.Desc, v float64, labels ...string) {
	m <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// collectQueries reports the server's per-query counters.
func (c *metricsCollector) collectQueries(m metricSink) {
	qm := c.d.Server.Metrics()
	for proto, results := range qm.ByResult {
		for result, n := range results {
			m.counter(c.queries, float64(n), proto, result)
		}
	}
	for t, n := range qm.ByType {
		m.counter(c.types, float64(n), t)
	}
	// One series per label set: the keys also differ by what a series
	// does not show (the group; the client when client labels are off).
	blocked := map[[3]string]float64{}
	byGroup := map[string]float64{}
	for k, n := range qm.Blocked {
		client := k.Client
		if !c.d.Metrics.ClientLabels {
			client = ""
		}
		blocked[[3]string{k.List, k.Vendor, client}] += float64(n)
		byGroup[k.Group] += float64(n)
	}
	for k, n := range blocked {
		m.counter(c.blocked, n, k[0], k[1], k[2])
	}
	for g, n := range byGroup {
		m.counter(c.blockedGroup, n, g)
	}
}

// collectUpstreams reports each upstream's latency histogram and errors.
func (c *metricsCollector) collectUpstreams(m metricSink) {
	for _, u := range c.d.Upstreams.Metrics() {
		// The forwarder counts per bucket; Prometheus wants cumulative
		// counts keyed by upper bound.
		buckets := map[float64]uint64{}
		var cum uint64
		for i, bound := range resolver.LatencyBuckets {
			cum += u.Buckets[i]
			buckets[bound.Seconds()] = cum
		}
		cum += u.Buckets[len(u.Buckets)-1]
		m <- prometheus.MustNewConstHistogram(c.upLatency, cum, u.Sum.Seconds(), buckets, u.Upstream)
		m.counter(c.upErrors, float64(u.Errors), u.Upstream)
	}
	m.counter(c.scrubbed, float64(c.d.Upstreams.Scrubbed()))
	m.counter(c.rebind, float64(c.d.Upstreams.RebindDropped()))
}

// collectLists reports the compiled set and every source's state.
func (c *metricsCollector) collectLists(m metricSink) {
	set := c.d.Lists.Current()
	m.gauge(c.listRules, float64(set.Matcher.Len()))
	m.gauge(c.listGeneration, float64(set.Generation))
	for _, s := range c.d.Lists.Status() {
		m.gauge(c.listEntries, float64(s.Entries), s.List, s.Vendor, s.Source, s.Status)
		if !s.FetchedAt.IsZero() {
			m.gauge(c.listUpdated, float64(s.FetchedAt.Unix()), s.List, s.Source)
		}
		failing := 0.0
		if s.Error != "" {
			failing = 1
		}
		m.gauge(c.listFailing, failing, s.List, s.Source)
	}
}

// metricsHandler returns /metrics: Vigil's own metrics plus the Go runtime's.
func metricsHandler(d Deps) http.Handler {
	// A registry of its own, not the global default: no package-level
	// state, and a second API in the same process (tests) cannot clash.
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(d), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}
