package jobs

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the scheduler's Prometheus metrics, in their own registry.
// Their names are a contract with dashboards; see docs/readme/jobs.md. The
// run counters move while a run goes (Progress), not only when it ends. It
// is safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	build       *prometheus.GaugeVec
	queued      *prometheus.GaugeVec
	nextRun     *prometheus.GaugeVec
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

	mu       sync.Mutex
	reported map[string]Counters // per run: what Progress already added
}

// NewMetrics returns the metrics, registered in a new registry together
// with the Go and process collectors.
func NewMetrics() *Metrics {
	job := []string{"job"}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		reported: map[string]Counters{},
		build: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_build_info", Help: "Always 1; its labels say which crawlcache (version, VCS revision) and which Go built it.",
		}, []string{"version", "revision", "goversion"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_frontier_queued_urls", Help: "URLs waiting in the frontier of the job's run in progress here (0 when none runs).",
		}, job),
		nextRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_next_run_timestamp_seconds", Help: "Unix time of the job's next scheduled occurrence.",
		}, job),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_runs_total", Help: "Runs finished, by job and final status.",
		}, []string{"job", "status"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crawlcache_run_in_progress", Help: "1 while a run of the job is in progress in this scheduler.",
		}, job),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_pages_total", Help: "Pages crawled, counted as they are done.",
		}, job),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_cache_responses_total", Help: "Pages by how the cache served them: hit, miss, revalidated (304) or stale.",
		}, []string{"job", "served"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_items_total", Help: "Items extracted and written, counted as they are written.",
		}, job),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crawlcache_page_errors_total", Help: "URLs that failed for good, counted as they fail.",
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
	m.reg.MustRegister(m.build, m.queued, m.nextRun, m.runs, m.running, m.pages, m.responses, m.items, m.errors, m.network, m.saved,
		m.lastSuccess, m.duration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.SetVersion("")
	return m
}

// SetVersion sets crawlcache_build_info's version label (the release,
// e.g. commands.Version); empty means the module version Go recorded.
// The revision is the VCS revision Go recorded, if any.
func (m *Metrics) SetVersion(version string) {
	revision := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if version == "" {
		version = "unknown"
	}
	m.build.Reset()
	m.build.WithLabelValues(version, revision, runtime.Version()).Set(1)
}

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
	m.queued.WithLabelValues(job).Set(0)
	m.lastSuccess.WithLabelValues(job).Add(0)
	m.duration.WithLabelValues(job).Add(0)
	m.nextRun.WithLabelValues(job).Add(0)
}

// Forget removes every series of job (no longer scheduled).
func (m *Metrics) Forget(job string) {
	l := prometheus.Labels{"job": job}
	for _, v := range []*prometheus.GaugeVec{m.queued, m.nextRun, m.running, m.lastSuccess, m.duration} {
		v.DeletePartialMatch(l)
	}
	for _, v := range []*prometheus.CounterVec{m.runs, m.pages, m.responses, m.items, m.errors, m.network, m.saved} {
		v.DeletePartialMatch(l)
	}
}

// NextRun sets the job's next scheduled occurrence.
func (m *Metrics) NextRun(job string, at time.Time) {
	m.nextRun.WithLabelValues(job).Set(float64(at.Unix()))
}

// Progress adds what a run in progress did since its last snapshot to the
// counters, and sets its job's frontier gauge: dashboards see pages,
// responses, items, errors and bytes as they happen. Use it as
// Runner.Progress.
func (m *Metrics) Progress(s Snapshot) {
	if s.Job == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(s.Job, s.RunID, s.Counters)
	m.queued.WithLabelValues(s.Job).Set(float64(s.Queue))
}

// addLocked adds c minus what was already added for run in this process
// (Finished forgets the run, so a later resume here starts from zero).
func (m *Metrics) addLocked(job, run string, c Counters) {
	prev := m.reported[run]
	m.reported[run] = c
	d := c.Sub(prev)
	add := func(cv *prometheus.CounterVec, v int64, labels ...string) {
		if v > 0 {
			cv.WithLabelValues(labels...).Add(float64(v))
		}
	}
	add(m.pages, d.Pages, job)
	add(m.responses, d.Hits, job, "hit")
	add(m.responses, d.Misses, job, "miss")
	add(m.responses, d.Revalidated, job, "revalidated")
	add(m.responses, d.Stale, job, "stale")
	add(m.items, d.Items, job)
	add(m.errors, d.Errors, job)
	add(m.network, d.NetworkBytes, job)
	add(m.saved, d.SavedBytes, job)
}

// Started marks a run of job in progress.
func (m *Metrics) Started(job string) { m.running.WithLabelValues(job).Set(1) }

// Finished records a finished run. The counters are this process's share
// of the run (c), so that a resumed run is not counted twice; what
// Progress already added of it is not added again.
func (m *Metrics) Finished(r *Run, c Counters) {
	m.mu.Lock()
	m.addLocked(r.Job, r.ID, c)
	delete(m.reported, r.ID)
	m.mu.Unlock()
	m.running.WithLabelValues(r.Job).Set(0)
	m.queued.WithLabelValues(r.Job).Set(0)
	m.runs.WithLabelValues(r.Job, string(r.Status)).Inc()
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
