package jobs

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReporter(t *testing.T) {
	snap := func(pages int64, el time.Duration) Snapshot {
		return Snapshot{Counters: Counters{Pages: pages, Hits: 1, Revalidated: 2, Misses: 3, Errors: 4}, Queue: 5, Elapsed: el}
	}
	tests := []struct {
		name  string
		live  bool
		steps []time.Duration // clock offsets of successive updates
		want  int             // outputs
	}{
		{"live line throttled to 250ms", true, []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond}, 3},
		{"log line every 10s, none at once", false, []time.Duration{0, time.Second, 10 * time.Second, 15 * time.Second, 21 * time.Second}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Now()
			var live, logs bytes.Buffer
			r := &Reporter{W: &live, Live: tc.live, Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			for i, d := range tc.steps {
				clock.Set(start.Add(d))
				r.Update(snap(int64(10*(i+1)), d+time.Second))
			}
			got := strings.Count(live.String(), "\r")
			if !tc.live {
				got = strings.Count(logs.String(), "msg=progress")
			}
			if got != tc.want {
				t.Errorf("outputs = %d, want %d\nlive: %q\nlogs: %s", got, tc.want, live.String(), logs.String())
			}
			if tc.live && !strings.Contains(live.String(), "hits 1 / 304s 2 / misses 3  errors 4  queue 5") {
				t.Errorf("live line %q lacks the counters", live.String())
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	base := Snapshot{Counters: Counters{Pages: 724, Items: 630, Hits: 100, Revalidated: 24, Misses: 600, Errors: 2}, Queue: 251, Elapsed: 65 * time.Second}
	tests := []struct {
		name string
		snap func(Snapshot) Snapshot
		rate float64
		want string
	}{
		{"queue known: an ETA", func(s Snapshot) Snapshot { return s }, 11.1,
			"1m05s  pages 724  11.1/s  ETA 23s  items 630  hits 100 / 304s 24 / misses 600  errors 2  queue 251"},
		{"frontier still being read: no ETA", func(s Snapshot) Snapshot { s.QueueUnknown = true; return s }, 11.1,
			"1m05s  pages 724  11.1/s  items 630  hits 100 / 304s 24 / misses 600  errors 2  queue 251+ (reading the frontier)"},
		{"nothing waiting: no ETA", func(s Snapshot) Snapshot { s.Queue = 0; return s }, 11.1,
			"1m05s  pages 724  11.1/s  items 630  hits 100 / 304s 24 / misses 600  errors 2  queue 0"},
		{"no page yet: no ETA", func(s Snapshot) Snapshot { s.Elapsed = 2 * time.Second; return s }, 0,
			"2s  pages 724  0.0/s  items 630  hits 100 / 304s 24 / misses 600  errors 2  queue 251"},
		{"long run", func(s Snapshot) Snapshot { s.Elapsed = 26*time.Hour + 3*time.Minute; s.Queue = 40000; return s }, 2,
			"1d02h  pages 724  2.0/s  ETA 5h33m  items 630"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ProgressLine(tc.snap(base), tc.rate); !strings.HasPrefix(got, tc.want) {
				t.Errorf("ProgressLine =\n  %q\nwant\n  %q", got, tc.want)
			}
		})
	}
}

// TestReporterRecentRate: the live line's rate is over the last
// RecentWindow, so a crawl that turns from fast cache hits to slow
// downloads shows the slow rate (and an ETA from it), not the average.
func TestReporterRecentRate(t *testing.T) {
	var live bytes.Buffer
	r := &Reporter{W: &live, Live: true, LiveInterval: time.Nanosecond}
	pages := int64(0)
	for sec := 1; sec <= 30; sec++ {
		if sec <= 10 {
			pages += 100 // hits
		} else {
			pages += 2 // downloads
		}
		r.Update(Snapshot{Counters: Counters{Pages: pages}, Queue: 100, Elapsed: time.Duration(sec) * time.Second})
	}
	lines := strings.Split(live.String(), "\r")
	last := strings.TrimSpace(lines[len(lines)-1])
	if !strings.Contains(last, "2.0/s  ETA 50s") {
		t.Errorf("last live line %q: want the last 10s's rate, 2.0/s, and ETA 50s (average would be %.1f/s)", last, float64(pages)/30)
	}
}

func TestSummaryAndMetrics(t *testing.T) {
	fin := time.Date(2026, 11, 27, 4, 10, 0, 0, time.UTC)
	r := &Run{ID: "docs-1", Job: "docs", Status: StatusCompleted, Started: fin.Add(-10 * time.Second), Finished: &fin,
		Counters: Counters{Pages: 100, Hits: 60, Revalidated: 30, Misses: 10, Items: 400, NetworkBytes: 3 << 20, SavedBytes: 1536}}
	var b bytes.Buffer
	WriteSummary(&b, r)
	for _, want := range []string{"docs-1", "completed in 10s", "10.0/s", "revalidated (304) 30", "3.0 MiB downloaded", "1.5 KiB served from cache"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}

	m := NewMetrics()
	m.Register("docs")
	m.Register("idle")
	m.Started("docs")
	m.Finished(r, r.Counters)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	metrics := get("/metrics")
	for _, want := range []string{
		`crawlcache_runs_total{job="docs",status="completed"} 1`,
		`crawlcache_pages_total{job="docs"} 100`,
		`crawlcache_cache_responses_total{job="docs",served="revalidated"} 30`,
		`crawlcache_last_success_timestamp_seconds{job="docs"} 1.7957526e+09`,
		`crawlcache_run_in_progress{job="docs"} 0`,
		`crawlcache_runs_total{job="idle",status="failed"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q, want ok", got)
	}
}
