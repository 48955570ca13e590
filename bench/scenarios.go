package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocolly/colly/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/store"
	"crawlcache/testsite"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(ctx context.Context, dir string) (*store.Store, error) {
	return store.Open(ctx, store.Options{DataDir: dir, Logger: quiet, Command: "bench", Migrations: cache.Migrations()})
}

// tempStore opens an embedded store in a new temporary directory; done
// closes it and removes the directory.
func tempStore(ctx context.Context, name string) (s *store.Store, done func(), err error) {
	dir, err := os.MkdirTemp("", "crawlcache-bench-"+name+"-")
	if err != nil {
		return nil, nil, err
	}
	s, err = openStore(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { s.Close(context.Background()); os.RemoveAll(dir) }, nil
}

// crawlSpec is one crawlcache crawl of the bench.
type crawlSpec struct {
	RunID, Seed, Worker string
	Parallelism         int
	Policy              cache.Policy
	Resume              bool
	Reclaim             []string
	MaxBodySize         int64
	// Progress, if set, receives the crawl's progress (in this process).
	Progress func(crawler.Progress) `json:"-"`
}

// crawlcacheCrawl runs one crawl on store s and returns its progress and
// wall time.
func crawlcacheCrawl(ctx context.Context, s *store.Store, spec crawlSpec) (crawler.Progress, time.Duration, error) {
	fr, err := frontier.New(ctx, s, "crawlcache", frontier.Options{Logger: quiet})
	if err != nil {
		return crawler.Progress{}, 0, err
	}
	start := time.Now()
	p, err := crawler.Run(ctx, crawler.Options{
		RunID: spec.RunID, Job: "bench", Worker: spec.Worker,
		Seeds: []string{spec.Seed}, Robots: true,
		Parallelism: spec.Parallelism,
		Store:       s, CachePolicy: spec.Policy,
		Frontier: fr, Resume: spec.Resume, Reclaim: spec.Reclaim,
		MaxBodySize: spec.MaxBodySize, Progress: spec.Progress,
		Logger: quiet,
	})
	return p, time.Since(start), err
}

// collyCrawl crawls seed with plain colly (links from a[href], robots.txt
// honoured, the same parallelism); cacheDir "" means no cache.
func collyCrawl(seed string, parallelism int, cacheDir string) (int64, error) {
	u, err := url.Parse(seed)
	if err != nil {
		return 0, err
	}
	c := colly.NewCollector(colly.Async(true), colly.AllowedDomains(u.Hostname()))
	c.IgnoreRobotsTxt = false
	c.CacheDir = cacheDir
	if err := c.Limit(&colly.LimitRule{DomainGlob: "*", Parallelism: parallelism}); err != nil {
		return 0, err
	}
	var pages atomic.Int64
	c.OnHTML("a[href]", func(e *colly.HTMLElement) { _ = e.Request.Visit(e.Attr("href")) })
	c.OnResponse(func(*colly.Response) { pages.Add(1) })
	if err := c.Visit(seed); err != nil {
		return 0, err
	}
	c.Wait()
	return pages.Load(), nil
}

// childSpec tells a child process what to do.
type childSpec struct {
	Mode    string // "crawl", "interruptible", "proxy" or "render"
	DataDir string
	Crawl   crawlSpec
	Args    []string // of `crawlcache` in "proxy" mode
	// MemProfile, if set, is the prefix of the heap profile an
	// interruptible child writes at its peak RSS (see memWatch).
	MemProfile string `json:",omitempty"`
	// Render is the "render" child's work.
	Render *renderSpec `json:",omitempty"`
}

// childResult is the last line a child prints.
type childResult struct {
	Pages     int64   `json:"pages"`
	PeakRSSKB int64   `json:"peak_rss_kb"`
	Seconds   float64 `json:"seconds"`
}

func child() error {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec); err != nil {
		return err
	}
	if spec.Mode == "proxy" {
		return proxyChild(spec.Args)
	}
	ctx := context.Background()
	if spec.Mode == "render" {
		return renderChild(ctx, spec)
	}
	s, err := openStore(ctx, spec.DataDir)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	if spec.Mode == "interruptible" {
		return interruptibleChild(ctx, s, spec)
	}
	p, d, err := crawlcacheCrawl(ctx, s, spec.Crawl)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Pages: p.Pages, PeakRSSKB: peakRSS(), Seconds: d.Seconds()})
}

// peakRSS reads VmHWM (peak resident set size) of this process in KiB.
func peakRSS() int64 { return procStatusKB("VmHWM") }

// procStatusKB reads a field of /proc/self/status in KiB, or -1.
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

func resumeScenario(ctx context.Context, cfg config) ([]row, error) {
	site := testsite.New(testsite.Options{Pages: cfg.pages, Seed: 2, Latency: cfg.latency, SortedQueries: true})
	srv := site.Start()
	defer srv.Close()
	dir, err := os.MkdirTemp("", "crawlcache-bench-resume-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	pol := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}}
	spec := crawlSpec{RunID: "resume", Seed: srv.URL + "/", Worker: "bench-child", Parallelism: cfg.parallelism, Policy: pol}
	cmd, err := spawn(childSpec{Mode: "crawl", DataDir: dir, Crawl: spec})
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Kill once half of the content pages were downloaded.
	deadline := time.Now().Add(5 * time.Minute)
	for site.Counts().Bodies < cfg.pages/2 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("resume scenario: the child crawl did not reach 50%% in 5 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	killedAt := site.Counts().Bodies

	s, err := openStore(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer s.Close(context.Background())
	stored, err := storedPaths(ctx, s)
	if err != nil {
		return nil, err
	}
	spec.Resume, spec.Reclaim, spec.Worker = true, []string{"bench-child"}, "bench-resume"
	if _, _, err := crawlcacheCrawl(ctx, s, spec); err != nil {
		return nil, fmt.Errorf("resume after SIGKILL: %w", err)
	}
	counts := site.Counts()
	var total, maxPer, again, storedAgain int
	for _, u := range site.URLs("") {
		n := counts.Status(u, http.StatusOK)
		total += n
		maxPer = max(maxPer, n)
		if n > 1 {
			again++
			if stored[u] {
				storedAgain++
			}
		}
	}
	per := float64(total) / float64(cfg.pages)
	twice := fmt.Sprintf("%d pages downloaded twice, none of them stored at the kill (bodies on the wire)", again)
	switch {
	case storedAgain > 0:
		twice = fmt.Sprintf("%d pages downloaded twice, %d of them already stored at the kill", again, storedAgain)
	case again == 1:
		twice = "1 page downloaded twice, not stored at the kill (a body on the wire)"
	}
	return []row{{
		"resume after SIGKILL at 50%: origin downloads per page",
		fmt.Sprintf("%.2f (max %d; killed after %d bodies; %s)", per, maxPer, killedAt, twice), "", "", "1.00", yesNo(total == cfg.pages && maxPer == 1),
	}}, nil
}

// storedPaths lists the request paths whose responses are in the cache.
func storedPaths(ctx context.Context, s *store.Store) (map[string]bool, error) {
	coll := s.Collection(cache.DefaultDatabase, cache.ResponsesCollection)
	var docs []struct {
		URL string `bson:"url"`
	}
	if err := coll.All(ctx, bson.D{}, store.FindOptions{Projection: bson.D{{Key: "url", Value: 1}}}, &docs); err != nil {
		return nil, fmt.Errorf("list stored responses: %w", err)
	}
	paths := make(map[string]bool, len(docs))
	for _, d := range docs {
		if u, err := url.Parse(d.URL); err == nil {
			paths[u.RequestURI()] = true
		}
	}
	return paths, nil
}

// perPage is what one kind of request costs the store, per page.
type perPage struct{ commands, reads, writes float64 }

func (p perPage) String() string {
	if p.reads == 0 && p.writes == 0 {
		return fmt.Sprintf("%.1f", p.commands)
	}
	return fmt.Sprintf("%.1f + %.1f reads, %.1f writes", p.commands, p.reads, p.writes)
}

// roundTrips counts the store operations of a hit, a miss and a
// revalidation through cache.Transport: in the process that runs the
// embedded store (wire commands, and store.Direct's reads and write
// transactions) and in a process connected to it by URI (wire commands).
func roundTrips(ctx context.Context) ([]row, error) {
	dir, err := os.MkdirTemp("", "crawlcache-bench-rt-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var commands atomic.Int64
	count := func(store.Command) { commands.Add(1) }
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: quiet, Command: "bench", OnCommand: count, Migrations: cache.Migrations()})
	if err != nil {
		return nil, err
	}
	defer s.Close(context.Background())
	byURI, err := store.Open(ctx, store.Options{URI: s.URI, Logger: quiet, OnCommand: count, Migrations: cache.Migrations()})
	if err != nil {
		return nil, err
	}
	defer byURI.Close(context.Background())

	body := strings.Repeat("<p>crawlcache bench page</p>\n", 1700) // ~50 KB
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body)
	}))
	defer origin.Close()

	measureWith := func(st *store.Store, prefix string) (hit, miss, reval perPage, err error) {
		var now atomic.Int64
		now.Store(time.Now().Unix())
		t, err := cache.New(ctx, st, cache.Options{
			Policy: cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}},
			Now:    func() time.Time { return time.Unix(now.Load(), 0) },
			Logger: quiet,
		})
		if err != nil {
			return hit, miss, reval, err
		}
		const n = 20
		measure := func(want string) (perPage, error) {
			c0 := commands.Load()
			d0, direct := st.DirectStats()
			for i := range n {
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/%s/p%d", origin.URL, prefix, i), nil)
				resp, err := t.RoundTrip(req)
				if err != nil {
					return perPage{}, err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if got := cache.Served(resp); got != want {
					return perPage{}, fmt.Errorf("round trips: request served %q, want %q", got, want)
				}
			}
			if err := t.Close(); err != nil { // waits for background writes
				return perPage{}, err
			}
			p := perPage{commands: float64(commands.Load()-c0) / n}
			if direct {
				d1, _ := st.DirectStats()
				p.reads, p.writes = float64(d1.Reads-d0.Reads)/n, float64(d1.Writes-d0.Writes)/n
			}
			return p, nil
		}
		if miss, err = measure("miss"); err != nil {
			return hit, miss, reval, err
		}
		if hit, err = measure("hit"); err != nil {
			return hit, miss, reval, err
		}
		now.Add(7200)
		reval, err = measure("revalidated")
		return hit, miss, reval, err
	}
	inHit, inMiss, inReval, err := measureWith(s, "in")
	if err != nil {
		return nil, err
	}
	uHit, uMiss, uReval, err := measureWith(byURI, "uri")
	if err != nil {
		return nil, err
	}
	return []row{
		{"store operations per page, in the process running the embedded store (wire commands + direct SQLite reads and writes)",
			fmt.Sprintf("hit %s; miss %s; revalidation %s", inHit, inMiss, inReval), "", "", "", ""},
		{"store round trips per page, a process connected by URI (wire commands)",
			fmt.Sprintf("hit %s; miss %s; revalidation %s", uHit, uMiss, uReval), "", "", "", ""},
	}, nil
}

func rssScenario(ctx context.Context, cfg config) ([]row, error) {
	site := testsite.New(testsite.Options{Pages: cfg.frontier, Seed: 3, MinSize: 512, MaxSize: 2048, NoRequestLog: true, CacheBytes: -1})
	srv := site.Start()
	defer srv.Close()
	dir, err := os.MkdirTemp("", "crawlcache-bench-rss-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	pol := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}
	cmd, err := spawn(childSpec{Mode: "crawl", DataDir: dir, Crawl: crawlSpec{RunID: "rss", Seed: srv.URL + "/", Parallelism: cfg.parallelism, Policy: pol}})
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("memory scenario child: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var res childResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return nil, fmt.Errorf("memory scenario child output %q: %w", out, err)
	}
	mb := float64(res.PeakRSSKB) / 1024
	return []row{{
		fmt.Sprintf("peak RSS, crawl of %d small pages (frontier of every URL), embedded store in-process", cfg.frontier),
		fmt.Sprintf("%.0f MB (%d pages in %.0fs)", mb, res.Pages, res.Seconds), "", "", "≤ 200 MB", yesNo(mb <= 200),
	}}, nil
}
