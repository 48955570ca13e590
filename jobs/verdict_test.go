package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/store/storetest"
)

// statusSite serves "/" linking to every path of statuses, each answering
// its status with a page holding one `article.product`; robots.txt
// disallows the paths in blocked.
func statusSite(t *testing.T, statuses map[string]int, blocked ...string) string {
	t.Helper()
	paths := make([]string, 0, len(statuses))
	for p := range statuses {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/robots.txt":
			fmt.Fprintln(w, "User-agent: *")
			for _, b := range blocked {
				fmt.Fprintf(w, "Disallow: %s\n", b)
			}
		case "/":
			fmt.Fprint(w, "<html><body><article class=product><h2>home</h2></article>")
			for _, p := range paths {
				fmt.Fprintf(w, `<a href="%s">%s</a>`, p, p)
			}
		default:
			code, ok := statuses[r.URL.Path]
			if !ok {
				code = http.StatusNotFound
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, "<html><body><article class=product><h2>%s</h2></article></body></html>", r.URL.Path)
		}
	}))
}

// loadYAML writes a job file into dir and loads it.
func loadYAML(t *testing.T, dir, yaml string) *configs.Job {
	t.Helper()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(path)
	if err != nil {
		t.Fatalf("load job: %v", err)
	}
	return job
}

// TestRunVerdict: a 404, a 410 and a page blocked by robots.txt are
// results; network errors and 5xx left after retries are failures, and a
// completed run returns ErrTooManyErrors when it fetched no page or when
// they exceed max_error_ratio. The run record breaks them down.
func TestRunVerdict(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	nine := map[string]int{}
	for i := range 9 {
		nine[fmt.Sprintf("/p%d", i)] = http.StatusOK
	}
	withDead := func(dead map[string]int) map[string]int {
		m := map[string]int{}
		for k, v := range nine {
			m[k] = v
		}
		for k, v := range dead {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name       string
		seed       string // empty: the site's root
		statuses   map[string]int
		blocked    []string
		ratio      string // max_error_ratio, empty for the default
		wantErr    bool
		wantKinds  map[string]int64
		wantStatus map[string]int64
		wantRobots int64
	}{
		{name: "only seed refused", seed: "http://127.0.0.1:1/", wantErr: true,
			wantKinds: map[string]int64{"network": 1}},
		{name: "dead links are results", statuses: withDead(map[string]int{"/gone": 410, "/missing": 404}),
			wantStatus: map[string]int64{"200": 10, "404": 1, "410": 1}},
		{name: "robots-blocked pages are results", statuses: nine, blocked: []string{"/p1", "/p2"},
			wantStatus: map[string]int64{"200": 8}, wantRobots: 2},
		{name: "one 503 in eleven is within the default ratio", statuses: withDead(map[string]int{"/flaky": 503}),
			wantKinds: map[string]int64{"http_503": 1}, wantStatus: map[string]int64{"200": 10, "503": 1}},
		{name: "one 503 fails with max_error_ratio 0", statuses: withDead(map[string]int{"/flaky": 503}), ratio: "0",
			wantErr: true, wantKinds: map[string]int64{"http_503": 1}, wantStatus: map[string]int64{"200": 10, "503": 1}},
		{name: "half the pages 500", statuses: map[string]int{"/a": 500, "/b": 500, "/c": 200}, wantErr: true,
			wantKinds: map[string]int64{"http_500": 2}, wantStatus: map[string]int64{"200": 2, "500": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := statusSite(t, tc.statuses, tc.blocked...)
			seed := tc.seed
			if seed == "" {
				seed = base + "/"
			}
			extra := ""
			if tc.ratio != "" {
				extra = "max_error_ratio: " + tc.ratio + "\n"
			}
			dir := t.TempDir()
			job := loadYAML(t, dir, fmt.Sprintf(`name: verdict
seeds: [%s]
allowed_domains: [127.0.0.1]
rate: {per_host: 1000, burst: 10, parallelism: 2}
retry: {max: 1, backoff: 1ms}
timeout: 5s
extract: {item: article.product, fields: {title: {css: h2}}}
outputs: [{jsonl: {path: %s}}]
%s`, seed, filepath.Join(dir, "out.jsonl"), extra))
			r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
			out, err := r.Run(ctx, job, StartOptions{Fresh: true})
			if out == nil || out.Run.Status != StatusCompleted {
				t.Fatalf("outcome %+v, err %v; want a completed run", out, err)
			}
			if got := errors.Is(err, ErrTooManyErrors); got != tc.wantErr {
				t.Errorf("err = %v; want ErrTooManyErrors: %v", err, tc.wantErr)
			}
			b := out.Run.Breakdown
			if !sameCounts(b.ErrorKinds, tc.wantKinds) {
				t.Errorf("errors by kind = %v, want %v", b.ErrorKinds, tc.wantKinds)
			}
			if tc.wantStatus != nil && !sameCounts(b.Statuses, tc.wantStatus) {
				t.Errorf("statuses = %v, want %v", b.Statuses, tc.wantStatus)
			}
			if got := out.Run.Counters.Robots; got != tc.wantRobots {
				t.Errorf("robots blocked = %d, want %d", got, tc.wantRobots)
			}
			var errs int64
			for _, n := range tc.wantKinds {
				errs += n
			}
			if got := out.Run.Counters.Errors; got != errs {
				t.Errorf("errors = %d, want %d", got, errs)
			}
			if errs > 0 && out.Run.Counters.Retries < errs {
				t.Errorf("retries = %d, want at least one per failed URL (%d)", out.Run.Counters.Retries, errs)
			}
		})
	}
}

func sameCounts(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestWarnWhenExtractFindsNothing: a run whose extract section matches
// nothing on any page says so.
func TestWarnWhenExtractFindsNothing(t *testing.T) {
	s := storetest.Open(t)
	base := statusSite(t, map[string]int{"/a": 200})
	dir := t.TempDir()
	job := loadYAML(t, dir, fmt.Sprintf(`name: nothing
seeds: [%s/]
rate: {per_host: 1000, burst: 10}
extract: {item: div.no-such-thing, fields: {title: {css: h2}}}
outputs: [{jsonl: {path: %s}}]
`, base, filepath.Join(dir, "out.jsonl")))
	var logs strings.Builder
	r := &Runner{Store: s, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if _, err := r.Run(context.Background(), job, StartOptions{}); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "yielded no item on any page") || !strings.Contains(logs.String(), "item=div.no-such-thing") {
		t.Errorf("warnings lack the empty-extract one:\n%s", logs.String())
	}
}

// TestJoinedWorkerJudgesTheRun: a worker that joined a run (Runner.Work,
// the `worker` command) and saw it complete judges it like `run` does:
// ErrTooManyErrors, with the Outcome's Verdict, when failures exceed
// max_error_ratio, nothing when they are within it.
func TestJoinedWorkerJudgesTheRun(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		statuses map[string]int
		wantErr  bool
	}{
		{"within max_error_ratio", map[string]int{"/a": 200, "/b": 200, "/c": 200, "/d": 200, "/e": 200, "/f": 200, "/g": 200, "/h": 200, "/i": 200, "/gone": 404}, false},
		{"half the pages 500", map[string]int{"/a": 500, "/b": 500, "/c": 200}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			base := statusSite(t, tc.statuses)
			dir := t.TempDir()
			job := loadYAML(t, dir, fmt.Sprintf(`name: verdict
seeds: [%s/]
allowed_domains: [127.0.0.1]
rate: {per_host: 1000, burst: 10, parallelism: 2}
retry: {max: 1, backoff: 1ms}
timeout: 5s
extract: {item: article.product, fields: {title: {css: h2}}}
outputs: [{mongodb: {collection: items}}]
`, base))
			// A running run whose starter has not added its seeds yet: the
			// worker crawls it alone and completes it.
			run := &Run{ID: NewRunID(job.Name, time.Now()), Job: job.Name, ConfigPath: job.Source, Options: []string{OptionHostLeases}}
			if err := NewRuns(s, nil).Create(ctx, run); err != nil {
				t.Fatal(err)
			}
			r := &Runner{Store: s, WorkerID: "worker-b", Logger: slog.New(slog.DiscardHandler)}
			outs, err := r.Work(ctx, WorkOptions{RunID: run.ID, LoadJob: func(context.Context, *Run) (*configs.Job, error) { return job, nil }})
			if len(outs) != 1 || outs[0].Run.Status != StatusCompleted {
				t.Fatalf("outcomes %+v, err %v; want the run completed", outs, err)
			}
			if got := errors.Is(err, ErrTooManyErrors); got != tc.wantErr {
				t.Errorf("err = %v; want ErrTooManyErrors: %v", err, tc.wantErr)
			}
			if got := outs[0].Verdict != nil; got != tc.wantErr {
				t.Errorf("Outcome.Verdict = %v; want set: %v", outs[0].Verdict, tc.wantErr)
			}
		})
	}
}
