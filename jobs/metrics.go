package jobs

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the scheduler's Prometheus metrics, in their own registry.
// Their names are a contract with dashboards; see docs/readme/jobs.md. It is
// safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	running     *prometheus.GaugeVec
	pages       *prometheus.CounterVec
	responses   *prometheus.CounterVec
	items       *prometheus.CounterVec
	errors      *prometheus.CounterVec
	network     *prometheus.CounterVec
	saved       *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
}

// NewMetrics returns the metrics, registered in a new registry together
// with the Go and process collectors.
func NewMetrics() *Metrics {
	job := []string{"job"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_runs_total", Help: "Runs finished, by job and final status.",
		}, []string{"job", "status"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_run_in_progress", Help: "1 while a run of the job is in progress in this scheduler.",
		}, job),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_pages_total", Help: "Pages crawled by finished runs.",
		}, job),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_cache_responses_total", Help: "Pages by how the cache served them: hit, miss, revalidated (304) or stale.",
		}, []string{"job", "served"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_items_total", Help: "Items extracted by finished runs.",
		}, job),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_page_errors_total", Help: "Pages that failed in finished runs.",
		}, job),
		network: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_network_bytes_total", Help: "Body bytes downloaded from origins.",
		}, job),
		saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_saved_bytes_total", Help: "Body bytes served from the cache instead of the network.",
		}, job),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_last_success_timestamp_seconds", Help: "Unix time when the job's last completed run finished.",
		}, job),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_last_run_duration_seconds", Help: "Wall time of the job's last finished run.",
		}, job),
	}
	m.reg.MustRegister(m.runs, m.running, m.pages, m.responses, m.items, m.errors, m.network, m.saved, m.lastSuccess, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register creates job's series at zero, so that dashboards and alerts
// see a scheduled job before its first run ends.
func (m *Metrics) Register(job string) {
	m.running.WithLabelValues(job).Set(0)
	for _, st := range []Status{StatusCompleted, StatusFailed, StatusInterrupted} {
		m.runs.WithLabelValues(job, string(st)).Add(0)
	}
	m.pages.WithLabelValues(job).Add(0)
	for _, served := range []string{"hit", "miss", "revalidated", "stale"} {
		m.responses.WithLabelValues(job, served).Add(0)
	}
	m.items.WithLabelValues(job).Add(0)
	m.errors.WithLabelValues(job).Add(0)
	m.network.WithLabelValues(job).Add(0)
	m.saved.WithLabelValues(job).Add(0)
}

// Started marks a run of job in progress.
func (m *Metrics) Started(job string) { m.running.WithLabelValues(job).Set(1) }

// Finished records a finished run. The counters are this process's share
// of the run (c), so that a resumed run is not counted twice.
func (m *Metrics) Finished(r *Run, c Counters) {
	m.running.WithLabelValues(r.Job).Set(0)
	m.runs.WithLabelValues(r.Job, string(r.Status)).Inc()
	m.pages.WithLabelValues(r.Job).Add(float64(c.Pages))
	m.responses.WithLabelValues(r.Job, "hit").Add(float64(c.Hits))
	m.responses.WithLabelValues(r.Job, "miss").Add(float64(c.Misses))
	m.responses.WithLabelValues(r.Job, "revalidated").Add(float64(c.Revalidated))
	m.responses.WithLabelValues(r.Job, "stale").Add(float64(c.Stale))
	m.items.WithLabelValues(r.Job).Add(float64(c.Items))
	m.errors.WithLabelValues(r.Job).Add(float64(c.Errors))
	m.network.WithLabelValues(r.Job).Add(float64(c.NetworkBytes))
	m.saved.WithLabelValues(r.Job).Add(float64(c.SavedBytes))
	m.duration.WithLabelValues(r.Job).Set(r.Elapsed().Seconds())
	if r.Status == StatusCompleted && r.Finished != nil {
		m.lastSuccess.WithLabelValues(r.Job).Set(float64(r.Finished.Unix()))
	}
}

// Handler serves /metrics (Prometheus text format) and /healthz ("ok").
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
