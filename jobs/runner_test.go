package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/store"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// Environment of the helper process started by TestResumeAfterSIGKILL.
const (
	helperEnv       = "CRAWLCACHE_JOBS_HELPER"
	helperStoreEnv  = "CRAWLCACHE_JOBS_HELPER_STORE"
	helperConfigEnv = "CRAWLCACHE_JOBS_HELPER_CONFIG"
	// helperFaultEnv names a step of the end of a run (Runner.fault) at
	// which the helper exits at once with helperFaultExit, as a crash.
	helperFaultEnv  = "CRAWLCACHE_JOBS_HELPER_FAULT"
	helperFaultExit = 3
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain runs a job like `crawlcache run` does, in a child process
// that the test kills.
func helperMain() int {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{URI: os.Getenv(helperStoreEnv), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	job, err := configs.Load(os.Getenv(helperConfigEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	// A store reached by URI makes the run use host leases; a short lease
	// bounds how long the resume waits for the dead child's host lease.
	r := &Runner{Store: s, ReportEvery: 50 * time.Millisecond, FrontierLease: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	if step := os.Getenv(helperFaultEnv); step != "" {
		r.fault = func(at string) {
			if at == step {
				os.Exit(helperFaultExit) // no deferred call runs: as kill -9
			}
		}
	}
	if _, err := r.Run(ctx, job, StartOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// writeJob writes a job config crawling base with items to MongoDB
// collection "items" and to dir/items.jsonl, and loads it.
func writeJob(t *testing.T, dir, name, base string, extra string) *configs.Job {
	t.Helper()
	yaml := fmt.Sprintf(`name: %s
seeds: [%s/]
rate: {per_host: 1000, burst: 10, parallelism: 4}
retry: {max: 1, backoff: 10ms}
extract:
  item: article.product
  fields:
    title: {css: h2}
    price: {css: .price}
outputs:
  - mongodb: {collection: items}
  - jsonl: {path: %s}
%s`, name, base, filepath.Join(dir, name+".jsonl"), extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(path)
	if err != nil {
		t.Fatalf("load job: %v", err)
	}
	return job
}

func smallSite(pages int, latency time.Duration) *testsite.Site {
	return testsite.New(testsite.Options{Pages: pages, Seed: 1, MinSize: 2 << 10, MaxSize: 6 << 10, Latency: latency})
}

func TestRunLifecycleAndRevalidate(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(12, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	job := writeJob(t, dir, "life", srv.URL, "")
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}

	first, err := r.Run(ctx, job, StartOptions{})
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	c := first.Run.Counters
	if first.Run.Status != StatusCompleted {
		t.Fatalf("status = %s, want completed", first.Run.Status)
	}
	bodies := site.Counts().Bodies
	pages := int64(len(site.ReachableURLs(srv.URL)))
	checks := []struct {
		name      string
		got, want int64
	}{
		{"pages", c.Pages, pages},
		{"misses", c.Misses, pages},
		{"hits", c.Hits, 0},
		{"errors", c.Errors, 0},
		{"session pages", first.Session.Pages, pages},
		{"workers", int64(len(first.Run.Workers)), 1},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("first run %s = %d, want %d", ck.name, ck.got, ck.want)
		}
	}
	if c.Items == 0 || c.NetworkBytes == 0 {
		t.Errorf("first run items = %d, network bytes = %d, want both > 0", c.Items, c.NetworkBytes)
	}
	if first.Run.ConfigHash != job.Hash || first.Run.ConfigPath != job.Source || first.Run.Finished == nil {
		t.Errorf("run record = %+v, want config hash/path and a finish time", first.Run)
	}

	// A plain second run: everything is a fresh hit (expire_after never).
	second, err := r.Run(ctx, job, StartOptions{})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := second.Run.Counters; got.Hits != pages || got.Misses != 0 || site.Counts().Bodies != bodies {
		t.Errorf("second run hits/misses = %d/%d, origin bodies %d→%d; want %d/0 and no new body", got.Hits, got.Misses, bodies, site.Counts().Bodies, pages)
	}

	// --revalidate: every page is a 304 from the origin, items still written.
	before := site.Counts()
	third, err := r.Run(ctx, job, StartOptions{Revalidate: true})
	if err != nil {
		t.Fatalf("revalidating run: %v", err)
	}
	after := site.Counts()
	if got := third.Run.Counters; got.Revalidated != pages || got.Misses != 0 || got.Items != c.Items {
		t.Errorf("revalidating run revalidated/misses/items = %d/%d/%d, want %d/0/%d", got.Revalidated, got.Misses, got.Items, pages, c.Items)
	}
	if after.Bodies != before.Bodies || after.NotModified-before.NotModified < int(pages) {
		t.Errorf("origin during revalidation: bodies +%d, 304s +%d; want +0 and +%d", after.Bodies-before.Bodies, after.NotModified-before.NotModified, pages)
	}
	if third.Run.Options == nil || third.Run.Options[0] != OptionRevalidate {
		t.Errorf("run options = %v, want [revalidate]", third.Run.Options)
	}

	list, err := NewRuns(s, nil).List(ctx, ListOptions{Job: "life"})
	if err != nil || len(list) != 3 || list[0].ID != third.Run.ID {
		t.Errorf("runs ls = %d runs (err %v), want 3 newest first", len(list), err)
	}
}

func TestRunRefusesLockedAndUnfinished(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(5, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "guard", srv.URL, "")
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	db := s

	other, err := NewLocker(db, nil).Acquire(ctx, "guard", "someone-else", "guard-x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, job, StartOptions{}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "someone-else") {
		t.Errorf("run while locked: err = %v, want ErrLocked naming the holder", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A run record left "running" by a dead process.
	stale := &Run{ID: "guard-20261127T000000Z-0000", Job: "guard", Status: StatusRunning, Started: time.Now().Add(-time.Hour)}
	if err := NewRuns(db, nil).Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(ctx, job, StartOptions{})
	var ue *UnfinishedError
	if !errors.As(err, &ue) || ue.Run.ID != stale.ID || ue.Run.Status != StatusInterrupted {
		t.Fatalf("run after a crashed run: err = %v, want UnfinishedError for %s marked interrupted", err, stale.ID)
	}
	out, err := r.Run(ctx, job, StartOptions{Fresh: true})
	if err != nil || out.Run.ID == stale.ID || out.Run.Status != StatusCompleted {
		t.Errorf("run --fresh: err = %v, run %+v; want a new completed run", err, out)
	}
	if _, err := r.Resume(ctx, out.Run.ID, job); !errors.Is(err, ErrNotResumable) {
		t.Errorf("resume of a completed run: err = %v, want ErrNotResumable", err)
	}
}

func TestRunInterruptedThenResumed(t *testing.T) {
	s := storetest.Open(t)
	site := smallSite(24, 2*time.Millisecond)
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	job := writeJob(t, dir, "intr", srv.URL, "")
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler), Progress: func(sn Snapshot) {
		if sn.Pages >= 8 {
			once.Do(cancel)
		}
	}}
	out, err := r.Run(ctx, job, StartOptions{})
	if !errors.Is(err, crawler.ErrInterrupted) || out == nil || out.Run.Status != StatusInterrupted {
		t.Fatalf("interrupted run: err = %v, outcome %+v; want ErrInterrupted and status interrupted", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "intr.jsonl")); !os.IsNotExist(err) {
		t.Errorf("jsonl output of an interrupted run exists (err %v); want it only after completion", err)
	}
	r.Progress = nil
	res, err := r.Resume(context.Background(), out.Run.ID, job)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.Run.ID != out.Run.ID || res.Run.Status != StatusCompleted || res.Run.Resumes != 1 || !res.Resumed {
		t.Errorf("resumed run = %+v, want the same id completed with resumes 1", res.Run)
	}
	checkOnce(t, s, site, srv.URL, out.Run.ID, filepath.Join(dir, "intr.jsonl"))
}

// TestResumeAfterSIGKILL crawls in a child process, kills it with SIGKILL
// midway, resumes in this process, and checks that the origin sent every
// page's body once and every item is stored once (MongoDB and JSONL).
func TestResumeAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(50, 3*time.Millisecond)

	// The gate lets the test stop new requests from reaching the site, so
	// that the kill happens when every response the origin sent is cached
	// and acknowledged: a response killed in flight would be sent twice by
	// any crawler, which is not what this test is about.
	// The site closes the gate itself after gateAfter requests, however
	// fast the child crawls.
	const gateAfter = 20
	var (
		mu       sync.Mutex
		gated    bool
		inflight int
		served   int
		reopened bool
	)
	gate := make(chan struct{})
	srv := testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if !reopened && served >= gateAfter {
			gated = true
		}
		served++
		if gated {
			mu.Unlock()
			// Held until the child is dead, then dropped: this request
			// was the child's, and the site never counts it.
			select {
			case <-gate:
			case <-r.Context().Done():
			}
			panic(http.ErrAbortHandler)
		}
		inflight++
		mu.Unlock()
		defer func() {
			mu.Lock()
			inflight--
			mu.Unlock()
		}()
		site.ServeHTTP(w, r)
	}))

	dir := t.TempDir()
	job := writeJob(t, dir, "killed", srv, "")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperStoreEnv+"="+s.URI, helperConfigEnv+"="+job.Source)
	stderr, _ := cmd.StderrPipe()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var childErr strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			childErr.WriteString(sc.Text() + "\n")
		}
	}()
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	runs := NewRuns(s, nil)
	var run *Run
	poll(t, 30*time.Second, "the child's run record to show pages done and the site to close its gate", func() bool {
		last, err := runs.Last(ctx, "killed")
		if err != nil || last == nil {
			return false
		}
		run = last
		mu.Lock()
		defer mu.Unlock()
		return last.Counters.Pages > 0 && gated
	})
	t.Logf("%s: child at %d pages", time.Since(t0), run.Counters.Pages)
	front, err := frontier.New(ctx, s, Database, frontier.Options{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "every response sent to be acknowledged", func() bool {
		mu.Lock()
		busy := inflight != 0
		mu.Unlock()
		if busy {
			return false
		}
		n, err := front.Counts(ctx, run.ID)
		served := 0
		for _, p := range site.Counts().Paths() {
			if p != "/robots.txt" {
				served++
			}
		}
		return err == nil && n.Done == served
	})
	t.Logf("%s: quiesced", time.Since(t0))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	_ = cmd.Wait()
	killed = true
	mu.Lock()
	gated, reopened = false, true
	mu.Unlock()
	close(gate)
	mid := site.Counts()
	if mid.Bodies >= len(site.ReachableURLs(srv)) {
		t.Fatalf("the child fetched all %d pages before the kill; nothing left to resume", mid.Bodies)
	}

	t.Logf("%s: killed", time.Since(t0))
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	_, err = r.Run(ctx, job, StartOptions{})
	var ue *UnfinishedError
	if !errors.As(err, &ue) || ue.Run.ID != run.ID {
		t.Fatalf("run after the kill: err = %v, want UnfinishedError for %s", err, run.ID)
	}
	out, err := r.Resume(ctx, run.ID, job)
	if err != nil {
		t.Fatalf("resume: %v (child stderr: %s)", err, childErr.String())
	}
	if out.Run.Status != StatusCompleted || len(out.Run.Workers) != 2 {
		t.Errorf("resumed run status %s with %d workers, want completed with 2", out.Run.Status, len(out.Run.Workers))
	}
	t.Logf("%s: resumed", time.Since(t0))
	t.Logf("killed after %d bodies; resumed run: %+v", mid.Bodies, out.Run.Counters)
	checkOnce(t, s, site, srv, run.ID, filepath.Join(dir, "killed.jsonl"))
}

// TestJoinRunningRun: a second worker joins a running run; the run
// completes once, lists both workers, and no page is downloaded twice.
func TestJoinRunningRun(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(30, 3*time.Millisecond)
	srv := site.Start()
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	yaml := fmt.Sprintf("name: fleet\nseeds: [%s/]\nrate: {per_host: 1000, burst: 10, parallelism: 4}\nextract: {item: article.product, fields: {title: {css: h2}}}\noutputs: [{mongodb: {collection: items}}]\n", srv.URL)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	var once sync.Once
	a := &Runner{Store: s, WorkerID: "worker-a", HostLeases: true, Logger: slog.New(slog.DiscardHandler), ReportEvery: 50 * time.Millisecond}
	a.Progress = func(sn Snapshot) {
		if sn.Pages >= 3 {
			once.Do(func() {
				last, err := NewRuns(s, nil).Last(ctx, "fleet")
				if err == nil && last != nil {
					started <- last.ID
				}
			})
		}
	}
	type result struct {
		out *Outcome
		err error
	}
	resA := make(chan result, 1)
	go func() {
		out, err := a.Run(ctx, job, StartOptions{})
		resA <- result{out, err}
	}()
	runID := <-started
	b := &Runner{Store: s, WorkerID: "worker-b", Logger: slog.New(slog.DiscardHandler)}
	outB, errB := b.Join(ctx, runID, job)
	ra := <-resA
	if ra.err != nil || errB != nil {
		t.Fatalf("worker a: %v; worker b: %v", ra.err, errB)
	}
	if outB.Run.Status != StatusCompleted || len(outB.Run.Workers) != 2 || !hasOption(outB.Run, OptionHostLeases) {
		t.Errorf("run after both workers: status %s, %d workers, options %v; want completed, 2, host_leases", outB.Run.Status, len(outB.Run.Workers), outB.Run.Options)
	}
	counts := site.Counts()
	for _, p := range counts.Paths() {
		if n := counts.Status(p, http.StatusOK); n != 1 {
			t.Errorf("origin sent %s %d times, want once", p, n)
		}
	}
	t.Logf("worker a %+v, worker b %+v", ra.out.Session, outB.Session)
	if _, err := b.Join(ctx, runID, job); !errors.Is(err, ErrNotResumable) {
		t.Errorf("join of a completed run: err = %v, want ErrNotResumable", err)
	}
}

// TestConcurrentRunsAndSchedulers: two Runners started at once on one job
// give one run and one ErrLocked; two schedulers with real Runners and the
// same clock start a due job once.
func TestConcurrentRunsAndSchedulers(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(8, 3*time.Millisecond)
	srv := site.Start()
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "twice", srv.URL, "schedule: '@every 1h'\n")
	quiet := slog.New(slog.DiscardHandler)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Runner{Store: s, WorkerID: fmt.Sprintf("runner-%d", i), Logger: quiet}
			_, errs[i] = r.Run(ctx, job, StartOptions{})
		}()
	}
	wg.Wait()
	ok, locked := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrLocked):
			locked++
		default:
			t.Errorf("concurrent run: %v", err)
		}
	}
	if ok != 1 || locked != 1 {
		t.Errorf("concurrent runs: %d completed, %d locked; want 1 and 1", ok, locked)
	}

	clock := newFakeClock()
	var scheds []*Scheduler
	for i := range 2 {
		r := &Runner{Store: s, WorkerID: fmt.Sprintf("sched-%d", i), Logger: quiet}
		sc, err := NewScheduler(SchedulerOptions{
			Jobs: []*configs.Job{job}, Locker: NewLocker(s, clock.Now), Logger: quiet,
			Owner: fmt.Sprintf("sched-%d", i), Start: clock.Now(),
			Run: func(ctx context.Context, j *configs.Job) (*Outcome, error) {
				return r.Run(ctx, j, StartOptions{Resume: true})
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, sc)
	}
	due := clock.Now().Add(time.Hour)
	started := 0
	for _, sc := range scheds {
		started += len(sc.Tick(ctx, due))
	}
	for _, sc := range scheds {
		sc.Wait()
	}
	list, err := NewRuns(s, nil).List(ctx, ListOptions{Job: "twice"})
	if err != nil {
		t.Fatal(err)
	}
	if started != 1 || len(list) != 2 {
		t.Errorf("schedulers started %d runs, %d run records in all; want 1 and 2", started, len(list))
	}
}
