package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/jobs"
	"crawlcache/store"
	"crawlcache/testsite"
)

// startServer starts an embedded store server on dataDir at listen
// ("" = a free loopback port) and a store connected to it by URI whose
// operations give up after selectTimeout when the server is gone.
func startServer(t *testing.T, dataDir, listen string, selectTimeout time.Duration) (*store.Server, *store.Store) {
	t.Helper()
	ctx := context.Background()
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: dataDir, Listen: listen, Logger: slog.New(slog.DiscardHandler), Command: "test"})
	if err != nil {
		t.Fatalf("start store server: %v", err)
	}
	t.Cleanup(srv.Close)
	s, err := store.Open(ctx, store.Options{URI: srv.URI(), ConnectTimeout: selectTimeout, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open store at %s: %v", srv.URI(), err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return srv, s
}

// TestStoreGoesAwayMidRun stops the embedded store server while a crawl
// runs against it: the run must stop with an error naming the store, be
// left resumable, and, once the server is back on the same data directory,
// resume to completion with every item stored once. It measures how many
// pages the origin had to send twice (those in flight when the store died).
func TestStoreGoesAwayMidRun(t *testing.T) { testStoreGoesAway(t, 100) }

// TestSoakStoreGoesAwayMidRun is TestStoreGoesAwayMidRun on a larger site
// (only with CRAWLCACHE_SOAK=1).
func TestSoakStoreGoesAwayMidRun(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	testStoreGoesAway(t, 600)
}

func testStoreGoesAway(t *testing.T, pages int) {
	ctx := context.Background()
	dataDir := t.TempDir()
	srv1, s1 := startServer(t, dataDir, "", 500*time.Millisecond)
	u, err := url.Parse(srv1.URI())
	if err != nil {
		t.Fatal(err)
	}
	listen := u.Host

	site := smallSite(pages, testsite.Options{Seed: 5, Latency: 5 * time.Millisecond})
	// After 30 requests the origin stops the store server and holds every
	// request (uncounted) until the server is gone, so the crawl is still
	// running whatever the machine's speed; the held pages are then sent
	// and meet a store that is no longer there.
	var requests, stoppedAt, stopTime atomic.Int64
	var stopped sync.Once
	gate := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 30 {
			stopped.Do(func() {
				stoppedAt.Store(int64(site.Counts().Bodies))
				stopTime.Store(time.Now().UnixNano())
				go func() {
					srv1.Close()
					close(gate)
				}()
			})
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		site.ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	t.Cleanup(site.Close)
	dir := t.TempDir()
	job, err := configs.Load(writeJob(t, jobSpec{Name: "gone", Base: origin.URL, Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}

	// The same worker id in both runners stands for "the process that held
	// the job is gone" (its frontier leases are taken over at once). A new
	// `crawlcache run` would find the lock holder's pid dead and break the
	// job lock; in one test process the pid stays alive, so the first
	// runner's lock is short and the second waits for it to expire.
	const worker = "e2e-worker"
	r1 := &jobs.Runner{Store: s1, WorkerID: worker, Logger: slog.New(slog.DiscardHandler), ShutdownGrace: time.Second, LockTTL: time.Second}
	t0 := time.Now()
	out, err := r1.Run(ctx, job, jobs.StartOptions{})
	stopDelay := time.Since(time.Unix(0, stopTime.Load()))
	t.Logf("first run: store stopped at %d origin bodies, %s after the start; the run returned %s later (the server drains for ~3 s): %v",
		stoppedAt.Load(), time.Unix(0, stopTime.Load()).Sub(t0).Round(time.Millisecond), stopDelay.Round(time.Millisecond), err)
	if err == nil {
		t.Fatalf("run with the store stopped at %d origin bodies: no error (outcome %+v)", stoppedAt.Load(), out)
	}
	// The wording depends on which store operation failed first; see
	// TestStoreUnreachableErrorNamesStore for what it should say.
	if errors.Is(err, context.Canceled) {
		t.Errorf("error %v is a cancellation, want a store error", err)
	}
	mid := site.Counts()
	<-srv1.Done()

	// The server comes back on the same data directory and address.
	_, s2 := startServer(t, dataDir, listen, 5*time.Second)
	runs := jobs.NewRuns(s2, nil)
	last, err := runs.Last(ctx, "gone")
	if err != nil || last == nil {
		t.Fatalf("run record after the store came back: %v, %v", last, err)
	}
	t.Logf("run record after the outage: status %s, %d pages, error %q", last.Status, last.Counters.Pages, last.Error)
	if last.Status == jobs.StatusCompleted {
		t.Fatalf("run record says completed after the store died mid-run")
	}

	r2 := &jobs.Runner{Store: s2, WorkerID: worker, Logger: slog.New(slog.DiscardHandler)}
	err = untilUnlocked(t, func() error { _, err := r2.Run(ctx, job, jobs.StartOptions{}); return err })
	var ue *jobs.UnfinishedError
	if !errors.As(err, &ue) || ue.Run.ID != last.ID {
		t.Fatalf("plain run after the outage: err = %v, want an UnfinishedError for %s", err, last.ID)
	}
	res, err := r2.Run(ctx, job, jobs.StartOptions{Resume: true})
	if err != nil {
		t.Fatalf("resume after the store came back: %v", err)
	}
	if res.Run.ID != last.ID || res.Run.Status != jobs.StatusCompleted || res.Run.Resumes != 1 {
		t.Errorf("resumed run %s status %s resumes %d, want %s completed 1", res.Run.ID, res.Run.Status, res.Run.Resumes, last.ID)
	}

	counts := site.Counts()
	twice := 0
	for _, p := range counts.Paths() {
		switch n := counts.Status(p, http.StatusOK); {
		case n > 1:
			twice++
			t.Logf("origin sent %s %d times (%d before the outage)", p, n, mid.Status(p, http.StatusOK))
		case n == 0 && strings.HasPrefix(p, "/products/"):
			t.Errorf("origin never sent %s", p)
		}
	}
	t.Logf("%d of %d pages fetched from the origin twice; %d bodies sent before the outage", twice, len(counts.Paths()), mid.Bodies)
	// Only pages in flight when the store died may be fetched again: at
	// most the fetch stage (2×parallelism) plus the pipeline's buffers.
	if twice > 16 {
		t.Errorf("%d pages fetched twice, want at most 16 (the pages in flight)", twice)
	}
	checkItemsOnce(t, "mongodb", mongoItems(t, s2, res.Run.ID), site, origin.URL)
	checkItemsOnce(t, "jsonl", jsonlItems(t, dir+"/gone.jsonl"), site, origin.URL)
	checkItemsOnce(t, "csv", csvItems(t, dir+"/gone.csv"), site, origin.URL)
}

// TestStoreUnreachableErrorNamesStore runs a job on a store whose server
// stopped after it was opened (the same state as mid-run, made
// deterministic): the error a user sees must say that the store is
// unreachable and which one, not only the driver's topology dump.
func TestStoreUnreachableErrorNamesStore(t *testing.T) {
	srv, s := startServer(t, t.TempDir(), "", 500*time.Millisecond)
	srv.Close()
	dir := t.TempDir()
	job, err := configs.Load(writeJob(t, jobSpec{Name: "nostore", Base: "http://127.0.0.1:9", Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	r := &jobs.Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	_, err = r.Run(context.Background(), job, jobs.StartOptions{})
	if err == nil {
		t.Fatal("run on a stopped store: no error")
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	u, _ := url.Parse(s.URI)
	if !strings.Contains(first, "store") || !strings.Contains(first, u.Host) || !errors.Is(err, store.ErrUnreachable) {
		t.Errorf("run on a stopped store: error %q; want it to say the store at %s is unreachable (and wrap store.ErrUnreachable)", first, u.Host)
	}
}

// untilUnlocked calls run until it returns something other than ErrLocked
// (for at most 30 s) and returns that.
func untilUnlocked(t *testing.T, run func() error) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := run()
		if !errors.Is(err, jobs.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSoakStoreGoesAwayCLI is the store outage as a user meets it: `crawlcache
// run --store URI` in a child process, the server stopped mid-run, then
// `crawlcache resume --job` once it is back on the same data directory and
// address. It measures how long the command takes to give up with the
// default timeouts (only with CRAWLCACHE_SOAK=1: that is tens of seconds).
func TestSoakStoreGoesAwayCLI(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	requireCommands(t, "run", "resume")
	dataDir := t.TempDir()
	srv1, _ := startServer(t, dataDir, "", 5*time.Second)
	u, err := url.Parse(srv1.URI())
	if err != nil {
		t.Fatal(err)
	}
	site := smallSite(300, testsite.Options{Seed: 6, Latency: 5 * time.Millisecond})
	g := newGatedOrigin(t, site)
	dir := t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "gonecli", Base: g.srv.URL, Dir: dir})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := cliCommand(ctx, dir, nil, "run", "--json", "--store", srv1.URI(), cfg)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "30 pages", func() bool { return site.Counts().Bodies >= 30 })
	g.close()
	stopped := time.Now()
	srv1.Close()
	g.open()
	err = cmd.Wait()
	t.Logf("run gave up %s after the store was stopped (exit %v); stderr:\n%s", time.Since(stopped).Round(time.Millisecond), err, stderr.String())
	if cmd.ProcessState.ExitCode() == 0 {
		t.Errorf("run with the store stopped mid-run exited 0")
	}

	_, s2 := startServer(t, dataDir, u.Host, 5*time.Second)
	res := runCLI(t, dir, nil, "resume", "--json", "--job", "gonecli", "--store", s2.URI)
	if res.Code != 0 {
		t.Fatalf("resume: exit %d, stderr %s", res.Code, res.Stderr)
	}
	m := runJSON(t, res)
	counts := site.Counts()
	twice := 0
	for _, p := range counts.Paths() {
		if counts.Status(p, http.StatusOK) > 1 {
			twice++
		}
	}
	t.Logf("resumed: %v; %d URLs sent twice by the origin", m["status"], twice)
	if m["status"] != "completed" {
		t.Errorf("resume status %v, want completed", m["status"])
	}
	checkItemsOnce(t, "mongodb", mongoItems(t, s2, m["run_id"].(string)), site, g.srv.URL)
}

// TestSoakUnreachableStoreURI runs a job against a URI where nothing
// listens: a clear error naming the URI, after the connect timeout (only
// with CRAWLCACHE_SOAK=1: it waits 10 s).
func TestSoakUnreachableStoreURI(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	requireCommands(t, "run")
	dir := t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "nouri", Base: "http://127.0.0.1:9", Dir: dir})
	t0 := time.Now()
	res := runCLI(t, dir, nil, "run", "--store", "mongodb://127.0.0.1:1/", cfg)
	t.Logf("exit %d after %s: %s", res.Code, time.Since(t0).Round(time.Millisecond), res.Stderr)
	if res.Code == 0 || !strings.Contains(res.Stderr, "127.0.0.1:1") || !strings.Contains(res.Stderr, "unreachable") {
		t.Errorf("run on an unreachable URI: exit %d, stderr %q; want non-zero and an error naming the URI", res.Code, res.Stderr)
	}
}
