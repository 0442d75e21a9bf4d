package main

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
	inst *instance

	queries, types, blocked, upLatency, upErrors                             *prometheus.Desc
	cacheEntries, cacheBytes, cacheHits, cacheMisses, cacheStale             *prometheus.Desc
	listEntries, listUpdated, listFailing, listRules, listGeneration         *prometheus.Desc
	logQueued, logWritten, logDropped, logErrors, paused, tcpConns, scrubbed *prometheus.Desc
	shed                                                                     *prometheus.Desc
}

func newMetricsCollector(inst *instance) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vigil_"+name, help, labels, nil)
	}
	return &metricsCollector{
		inst:           inst,
		queries:        d("queries_total", "Queries answered, by transport and result.", "proto", "result"),
		types:          d("queries_by_type_total", "Queries answered, by query type.", "type"),
		blocked:        d("blocked_total", "Blocked lookups by list, vendor and named client (\"\" for unnamed clients).", "list", "vendor", "client"),
		upLatency:      d("upstream_duration_seconds", "Round trip of answered upstream exchanges.", "upstream"),
		upErrors:       d("upstream_errors_total", "Failed upstream exchanges (timeouts, errors, SERVFAIL/REFUSED answers).", "upstream"),
		cacheEntries:   d("cache_entries", "Answers in the cache."),
		cacheBytes:     d("cache_bytes", "Memory held by cached answers."),
		cacheHits:      d("cache_hits_total", "Cache hits."),
		cacheMisses:    d("cache_misses_total", "Cache misses."),
		cacheStale:     d("cache_stale_answers_total", "Stale answers served while no upstream answered (RFC 8767)."),
		listEntries:    d("list_source_entries", "Rules in a list source's copy in use.", "list", "vendor", "source", "status"),
		listUpdated:    d("list_source_last_update_timestamp_seconds", "When a list source's copy in use was fetched.", "list", "source"),
		listFailing:    d("list_source_failing", "1 while a list source's latest update failed.", "list", "source"),
		listRules:      d("list_rules", "Distinct rules compiled from every list."),
		listGeneration: d("list_generation", "Compilations of the lists since start."),
		logQueued:      d("querylog_queue_length", "Entries waiting for the per-client log writer."),
		logWritten:     d("querylog_written_total", "Entries written to the per-client log."),
		logDropped:     d("querylog_dropped_total", "Entries dropped: queue full, or disk nearly full.", "reason"),
		logErrors:      d("querylog_write_errors_total", "Entries lost to write errors."),
		paused:         d("blocking_paused", "1 while blocking is paused for everyone."),
		tcpConns:       d("tcp_connections", "Open TCP connections."),
		scrubbed:       d("upstream_scrubbed_records_total", "Out-of-bailiwick records dropped from upstream answers."),
		shed:           d("udp_shed_total", "UDP queries dropped unanswered: server.max_inflight queries were already waiting for upstreams."),
	}
}

// Describe implements prometheus.Collector.
func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	inst := c.inst
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	qm := inst.srv.Metrics()
	for proto, results := range qm.ByResult {
		for result, n := range results {
			counter(c.queries, float64(n), proto, result)
		}
	}
	for t, n := range qm.ByType {
		counter(c.types, float64(n), t)
	}
	for k, n := range qm.Blocked {
		client := k.Client
		if !inst.cfg.Metrics.ClientLabels {
			client = ""
		}
		counter(c.blocked, float64(n), k.List, k.Vendor, client)
	}
	for _, u := range inst.chain.Forwarder.Metrics() {
		buckets := map[float64]uint64{}
		var cum uint64
		for i, bound := range resolver.LatencyBuckets {
			cum += u.Buckets[i]
			buckets[bound.Seconds()] = cum
		}
		cum += u.Buckets[len(u.Buckets)-1]
		ch <- prometheus.MustNewConstHistogram(c.upLatency, cum, u.Sum.Seconds(), buckets, u.Upstream)
		counter(c.upErrors, float64(u.Errors), u.Upstream)
	}
	counter(c.scrubbed, float64(inst.chain.Forwarder.Scrubbed()))
	if inst.chain.Cache != nil {
		cs := inst.chain.Cache.Stats()
		gauge(c.cacheEntries, float64(cs.Entries))
		gauge(c.cacheBytes, float64(cs.Bytes))
		counter(c.cacheHits, float64(cs.Hits))
		counter(c.cacheMisses, float64(cs.Misses))
		counter(c.cacheStale, float64(cs.Stale))
	}
	set := inst.lists.Current()
	gauge(c.listRules, float64(set.Matcher.Len()))
	gauge(c.listGeneration, float64(set.Generation))
	for _, s := range inst.lists.Status() {
		gauge(c.listEntries, float64(s.Entries), s.List, s.Vendor, s.Source, s.Status)
		if !s.FetchedAt.IsZero() {
			gauge(c.listUpdated, float64(s.FetchedAt.Unix()), s.List, s.Source)
		}
		failing := 0.0
		if s.Error != "" {
			failing = 1
		}
		gauge(c.listFailing, failing, s.List, s.Source)
	}
	if inst.qlog != nil {
		st := inst.qlog.Stats()
		gauge(c.logQueued, float64(st.Queued))
		counter(c.logWritten, float64(st.Written))
		counter(c.logDropped, float64(st.Dropped), "queue_full")
		counter(c.logDropped, float64(st.LowDiskDropped), "low_disk")
		counter(c.logErrors, float64(st.WriteErrors))
	}
	paused := 0.0
	if !inst.pause.Status().All.IsZero() {
		paused = 1
	}
	gauge(c.paused, paused)
	srv := inst.srv.Stats()
	gauge(c.tcpConns, float64(srv.TCPConns))
	counter(c.shed, float64(srv.Shed))
}

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	// Enabled serves /metrics on the HTTP API's address.
	Enabled bool `toml:"enabled"`
	// ClientLabels labels blocked lookups with the client's name (named
	// clients only, so the label set stays bounded); off drops the label.
	ClientLabels bool `toml:"client_labels"`
}

// metricsHandler returns /metrics: Vigil's own metrics plus the Go runtime's.
func metricsHandler(inst *instance) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(inst), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}
