package crawler

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/pipeline"
	"crawlcache/store"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// env is one store with a frontier, shared by the runs of a test (so a
// second run sees the first run's cache).
type env struct {
	t     *testing.T
	st    *store.Store
	front *frontier.Frontier
}

// envDatabase holds a test's frontier and cache.
const envDatabase = "crawlcache"

func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.Open(t)
	f, err := frontier.New(context.Background(), st, envDatabase, frontier.Options{Logger: quiet()})
	if err != nil {
		t.Fatalf("frontier.New: %v", err)
	}
	return &env{t: t, st: st, front: f}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newSite serves a small generated shop with small pages.
func newSite(t *testing.T, opts testsite.Options) (*testsite.Site, string) {
	t.Helper()
	if opts.MinSize == 0 {
		opts.MinSize, opts.MaxSize = 2<<10, 6<<10
	}
	site := testsite.New(opts)
	srv := site.Start()
	t.Cleanup(srv.Close)
	return site, srv.URL
}

// memSink keeps items in memory.
type memSink struct {
	mu    sync.Mutex
	items map[string]pipeline.Item
}

func (s *memSink) Open(context.Context, string, bool) error { return nil }
func (s *memSink) Commit(context.Context) error             { return nil }
func (s *memSink) Close() error                             { return nil }
func (s *memSink) Write(_ context.Context, items []pipeline.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = make(map[string]pipeline.Item)
	}
	for _, it := range items {
		s.items[it.ID] = it
	}
	return nil
}

// recorder is a pipeline with one item (the h1) per page that records the
// pages it finished.
type recorder struct {
	pipe  *pipeline.Pipeline
	sink  *memSink
	mu    sync.Mutex
	pages []pipeline.Page
	after func(pipeline.Page) // optional hook, called after recording
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ex, err := pipeline.NewExtractor(pipeline.ExtractSpec{Fields: []pipeline.Field{{Name: "title", CSS: "h1", Text: true}}})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{sink: &memSink{}}
	r.pipe = &pipeline.Pipeline{Extractor: ex, Sinks: []pipeline.Sink{r.sink}}
	r.pipe.OnPageDone = func(p pipeline.Page, _ int) {
		r.mu.Lock()
		r.pages = append(r.pages, p)
		r.mu.Unlock()
		if r.after != nil {
			r.after(p)
		}
	}
	return r
}

// urls returns the recorded page URLs, sorted.
func (r *recorder) urls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.pages))
	for _, p := range r.pages {
		out = append(out, p.URL)
	}
	sort.Strings(out)
	return out
}

func (e *env) options(runID, seed string, rec *recorder) Options {
	o := Options{
		RunID: runID, Job: "test", Worker: "w-" + runID, Seeds: []string{seed},
		Robots: true, Parallelism: 4, RetryMax: 2, RetryBackoff: time.Millisecond,
		Store: e.st, CacheDatabase: envDatabase, Frontier: e.front, Logger: quiet(), Timeout: 10 * time.Second,
	}
	if rec != nil {
		o.Pipeline = rec.pipe
	}
	return o
}

// run runs a crawl and fails the test on error; it returns the crawl for
// its politeness counters.
func run(t *testing.T, opts Options) (*crawl, Progress) {
	t.Helper()
	c, err := newCrawl(opts)
	if err != nil {
		t.Fatalf("newCrawl: %v", err)
	}
	p, err := c.run(context.Background())
	if err != nil {
		t.Fatalf("run %s: %v", opts.RunID, err)
	}
	return c, p
}

func counts(t *testing.T, e *env, runID string) frontier.Counts {
	t.Helper()
	c, err := e.front.Counts(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCrawlFindsEverySite(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 200, Seed: 1})
	rec := newRecorder(t)
	_, p := run(t, e.options("full", base+"/", rec))

	want := site.ReachableURLs(base)
	if got := rec.urls(); !slices.Equal(got, want) {
		t.Errorf("pages crawled: got %d, want %d; missing %v, extra %v", len(got), len(want), diff(want, got), diff(got, want))
	}
	oc := site.Counts()
	for _, u := range site.URLs(base) {
		path := strings.TrimPrefix(u, base)
		if n := oc.Requests(path); n != 1 {
			t.Errorf("origin requests for %s = %d, want 1", path, n)
		}
	}
	for _, path := range oc.Paths() {
		if strings.HasPrefix(path, "/private/") {
			t.Errorf("robots.txt disallows %s, but it was requested", path)
		}
	}
	if got, want := p.Pages, int64(len(want)); got != want {
		t.Errorf("Progress.Pages = %d, want %d", got, want)
	}
	if p.Misses != p.Pages || p.Hits != 0 || p.Errors != 0 {
		t.Errorf("Progress = %+v, want every page a miss and no errors", p)
	}
	if got, want := p.Items, int64(len(want)); got != want {
		t.Errorf("Progress.Items = %d, want %d (one per page)", got, want)
	}
	if got := len(rec.sink.items); got != len(want) {
		t.Errorf("items in sink = %d, want %d", got, len(want))
	}
	if c := counts(t, e, "full"); c.Done != len(want) || c.Pending+c.Leased+c.Failed != 0 {
		t.Errorf("frontier counts = %+v, want %d done and nothing else", c, len(want))
	}
	if p.NetworkBytes == 0 || p.Queue != 0 {
		t.Errorf("Progress = %+v, want network bytes and an empty queue", p)
	}
}

// diff returns the elements of a not in b (both sorted).
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], "...")
	}
	return out
}

func TestCrawlFilters(t *testing.T) {
	site, base := newSite(t, testsite.Options{Pages: 40, Seed: 2})
	reachable := site.ReachableURLs(base)
	tests := []struct {
		name   string
		modify func(*Options)
		check  func(t *testing.T, pages []pipeline.Page)
	}{
		{
			name:   "max depth 1",
			modify: func(o *Options) { o.MaxDepth = 1 },
			check: func(t *testing.T, pages []pipeline.Page) {
				depths := map[int]int{}
				for _, p := range pages {
					depths[p.Depth]++
				}
				if depths[0] != 1 || depths[1] == 0 || len(depths) != 2 {
					t.Errorf("pages by depth = %v, want one at 0, some at 1, none deeper", depths)
				}
				if len(pages) >= len(reachable) {
					t.Errorf("crawled %d pages, want fewer than the %d reachable", len(pages), len(reachable))
				}
			},
		},
		{
			name: "exclude products",
			modify: func(o *Options) {
				o.Exclude = []*regexpT{mustRE(t, `/products/`)}
			},
			check: func(t *testing.T, pages []pipeline.Page) {
				listings := 0
				for _, p := range pages {
					if strings.Contains(p.URL, "/products/") {
						t.Errorf("excluded page crawled: %s", p.URL)
					}
					if strings.Contains(p.URL, "/category/") {
						listings++
					}
				}
				if listings == 0 {
					t.Errorf("no listing page crawled")
				}
			},
		},
		{
			name: "include only categories",
			modify: func(o *Options) {
				o.Include = []*regexpT{mustRE(t, `/category/1(\?|$)`)}
			},
			check: func(t *testing.T, pages []pipeline.Page) {
				for _, p := range pages {
					if p.URL != base+"/" && !strings.Contains(p.URL, "/category/1") {
						t.Errorf("page outside include crawled: %s", p.URL)
					}
				}
				if len(pages) < 2 {
					t.Errorf("crawled %d pages, want the seed and category 1's listings", len(pages))
				}
			},
		},
		{
			name:   "max pages",
			modify: func(o *Options) { o.MaxPages = 10 },
			check: func(t *testing.T, pages []pipeline.Page) {
				if len(pages) != 10 {
					t.Errorf("crawled %d pages, want 10", len(pages))
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := newRecorder(t)
			o := e.options("filters-"+string(rune('a'+i)), base+"/", rec)
			tt.modify(&o)
			run(t, o)
			rec.mu.Lock()
			pages := slices.Clone(rec.pages)
			rec.mu.Unlock()
			tt.check(t, pages)
		})
	}
}

func TestCrawlSecondRunRevalidatesEverything(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 40, Seed: 3})
	revalidate := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}}

	first := newRecorder(t)
	o := e.options("r1", base+"/", first)
	o.CachePolicy = revalidate
	_, p1 := run(t, o)
	site.ResetCounts()

	second := newRecorder(t)
	o = e.options("r2", base+"/", second)
	o.CachePolicy = revalidate
	_, p2 := run(t, o)

	oc := site.Counts()
	for _, path := range oc.Paths() {
		if path == "/robots.txt" {
			continue
		}
		if n, n304 := oc.Requests(path), oc.Status(path, 304); n != 1 || n304 != 1 {
			t.Errorf("second run: origin answered %s %d times, %d of them 304; want once, with a 304", path, n, n304)
		}
	}
	if !slices.Equal(first.urls(), second.urls()) {
		t.Errorf("second run crawled %d pages, first %d: links not followed the same", len(second.urls()), len(first.urls()))
	}
	if p2.Revalidated != p2.Pages || p2.Pages != p1.Pages {
		t.Errorf("second run progress = %+v, want all %d pages revalidated", p2, p1.Pages)
	}
	if p2.Items != p1.Items || len(second.sink.items) != len(first.sink.items) {
		t.Errorf("second run items = %d (sink %d), want %d re-extracted", p2.Items, len(second.sink.items), p1.Items)
	}
}

func TestCrawlCacheHitsAreNotRateLimited(t *testing.T) {
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 40, Seed: 4})
	run(t, e.options("cold", base+"/", newRecorder(t)))

	o := e.options("warm", base+"/", newRecorder(t))
	o.PerHost, o.Burst = 1, 1 // 1 request/s: a delayed hit would take minutes
	c, p := run(t, o)
	if p.Hits != p.Pages || p.Pages == 0 {
		t.Errorf("warm run progress = %+v, want every page a hit", p)
	}
	if st := c.polite.Stats(); st.Tokens != 0 || st.Waits != 0 || st.Requests != 0 {
		t.Errorf("politeness stats on a warm run = %+v, want no token taken, no wait, no request", st)
	}
}

func TestCrawlRetries(t *testing.T) {
	tests := []struct {
		name        string
		faults      testsite.Faults
		retryMax    int
		wantErrors  int64
		wantOrigin  map[string]int // path → requests
		wantPauses  bool
		wantSleepGE time.Duration
	}{
		{
			name:       "5xx retried until success",
			faults:     testsite.Faults{FailPaths: map[string]int{"/products/3": 503, "/products/5": 500}, FailTimes: 2},
			retryMax:   2,
			wantOrigin: map[string]int{"/products/3": 3, "/products/5": 3},
		},
		{
			name:       "5xx exhausts retries",
			faults:     testsite.Faults{FailPaths: map[string]int{"/products/7": 502}, FailTimes: 10},
			retryMax:   1,
			wantErrors: 1,
			wantOrigin: map[string]int{"/products/7": 2},
		},
		{
			name:        "429 with Retry-After pauses the host",
			faults:      testsite.Faults{Status429Rate: 0.2, RetryAfter: 2 * time.Second},
			retryMax:    5,
			wantPauses:  true,
			wantSleepGE: time.Second,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			site, base := newSite(t, testsite.Options{Pages: 30, Seed: 5, Faults: tt.faults})
			var mu sync.Mutex
			var sleeps []time.Duration
			o := e.options("retry-"+string(rune('a'+i)), base+"/", newRecorder(t))
			o.RetryMax = tt.retryMax
			o.sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				sleeps = append(sleeps, d)
				mu.Unlock()
				return ctx.Err()
			}
			c, p := run(t, o)
			if p.Errors != tt.wantErrors {
				t.Errorf("errors = %d, want %d", p.Errors, tt.wantErrors)
			}
			oc := site.Counts()
			for path, want := range tt.wantOrigin {
				if got := oc.Requests(path); got != want {
					t.Errorf("origin requests for %s = %d, want %d", path, got, want)
				}
			}
			if tt.wantPauses {
				n429 := int64(oc.ByStatus(429))
				if n429 == 0 {
					t.Fatalf("no 429 answered; the fault rate is too low for this seed")
				}
				if got := c.polite.Stats().Pauses; got != n429 {
					t.Errorf("host pauses = %d, want one per 429 (%d)", got, n429)
				}
				mu.Lock()
				longest := slices.Max(sleeps)
				mu.Unlock()
				if longest < tt.wantSleepGE {
					t.Errorf("longest wait = %v, want at least %v (Retry-After)", longest, tt.wantSleepGE)
				}
				if p.Errors != 0 || p.Pages != int64(len(site.ReachableURLs(base))) {
					t.Errorf("progress = %+v, want every reachable page and no error", p)
				}
			}
		})
	}
}

func TestCrawlInterruptAndResume(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 200, Seed: 6})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(t)
	var once sync.Once
	n := 0
	rec.after = func(pipeline.Page) {
		n++ // OnPageDone runs on one goroutine
		if n == 20 {
			once.Do(cancel)
		}
	}
	o := e.options("resume", base+"/", rec)
	c, err := newCrawl(o)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := c.run(ctx)
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want ErrInterrupted and context.Canceled", err)
	}
	mid := counts(t, e, "resume")
	if mid.Leased != 0 || mid.Pending == 0 || mid.Done < 20 {
		t.Fatalf("frontier after interrupt = %+v, want nothing leased, some pending, at least 20 done", mid)
	}

	rec2 := newRecorder(t)
	o2 := e.options("resume", base+"/", rec2)
	o2.Resume = true
	_, p2 := run(t, o2)

	want := site.ReachableURLs(base)
	all := append(rec.urls(), rec2.urls()...)
	sort.Strings(all)
	if got := slices.Compact(all); !slices.Equal(got, want) {
		t.Errorf("pages over both runs: got %d, want %d; missing %v", len(got), len(want), diff(want, got))
	}
	if fin := counts(t, e, "resume"); fin.Done != len(want) || fin.Total() != len(want) {
		t.Errorf("frontier after resume = %+v, want all %d done", fin, len(want))
	}
	oc := site.Counts()
	for _, path := range oc.Paths() {
		if path == "/robots.txt" {
			continue
		}
		if got := oc.Status(path, 200); got != 1 {
			t.Errorf("origin downloads of %s = %d, want exactly 1 over both runs", path, got)
		}
	}
	if p1.Pages+p2.Pages < int64(len(want)) {
		t.Errorf("pages %d + %d, want at least %d", p1.Pages, p2.Pages, len(want))
	}
}

func TestCrawlTooLargeAndRedirectLoopAreErrors(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 20, Seed: 7, Faults: testsite.Faults{
		RedirectLoop: "/loop", Oversize: "/big", OversizeBytes: 256 << 10,
	}})
	o := e.options("faults", base+"/", newRecorder(t))
	o.MaxBodySize = 64 << 10
	_, p := run(t, o)
	if p.Errors != 2 {
		t.Errorf("errors = %d, want 2 (the loop and the oversize body)", p.Errors)
	}
	c := counts(t, e, "faults")
	if c.Failed != 2 || c.Pending+c.Leased != 0 {
		t.Errorf("frontier = %+v, want 2 failed and the rest done", c)
	}
	if got, want := p.Pages, int64(len(site.ReachableURLs(base))-2); got != want {
		t.Errorf("pages = %d, want %d", got, want)
	}
}

func TestCrawlAllowedDomains(t *testing.T) {
	other, otherBase := newSite(t, testsite.Options{Pages: 5, Seed: 8})
	u, _ := url.Parse(otherBase)
	otherURL := "http://localhost:" + u.Port() + "/"
	home := newLinkOrigin(t, []string{"/a", otherURL})
	tests := []struct {
		name      string
		allowed   []string
		wantOther bool
	}{
		{name: "default: the seed's host", wantOther: false},
		{name: "other host allowed with its port", allowed: []string{"127.0.0.1", "localhost:" + u.Port()}, wantOther: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other.ResetCounts()
			e := newEnv(t)
			o := e.options("domains-"+string(rune('a'+i)), home+"/", newRecorder(t))
			o.AllowedDomains = tt.allowed
			o.MaxDepth = 1
			run(t, o)
			got := other.Counts().Requests("/") > 0
			if got != tt.wantOther {
				t.Errorf("other host's home requested = %v, want %v", got, tt.wantOther)
			}
		})
	}
}
