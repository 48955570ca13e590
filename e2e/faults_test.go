package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/configs"
	"crawlcache/frontier"
	"crawlcache/jobs"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// TestOriginFaults crawls a site that answers with 5xx bursts, timeouts,
// connection resets, 429 with Retry-After, a redirect loop, a body over the
// size limit, invalid UTF-8 and binary data labelled text/html. The run must
// complete, count the pages that failed for good, and fetch and extract
// every product page.
func TestOriginFaults(t *testing.T) { testOriginFaults(t, 60) }

// TestSoakOriginFaults is TestOriginFaults on a larger site (only with
// CRAWLCACHE_SOAK=1).
func TestSoakOriginFaults(t *testing.T) {
	if !soak() {
		t.Skip("set CRAWLCACHE_SOAK=1")
	}
	testOriginFaults(t, 600)
}

func testOriginFaults(t *testing.T, pages int) {
	s := storetest.OpenDirWith(t, t.TempDir(), cache.Migrations()...)
	ctx := context.Background()
	site := smallSite(pages, testsite.Options{
		Seed: 11,
		Faults: testsite.Faults{
			ErrorRate: 0.12, TimeoutRate: 0.04, ResetRate: 0.06, Status429Rate: 0.02,
			RetryAfter: time.Second,
			// Listing page 1 fails twice with 503: retried, not lost.
			FailPaths: map[string]int{"/category/1": 503, "/products/5": 502}, FailTimes: 2,
			RedirectLoop: "/loop", Oversize: "/huge", OversizeBytes: 3 << 20,
			InvalidUTF8: "/bad-utf8", WrongContentType: "/image",
		},
	})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	path := writeJob(t, jobSpec{Name: "faults", Base: srv.URL, Dir: dir, Timeout: "500ms", MaxBodySize: "1MiB", RetryMax: 6})
	job, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &jobs.Runner{Store: s, Logger: slog.New(slog.DiscardHandler), ReportEvery: 100 * time.Millisecond}
	t0 := time.Now()
	out, err := r.Run(ctx, job, jobs.StartOptions{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	elapsed := time.Since(t0)
	c := out.Run.Counters
	counts := site.Counts()
	t.Logf("%d pages in %s; counters %+v", pages, elapsed.Round(time.Millisecond), c)
	t.Logf("origin: %d requests, 5xx %d, timeouts %d, resets %d, 429 %d",
		counts.Total, counts.ByStatus(500)+counts.ByStatus(502)+counts.ByStatus(503)+counts.ByStatus(504),
		counts.ByStatus(testsite.StatusTimeout), counts.ByStatus(testsite.StatusReset), counts.ByStatus(http.StatusTooManyRequests))

	if out.Run.Status != jobs.StatusCompleted {
		t.Fatalf("status = %s (%s), want completed", out.Run.Status, out.Run.Error)
	}
	// The test means nothing unless every fault kind actually happened.
	for _, f := range []struct {
		name string
		n    int
	}{
		{"5xx", counts.ByStatus(500) + counts.ByStatus(502) + counts.ByStatus(503) + counts.ByStatus(504)},
		{"timeouts", counts.ByStatus(testsite.StatusTimeout)},
		{"resets", counts.ByStatus(testsite.StatusReset)},
		{"429", counts.ByStatus(http.StatusTooManyRequests)},
		{"redirect loop", counts.Requests("/loop")},
		{"oversize", counts.Requests("/huge")},
		{"invalid utf-8", counts.Requests("/bad-utf8")},
		{"wrong content type", counts.Requests("/image")},
	} {
		if f.n == 0 {
			t.Errorf("origin answered no %s; the fault was not exercised", f.name)
		}
	}

	// Which URLs failed for good, from the frontier: exactly the redirect
	// loop and the oversized body, and the run's error counter says so.
	front, err := frontier.New(ctx, s, jobs.Database, frontier.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := front.Counts(ctx, out.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	reachable := site.ReachableURLs(srv.URL)
	if fc.Total() != len(reachable) || fc.Pending+fc.Leased != 0 {
		t.Errorf("frontier = %+v, want %d entries all done or failed", fc, len(reachable))
	}
	if fc.Failed != 2 || c.Errors != int64(fc.Failed) {
		t.Errorf("failed urls = %d, errors counter = %d; want 2 and 2 (the redirect loop and the oversized body)", fc.Failed, c.Errors)
	}
	if want := int64(len(reachable) - fc.Failed); c.Pages != want {
		t.Errorf("pages = %d, want %d", c.Pages, want)
	}

	// Every product page was fetched and its item written, in MongoDB and
	// in the JSONL output.
	// (At least once: on a loaded machine a 200 can outlast the client's
	// timeout and be retried.)
	for _, p := range site.Products() {
		if n := counts.Status(p.Path, http.StatusOK); n == 0 {
			t.Errorf("origin never sent %s", p.Path)
		}
	}
	checkItemsOnce(t, "mongodb", mongoItems(t, s, out.Run.ID), site, srv.URL)
	checkItemsOnce(t, "jsonl", jsonlItems(t, dir+"/faults.jsonl"), site, srv.URL)
	checkItemsOnce(t, "csv", csvItems(t, dir+"/faults.csv"), site, srv.URL)
}
