// Package metrics serves the operator's view of a running Decimail: the
// Prometheus metrics at /metrics and a database health check at /healthz,
// on the admin listener (decimail serve -admin ADDR).
//
// Instrumentation lives in two hooks, imapd's command dispatch
// (imapd.Metrics) and smtpd's delivery (smtpd.Metrics); everything else is
// read when Prometheus scrapes: connection counts, pool statistics, the
// notifier's state and one statement for the queue and indexer backlog
// (store.Backlog). Each Metrics has its own registry: no package-level
// state, so tests run servers side by side.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"decimail/server/imapd"
	"decimail/server/smtpd"
	"decimail/server/store"
)

// ScrapeTimeout bounds the database statements of one scrape and of /healthz.
const ScrapeTimeout = 2 * time.Second

// Metrics is one server process's registry.
type Metrics struct {
	st  *store.Store
	reg *prometheus.Registry

	cmdDur *prometheus.HistogramVec
	mu     sync.RWMutex
	cmdObs map[cmdKey]prometheus.Observer // resolved label sets: no allocation per command

	deliveries *prometheus.CounterVec
}

type cmdKey struct{ name, status string }

// New returns the registry of a process on st, with the store's gauges and
// the Go runtime's and the process's collectors.
func New(st *store.Store) *Metrics {
	m := &Metrics{st: st, reg: prometheus.NewRegistry(), cmdObs: map[cmdKey]prometheus.Observer{}}
	m.cmdDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "decimail_imap_command_duration_seconds",
		Help: "IMAP commands by name and reply status (OK, NO, BAD, BYE), from dispatch to tagged reply.",
		// From a cached FETCH (well under a millisecond) to a SEARCH near
		// the statement timeout.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30},
	}, []string{"command", "status"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "decimail_smtp_deliveries_total",
		Help: "SMTP message transactions that reached the store, by listener (mx, submission) and result (ok: committed; error: nothing stored, 4xx).",
	}, []string{"listener", "result"})
	m.reg.MustRegister(m.cmdDur, m.deliveries, storeCollector{m.st},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Command implements imapd.Metrics.
func (m *Metrics) Command(name, status string, d time.Duration) {
	k := cmdKey{name, status}
	m.mu.RLock()
	o := m.cmdObs[k]
	m.mu.RUnlock()
	if o == nil {
		m.mu.Lock()
		if o = m.cmdObs[k]; o == nil {
			o = m.cmdDur.WithLabelValues(name, status)
			m.cmdObs[k] = o
		}
		m.mu.Unlock()
	}
	o.Observe(d.Seconds())
}

// Delivery implements smtpd.Metrics.
func (m *Metrics) Delivery(listener, result string) {
	m.deliveries.WithLabelValues(listener, result).Inc()
}

// WatchIMAP reports srv's sessions and commands.
func (m *Metrics) WatchIMAP(srv *imapd.Server) {
	srv.SetMetrics(m)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "decimail_connections", Help: "Open connections by daemon.", ConstLabels: prometheus.Labels{"daemon": "imap"},
	}, func() float64 { return float64(srv.Conns()) }))
}

// WatchSMTP reports srv's connections and deliveries.
func (m *Metrics) WatchSMTP(srv *smtpd.Server) {
	srv.SetMetrics(m)
	for _, l := range []string{"smtp", "submission"} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "decimail_connections", Help: "Open connections by daemon.", ConstLabels: prometheus.Labels{"daemon": l},
		}, func() float64 {
			mx, sub := srv.Conns()
			if l == "smtp" {
				return float64(mx)
			}
			return float64(sub)
		}))
	}
}

// Handler serves /metrics and /healthz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", m.healthz)
	return mux
}

// healthz answers 200 when the database answers SELECT 1 within
// ScrapeTimeout, else 503 with the reason.
func (m *Metrics) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := m.st.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("database: unavailable\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// storeCollector reads the store's state at scrape time.
type storeCollector struct{ st *store.Store }

var (
	descQueued = prometheus.NewDesc("decimail_outbound_queue_messages",
		"Messages in the outbound queue (decimail queue list).", nil, nil)
	descQueueAge = prometheus.NewDesc("decimail_outbound_queue_oldest_seconds",
		"Age of the oldest message in the outbound queue; 0 when it is empty.", nil, nil)
	descUnindexed = prometheus.NewDesc("decimail_indexer_backlog_messages",
		"Message texts not yet in the trigram indexes (searches still find them, more slowly).", nil, nil)
	descBacklogUp = prometheus.NewDesc("decimail_backlog_scrape_ok",
		"1 when the queue and indexer figures above could be read from the database in this scrape, else 0.", nil, nil)
	descListening = prometheus.NewDesc("decimail_notifier_listening",
		"1 while the LISTEN connection is up; 0: changes made by other processes reach IDLE sessions only when they poll.", nil, nil)
	descNotifyLag = prometheus.NewDesc("decimail_notifier_lag_seconds",
		"How long a notification committed at scrape time took to reach this process's LISTEN connection (a NOTIFY to itself): the delay with which sessions hear of other processes' changes. Missing from a scrape when it could not be measured within the scrape timeout.", nil, nil)
	descChangeReads = prometheus.NewDesc("decimail_change_reads_total",
		"Reads of a selected mailbox's changes by sessions, by answer: shared (from the process's record of the mailbox, kept current by its writers; no round trip) or store (a query).",
		[]string{"answer"}, nil)
	descChangeFeeds = prometheus.NewDesc("decimail_change_records_continued_total",
		"Changes whose transaction also read, for this process's sessions, what changed in the mailboxes they follow.", nil, nil)
	descPoolTotal = prometheus.NewDesc("decimail_db_pool_connections",
		"Postgres connections of a pool by class (sessions, delivery, background) and state (idle, acquired, constructing).",
		[]string{"class", "state"}, nil)
	descPoolMax = prometheus.NewDesc("decimail_db_pool_max_connections",
		"The most connections a pool may open.", []string{"class"}, nil)
	descPoolWait = prometheus.NewDesc("decimail_db_pool_acquire_waits_total",
		"Acquires that had to wait for a connection (the pool was fully in use).", []string{"class"}, nil)
	descPoolWaitTime = prometheus.NewDesc("decimail_db_pool_acquire_wait_seconds_total",
		"Time spent waiting for a connection.", []string{"class"}, nil)
)

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueued, descQueueAge, descUnindexed, descBacklogUp, descListening, descNotifyLag,
		descChangeReads, descChangeFeeds, descPoolTotal, descPoolMax, descPoolWait, descPoolWaitTime} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, class := range store.Classes {
		s := c.st.PoolStat(class)
		n := class.String()
		ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(s.IdleConns()), n, "idle")
		ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(s.AcquiredConns()), n, "acquired")
		ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(s.ConstructingConns()), n, "constructing")
		ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(s.MaxConns()), n)
		ch <- prometheus.MustNewConstMetric(descPoolWait, prometheus.CounterValue, float64(s.EmptyAcquireCount()), n)
		ch <- prometheus.MustNewConstMetric(descPoolWaitTime, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds(), n)
	}
	shared, read, continued := c.st.ChangeReads()
	ch <- prometheus.MustNewConstMetric(descChangeReads, prometheus.CounterValue, float64(shared), "shared")
	ch <- prometheus.MustNewConstMetric(descChangeReads, prometheus.CounterValue, float64(read), "store")
	ch <- prometheus.MustNewConstMetric(descChangeFeeds, prometheus.CounterValue, float64(continued))
	listening := 0.0
	if c.st.Notifier().Listening() {
		listening = 1
	}
	ch <- prometheus.MustNewConstMetric(descListening, prometheus.GaugeValue, listening)
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	if listening == 1 {
		t0 := time.Now()
		if err := c.st.Barrier(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descNotifyLag, prometheus.GaugeValue, time.Since(t0).Seconds())
		}
	}
	b, err := c.st.Backlog(ctx)
	if err != nil {
		// No stale or made-up figures: the gauges are missing from this
		// scrape, and scrape_ok says why.
		ch <- prometheus.MustNewConstMetric(descBacklogUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descBacklogUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(b.Queued))
	ch <- prometheus.MustNewConstMetric(descQueueAge, prometheus.GaugeValue, b.OldestQueued.Seconds())
	ch <- prometheus.MustNewConstMetric(descUnindexed, prometheus.GaugeValue, float64(b.UnindexedTexts))
}
