package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/configs"
	"crawlcache/jobs"
	"crawlcache/store"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// gatedOrigin serves a site and can hold new requests before they reach it
// (so they are not counted): the state of a crawl whose requests are
// waiting on a slow origin.
type gatedOrigin struct {
	site   *testsite.Site
	srv    *httptest.Server
	active atomic.Int64 // requests inside the site's handler

	mu    sync.Mutex
	gate  chan struct{} // nil when open
	held  atomic.Int64  // requests waiting at the gate
	total atomic.Int64  // requests ever held
}

func newGatedOrigin(t *testing.T, site *testsite.Site) *gatedOrigin {
	g := &gatedOrigin{site: site}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	t.Cleanup(site.Close)
	return g
}

func (g *gatedOrigin) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.held.Add(1)
		g.total.Add(1)
		select {
		case <-gate:
			g.held.Add(-1)
		case <-r.Context().Done():
			g.held.Add(-1)
			return
		}
	}
	g.active.Add(1)
	defer g.active.Add(-1)
	g.site.ServeHTTP(w, r)
}

// close holds every new request until open.
func (g *gatedOrigin) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
}

func (g *gatedOrigin) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

// ownerURI returns the URI of the embedded server a crawlcache process
// runs on dataDir, from its owner file.
func ownerURI(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "crawlcache.owner.json"))
	if err != nil {
		return "", err
	}
	var o store.Owner
	if err := json.Unmarshal(b, &o); err != nil {
		return "", err
	}
	return o.URI, nil
}

// killMode says when the child is killed.
type killMode int

const (
	// killQuiesced holds new requests at the origin, waits until every
	// response the origin sent is in the cache, then kills: pages waiting
	// at the origin, pages in the pipeline and unacknowledged frontier
	// entries are lost with the process, but no response body is. The
	// origin must then send every page exactly once in total.
	killQuiesced killMode = iota
	// killRaw kills at once after k bodies, wherever the child is
	// (responses on the wire or not yet stored are lost): refetches are
	// measured, not forbidden.
	killRaw
)

// TestKillResume is kill -9 at random points of a crawl through the real
// command line (`crawlcache run`, then `crawlcache resume --job`), repeated
// until the run completes: every page is downloaded from the origin once in
// total and every item is stored once in MongoDB and in the JSONL output.
func TestKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	testKillResume(t, killQuiesced, 50, 3, 0)
}

// TestSoakKillResume is TestKillResume with more pages and kills (only with
// CRAWLCACHE_SOAK=1).
func TestSoakKillResume(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	testKillResume(t, killQuiesced, 400, 12, 0)
}

// TestSoakKillResumeRaw kills at truly random instants (only with
// CRAWLCACHE_SOAK=1) and reports how many pages the origin had to send more
// than once: those whose response was on the wire or not yet stored.
func TestSoakKillResumeRaw(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	testKillResume(t, killRaw, 400, 12, 0)
}

// TestRunCountersAfterKill kills a run once and resumes it: the completed
// run record (what `runs show` and `run --json` print) must count every
// page of the run, including those fetched by the killed session.
func TestRunCountersAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	run, reachable := testKillResume(t, killQuiesced, 30, 1, 0.7)
	if run.Counters.Pages != int64(reachable) || run.Counters.Items != int64(reachable) {
		t.Errorf("completed run counts %d pages and %d items, want %d and %d (every reachable page, one item each)",
			run.Counters.Pages, run.Counters.Items, reachable, reachable)
	}
	checkSummaryOnce(t, run, reachable)
}

// TestRunSummaryAfterRawKill kills a run at once, wherever it is (reports
// of its last seconds lost, responses received but not acknowledged
// fetched again by the resume), and resumes it: the completed run's parsed
// and reused pages, responses by status and errors by kind count every
// page once.
func TestRunSummaryAfterRawKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	run, reachable := testKillResume(t, killRaw, 30, 1, 0.6)
	checkSummaryOnce(t, run, reachable)
}

// checkSummaryOnce asserts that the completed run's summary counts each of
// the reachable pages (HTML, status 200, none failed) once.
func checkSummaryOnce(t *testing.T, run *jobs.Run, reachable int) {
	t.Helper()
	c, b := run.Counters, run.Breakdown
	if c.Parsed+c.Reused != int64(reachable) {
		t.Errorf("completed run counts %d parsed + %d reused pages, want %d in all (every reachable page once)", c.Parsed, c.Reused, reachable)
	}
	if got := b.Statuses["200"]; got != int64(reachable) || len(b.Statuses) != 1 {
		t.Errorf("completed run's responses by status = %v, want 200 ×%d only", b.Statuses, reachable)
	}
	if c.Errors != 0 || len(b.ErrorKinds) != 0 {
		t.Errorf("completed run counts %d errors (%v), want none", c.Errors, b.ErrorKinds)
	}
}

// testKillResume runs the kill/resume loop and checks the origin counts and
// the items; it returns the final run record and the number of reachable
// URLs. fixedAt > 0 kills at that fraction of the reachable pages instead of
// at random points.
func testKillResume(t *testing.T, mode killMode, pages, kills int, fixedAt float64) (*jobs.Run, int) {
	requireCommands(t, "run", "resume")
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CRAWLCACHE_E2E_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("kill points from seed %d (set CRAWLCACHE_E2E_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	site := smallSite(pages, testsite.Options{Seed: 13, Latency: 3 * time.Millisecond, NoRequestLog: true})
	g := newGatedOrigin(t, site)
	base := g.srv.URL
	dataDir, dir := t.TempDir(), t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "killed", Base: base, Dir: dir})
	job, err := configs.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reachable := len(site.ReachableURLs(base))

	done, killed := false, 0
	var sessions []string
	for i := 0; !done; i++ {
		// Flags before the file: see TestCLIFlagsAfterFile.
		args := []string{"run", "--data-dir", dataDir, cfg}
		if i > 0 {
			args = []string{"resume", "--job", "killed", "--data-dir", dataDir}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := cliCommand(ctx, dir, nil, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start crawlcache %v: %v", args, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		before := site.Counts().Bodies
		if killed < kills && before < reachable-2 {
			target := before + 1 + rng.IntN(max(1, (reachable-before)/2))
			if fixedAt > 0 {
				target = int(fixedAt * float64(reachable))
			}
			var exitErr error
			finished := false
			deadline := time.Now().Add(90 * time.Second)
			for site.Counts().Bodies < target && !finished {
				select {
				case exitErr = <-exited:
					finished = true
				case <-time.After(5 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("session %d: no progress to %d bodies (stderr: %s)", i, target, stderr.String())
				}
			}
			if finished {
				cancel()
				sessions = append(sessions, "completed before the kill point")
				if exitErr != nil {
					t.Fatalf("session %d (%v) exited early: %v\nstderr: %s", i, args, exitErr, stderr.String())
				}
				done = true
				break
			}
			if mode == killQuiesced {
				g.close()
				waitCached(t, dataDir, job.Cache, g, base)
			}
			at, held := site.Counts().Bodies, g.held.Load()
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			<-exited
			cancel()
			g.open()
			killed++
			sessions = append(sessions, "killed at "+strconv.Itoa(at)+" bodies, "+strconv.FormatInt(held, 10)+" requests held at the origin")
			continue
		}
		err := <-exited
		cancel()
		if err != nil {
			t.Fatalf("session %d (%v): %v\nstdout: %s\nstderr: %s", i, args, err, stdout.String(), stderr.String())
		}
		sessions = append(sessions, "completed")
		done = true
	}
	t.Logf("%d sessions: %v", len(sessions), sessions)
	if killed == 0 {
		t.Fatalf("the crawl was never killed")
	}

	s := storetest.OpenDirWith(t, dataDir, cache.Migrations()...)
	ctx := context.Background()
	run, err := jobs.NewRuns(s, nil).Last(ctx, "killed")
	if err != nil || run == nil {
		t.Fatalf("run record: %v %v", run, err)
	}
	if run.Status != jobs.StatusCompleted || run.Resumes != killed {
		t.Errorf("run %s status %s resumes %d, want completed after %d resumes", run.ID, run.Status, run.Resumes, killed)
	}
	counts := site.Counts()
	twice := 0
	for _, p := range counts.Paths() {
		n := counts.Status(p, http.StatusOK)
		if n > 1 {
			twice++
			if mode == killQuiesced {
				t.Errorf("origin sent %s %d times, want once", p, n)
			}
		}
	}
	for _, p := range site.Products() {
		if counts.Status(p.Path, http.StatusOK) == 0 {
			t.Errorf("origin never sent %s", p.Path)
		}
	}
	t.Logf("origin: %d bodies for %d reachable URLs (+ robots.txt); %d URLs sent more than once; run counters %+v", counts.Bodies, reachable, twice, run.Counters)
	// The counters are checked by TestRunCountersAfterKill.
	checkItemsOnce(t, "mongodb", mongoItems(t, s, run.ID), site, base)
	checkItemsOnce(t, "jsonl", jsonlItems(t, filepath.Join(dir, "killed.jsonl")), site, base)
	checkItemsOnce(t, "csv", csvItems(t, filepath.Join(dir, "killed.csv")), site, base)
	return run, reachable
}

// waitCached waits until the response of every page the origin sent a body
// for is in the cache of the crawlcache process serving dataDir.
func waitCached(t *testing.T, dataDir string, policy cache.Policy, g *gatedOrigin, base string) {
	site := g.site
	t.Helper()
	uri, err := ownerURI(dataDir)
	if err != nil {
		t.Fatalf("the child's store: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URI: uri, Logger: slog.New(slog.DiscardHandler), Migrations: cache.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	coll := st.Collection(cache.DefaultDatabase, cache.ResponsesCollection)
	cached := map[string]bool{}
	for {
		missing := ""
		busy := g.active.Load()
		counts := site.Counts()
		for _, p := range counts.Paths() {
			if counts.Status(p, http.StatusOK) == 0 || cached[p] {
				continue
			}
			key, err := cache.KeyForURL(http.MethodGet, base+p, policy)
			if err != nil {
				t.Fatal(err)
			}
			_, err = coll.Get(ctx, key)
			switch {
			case err == nil:
				cached[p] = true
			case errors.Is(err, store.ErrNotFound):
				missing = p
			default:
				t.Fatalf("look up %s in the child's cache: %v", p, err)
			}
		}
		if missing == "" && busy == 0 && g.active.Load() == 0 && site.Counts().Bodies == counts.Bodies {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the child never cached %s", missing)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
