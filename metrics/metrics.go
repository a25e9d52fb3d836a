// Package metrics keeps sessiond's Prometheus metrics and serves them in
// the text format. The other packages report through small hooks that main
// wires to a Metrics; none of them imports this package.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sessiond/sessiond/session"
)

// Metrics is sessiond's set of metrics. Create it with New.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	created   *prometheus.CounterVec
	moved     *prometheus.CounterVec
	txMoved   *prometheus.CounterVec
	expired   prometheus.Counter
	callbacks *prometheus.CounterVec
	batch     prometheus.Histogram
}

// New returns a Metrics with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_rpc_requests_total",
			Help: "JSON-RPC calls by method and result code (0 for success).",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiond_rpc_duration_seconds",
			Help:    "Time to run a JSON-RPC call, by method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_sessions_created_total",
			Help: "Sessions created, by type.",
		}, []string{"type"}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_session_moves_total",
			Help: "Session state changes, by type and the state moved to.",
		}, []string{"type", "state"}),
		txMoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_transaction_moves_total",
			Help: "Transactions created or moved, by type and state.",
		}, []string{"type", "state"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_sessions_expired_total",
			Help: "Sessions aborted with expired_session.",
		}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_callback_attempts_total",
			Help: "Callback delivery attempts, by outcome (delivered, retry, failed, gone, blocked).",
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sessiond_store_commit_writes",
			Help:    "Writes coalesced into one bbolt transaction and fsync (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.created, m.moved, m.txMoved, m.expired, m.callbacks, m.batch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveCall counts one JSON-RPC call and its duration.
func (m *Metrics) ObserveCall(method string, code int64, d time.Duration) {
	m.requests.WithLabelValues(method, strconv.FormatInt(code, 10)).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

// ObserveChange counts a committed change: a session created or moved, an
// expiry, a transaction created or moved. It follows the change feed.
func (m *Metrics) ObserveChange(c *session.Change) {
	if s := c.Session; s != nil {
		switch {
		case s.Version == 1:
			m.created.WithLabelValues(string(s.Type)).Inc()
		case c.Moved:
			m.moved.WithLabelValues(string(s.Type), s.State.String()).Inc()
			if s.ErrorCode == session.ErrorCodeExpired {
				m.expired.Inc()
			}
		}
	}
	if t := c.Transaction; t != nil && (c.TxFrom == nil || *c.TxFrom != t.State) {
		m.txMoved.WithLabelValues(t.Type, t.State.String()).Inc()
	}
}

// ObserveCallback counts one callback attempt by its outcome.
func (m *Metrics) ObserveCallback(outcome string) { m.callbacks.WithLabelValues(outcome).Inc() }

// ObserveCommit records how many writes one commit carried.
func (m *Metrics) ObserveCommit(writes int) { m.batch.Observe(float64(writes)) }

// Gauge registers a gauge whose value f gives at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Outbox registers the callback outbox gauges, read once per scrape from
// stats: the pending deliveries and when the oldest of them was recorded.
func (m *Metrics) Outbox(stats func() (pending int, oldest time.Time)) {
	m.reg.MustRegister(&outboxCollector{stats: stats})
}

type outboxCollector struct {
	stats func() (int, time.Time)
}

var (
	outboxPending = prometheus.NewDesc("sessiond_outbox_pending", "Callback deliveries waiting to be delivered.", nil, nil)
	outboxOldest  = prometheus.NewDesc("sessiond_outbox_oldest_pending_seconds", "Age of the oldest pending callback delivery (0 if none).", nil, nil)
)

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxPending
	ch <- outboxOldest
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	pending, oldest := c.stats()
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(outboxPending, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(outboxOldest, prometheus.GaugeValue, age)
}
