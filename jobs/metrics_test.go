package jobs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/store/storetest"
)

// scrape returns the /metrics text of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample returns the value of the series line that starts with series
// (name and labels), or -1 when there is none.
func sample(text, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestMetricsDocumentedSeriesExistAtStartup: every metric in the table
// of docs/readme/jobs.md is served as soon as the scheduler has registered
// its jobs, before any run, and crawlcache_build_info says which build.
func TestMetricsDocumentedSeriesExistAtStartup(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "readme", "jobs.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("(?m)^\\| `(crawlcache_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 10 {
		t.Fatalf("found %d metrics in the docs table, want the whole table", len(names))
	}
	m := NewMetrics()
	m.SetVersion("1.2.3")
	m.Register("nightly")
	text := scrape(t, m)
	for _, n := range names {
		if !strings.Contains(text, "\n"+n[1]+"{") {
			t.Errorf("documented metric %s is not served at start-up", n[1])
		}
	}
	if !regexp.MustCompile(`crawlcache_build_info\{goversion="go[^"]+",revision="[^"]+",version="1\.2\.3"\} 1`).MatchString(text) {
		t.Errorf("no crawlcache_build_info with version 1.2.3 in:\n%s", grepLines(text, "build_info"))
	}
	for _, series := range []string{`crawlcache_frontier_queued_urls{job="nightly"}`, `crawlcache_pages_total{job="nightly"}`, `crawlcache_runs_total{job="nightly",status="failed"}`} {
		if got := sample(text, series); got != 0 {
			t.Errorf("%s = %v at start-up, want 0", series, got)
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsMoveDuringARun: while a run waits on a page the origin
// holds, /metrics already counts the pages, responses, items and bytes
// done and the URLs queued; when it ends the counters equal the run's,
// counted once.
func TestMetricsMoveDuringARun(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	hold := make(chan struct{})
	var holdOnce sync.Once
	release := func() { holdOnce.Do(func() { close(hold) }) }
	t.Cleanup(release)
	base := testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/slow" {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		links := ""
		if r.URL.Path == "/" {
			links = `<a href="/slow">s</a><a href="/p1">1</a><a href="/p2">2</a><a href="/p3">3</a>`
		}
		fmt.Fprintf(w, `<html><body><article class="product"><h2>%s</h2><p class="price">1</p></article>%s</body></html>`, r.URL.Path, links)
	}))
	job := writeJob(t, t.TempDir(), "live", base, "")
	m := NewMetrics()
	m.Register(job.Name)
	midRun := make(chan struct{})
	var once sync.Once
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler), Progress: func(snap Snapshot) {
		m.Progress(snap)
		if snap.Pages >= 4 && snap.Items >= 4 { // the home page and p1-p3, written; /slow is held
			once.Do(func() { close(midRun) })
		}
	}}
	type result struct {
		out *Outcome
		err error
	}
	done := make(chan result, 1)
	m.Started(job.Name)
	go func() {
		out, err := r.Run(ctx, job, StartOptions{})
		done <- result{out, err}
	}()
	select {
	case <-midRun:
	case res := <-done:
		t.Fatalf("the run ended before the held page was released: %v", res.err)
	}
	text := scrape(t, m)
	checks := []struct {
		series string
		want   func(float64) bool
		says   string
	}{
		{`crawlcache_pages_total{job="live"}`, func(v float64) bool { return v >= 4 }, ">= 4"},
		{`crawlcache_cache_responses_total{job="live",served="miss"}`, func(v float64) bool { return v >= 4 }, ">= 4"},
		{`crawlcache_items_total{job="live"}`, func(v float64) bool { return v >= 4 }, ">= 4"},
		{`crawlcache_network_bytes_total{job="live"}`, func(v float64) bool { return v > 0 }, "> 0"},
		{`crawlcache_frontier_queued_urls{job="live"}`, func(v float64) bool { return v >= 1 }, ">= 1 (/slow)"},
		{`crawlcache_run_in_progress{job="live"}`, func(v float64) bool { return v == 1 }, "1"},
		{`crawlcache_runs_total{job="live",status="completed"}`, func(v float64) bool { return v == 0 }, "0"},
	}
	for _, c := range checks {
		if got := sample(text, c.series); !c.want(got) {
			t.Errorf("during the run: %s = %v, want %s", c.series, got, c.says)
		}
	}
	release()
	res := <-done
	if res.err != nil {
		t.Fatalf("run: %v", res.err)
	}
	m.Finished(res.out.Run, res.out.Session)
	text = scrape(t, m)
	c := res.out.Session
	for series, want := range map[string]int64{
		`crawlcache_pages_total{job="live"}`:                                c.Pages,
		`crawlcache_cache_responses_total{job="live",served="miss"}`:        c.Misses,
		`crawlcache_items_total{job="live"}`:                                c.Items,
		`crawlcache_network_bytes_total{job="live"}`:                        c.NetworkBytes,
		`crawlcache_frontier_queued_urls{job="live"}`:                       0,
		`crawlcache_runs_total{job="live",status="completed"}`:              1,
		`crawlcache_cache_responses_total{job="live",served="revalidated"}`: 0,
	} {
		if got := sample(text, series); got != float64(want) {
			t.Errorf("after the run: %s = %v, want %d (counted once)", series, got, want)
		}
	}
	if c.Pages != 5 {
		t.Errorf("the run did %d pages, want 5", c.Pages)
	}
}

// TestMetricsNextRun: each scheduled job's next occurrence is a gauge from
// the start, moved on when the occurrence comes.
func TestMetricsNextRun(t *testing.T) {
	s := storetest.Open(t)
	start := time.Date(2026, 12, 3, 10, 20, 0, 0, time.UTC)
	m := NewMetrics()
	jobs := []*configs.Job{{Name: "hourly", Schedule: "@every 1h"}, {Name: "daily", Schedule: "0 3 * * *"}}
	sched, err := NewScheduler(SchedulerOptions{
		Jobs: jobs, Locker: NewLocker(s, nil), Metrics: m, Start: start, Logger: slog.New(slog.DiscardHandler),
		Run: func(context.Context, *configs.Job) (*Outcome, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	text := scrape(t, m)
	for series, want := range map[string]time.Time{
		`crawlcache_next_run_timestamp_seconds{job="hourly"}`: start.Truncate(time.Hour).Add(time.Hour),
		`crawlcache_next_run_timestamp_seconds{job="daily"}`:  time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC),
	} {
		if got := sample(text, series); got != float64(want.Unix()) {
			t.Errorf("%s = %v, want %d (%s)", series, got, want.Unix(), want)
		}
	}
	sched.Tick(context.Background(), start.Add(45*time.Minute))
	sched.Wait()
	want := start.Truncate(time.Hour).Add(2 * time.Hour)
	if got := sample(scrape(t, m), `crawlcache_next_run_timestamp_seconds{job="hourly"}`); got != float64(want.Unix()) {
		t.Errorf("after the 11:00 occurrence: next run %v, want %d (%s)", got, want.Unix(), want)
	}
}
