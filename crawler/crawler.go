// Package crawler runs one crawl: it claims URLs from the run's frontier,
// fetches them with a colly collector whose transport is the MongoDB cache,
// follows links, hands pages to the pipeline and acknowledges each URL in
// the frontier once its response is cached and its items are written.
//
// Politeness (per-host token buckets, a global limit of network requests,
// robots.txt Crawl-delay, Retry-After, retries) lives in a RoundTripper
// below the cache, so a cache hit never waits and never takes a network
// slot. The package is the only one that imports colly; it uses none of
// colly's queue, visited set, cache directory, robots handling or limit
// rules (docs/architecture.md says why each is unfit).
package crawler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultParallelism   = 8
	DefaultUserAgent     = "crawlcache/0.1"
	DefaultTimeout       = 30 * time.Second
	DefaultShutdownGrace = 10 * time.Second
	DefaultLeaseRenew    = 30 * time.Second
)

// DefaultFollow is the link selector used when Options.Follow is empty.
var DefaultFollow = []string{"a[href]"}

// Errors returned by Run, checked with errors.Is.
var (
	// ErrInterrupted wraps the context's error when Run stops because its
	// context was cancelled; the run can be resumed.
	ErrInterrupted = errors.New("crawl interrupted")
	// ErrBodyTooLarge is recorded on a page whose body exceeds MaxBodySize.
	ErrBodyTooLarge = errors.New("response body too large")
	// ErrTooManyRedirects is recorded on a page that redirected more than
	// 10 times (usually a redirect loop).
	ErrTooManyRedirects = errors.New("stopped after 10 redirects")
	// ErrRobots is recorded on a URL that robots.txt disallows.
	ErrRobots = errors.New("disallowed by robots.txt")
)

// Options configures one Run. RunID, Store and Frontier are required, and
// Seeds unless Resume.
type Options struct {
	// RunID names the run in the frontier; Job is copied into pages and
	// items. Worker names this process in leases; if empty, host-pid.
	RunID, Job, Worker string

	// Seeds are the start URLs (depth 0). AllowedDomains are the hosts
	// whose links are followed, with their subdomains; if empty, the
	// seeds' hosts. A domain may carry a port ("localhost:8080") to match
	// only that port.
	Seeds, AllowedDomains []string
	// MaxDepth is the largest link depth fetched (seeds are 0); 0 means
	// unlimited. MaxPages bounds the number of URLs in the run's frontier;
	// 0 means unlimited.
	MaxDepth, MaxPages int
	// Include and Exclude filter discovered links (normalized URLs): a
	// link is followed when it matches some Include (or Include is empty)
	// and no Exclude. Seeds are not filtered.
	Include, Exclude []*regexp.Regexp
	// Follow are CSS selectors whose elements' href (or src) are followed.
	// If empty, DefaultFollow.
	Follow []string

	// UserAgent is sent with every request and matched in robots.txt. If
	// empty, DefaultUserAgent. Headers are added to every request.
	UserAgent string
	Headers   http.Header
	// Robots honours robots.txt (fetched through the cache) and its
	// Crawl-delay.
	Robots bool
	// Timeout bounds one network attempt; if zero, DefaultTimeout.
	Timeout time.Duration
	// MaxBodySize is the largest body accepted; a larger one is an error for
	// its page. If zero, cache.DefaultMaxBodySize.
	MaxBodySize int64

	// PerHost is network requests per second per host (0 = unlimited),
	// Burst its bucket size, Parallelism the concurrent network requests
	// (and fetch goroutines; if zero, DefaultParallelism). RetryMax and
	// RetryBackoff configure retries of transient failures.
	PerHost      float64
	Burst        int
	Parallelism  int
	RetryMax     int
	RetryBackoff time.Duration
	// PerHostParallelism bounds concurrent network requests to one host
	// (host:port) in this process; 0 means only Parallelism does.
	PerHostParallelism int

	// Store holds the HTTP cache, in database CacheDatabase (if empty,
	// cache.DefaultDatabase); CachePolicy configures it (see
	// cache.Options).
	Store         *store.Store
	CacheDatabase string
	CachePolicy   cache.Policy

	// Frontier holds the run's URLs. Resume continues an existing run: the
	// seeds are not added, and the frontier is reloaded from the store.
	Frontier *frontier.Frontier
	Resume   bool
	// Reclaim names workers known to be dead (e.g. the crashed process
	// being resumed): their leases are taken over at once on Resume
	// instead of after they expire.
	Reclaim []string

	// Sitemaps are read before the crawl starts; their URLs are added
	// like seeds and their <lastmod>s passed to the cache (sitemaps.go).
	Sitemaps SitemapOptions

	// Pipeline, if not nil, receives every 2xx page; Run sets its
	// OnPageDone (calling any previous hook after its own) and acknowledges
	// a URL when the pipeline reports the page's items written. If nil,
	// pages are acknowledged as soon as they are fetched.
	Pipeline *pipeline.Pipeline
	// Progress is called about once a second and once at the end, from one
	// goroutine. It may be nil.
	Progress func(Progress)
	// Parses, if not nil, keeps each HTML page's links and items and
	// reuses them when a later run gets the same body (a 304, a fresh hit,
	// or a 200 with the same body hash) under the same follow and extract
	// rules, instead of parsing the page again. Nil: every page is parsed.
	Parses *parses.Store
	// HostLeases makes a worker fetch only hosts it holds a lease for in
	// the frontier, so the per-host rate holds for a fleet of workers.
	HostLeases bool
	// Render, if not nil, loads matching pages in headless Chromium
	// before links are found and the pipeline sees them (render.go). Run
	// fails at once when Chromium is missing.
	Render *RenderOptions

	// Now is the clock for the cache and page timestamps. If nil, time.Now.
	Now func() time.Time
	// Logger receives warnings and per-page debug lines. If nil,
	// slog.Default().
	Logger *slog.Logger
	// Upstream performs network requests. If nil, a tuned *http.Transport
	// shared by the run.
	Upstream http.RoundTripper

	// OnInterrupt, if set, is called once, at once, when ctx is cancelled
	// while the crawl runs, with the number of pages in flight (being
	// fetched or waiting to be written) that the crawl now finishes.
	OnInterrupt func(inFlight int)
	// StopNow, when closed after ctx is cancelled, ends the shutdown grace
	// at once: fetches in flight are cancelled and pages not yet written
	// are dropped; all of them stay in the frontier for a resume. Nil
	// means wait the whole ShutdownGrace.
	StopNow <-chan struct{}
	// ShutdownGrace is how long in-flight pages may finish after ctx is
	// cancelled before they are abandoned and released. If zero,
	// DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// LeaseRenew is how often leases of in-flight URLs (and held hosts) are
	// renewed; keep it well below the frontier's lease. If zero, a third of
	// the lease the frontier grants (read from the first claim), at most
	// DefaultLeaseRenew.
	LeaseRenew time.Duration

	// sleep replaces real waits in the politeness layer (tests).
	sleep func(context.Context, time.Duration) error
}

// Progress are the counters of a run so far. Pages counts responses handed
// on (any status), split by how the cache served them into Hits, Misses,
// Revalidated and Stale. Errors counts URLs that failed (network errors
// after retries, 5xx, too large, redirect loops). Items are items written.
// NetworkBytes are body bytes downloaded; SavedBytes body bytes served from
// the store instead. Queue is the URLs waiting in this process or being
// worked on.
type Progress struct {
	Pages, Hits, Misses, Revalidated, Stale, Errors, Items, NetworkBytes, SavedBytes, Queue int64
	Elapsed                                                                                 time.Duration
	// Robots counts the distinct URLs (seeds, links, redirects) not
	// fetched because robots.txt disallows them (not errors).
	Robots int64
	// Retries counts requests sent again after a transient failure.
	Retries int64
	// ErrorKinds splits Errors by kind: ErrorNetwork, ErrorTimeout,
	// ErrorTooLarge, ErrorRedirect, ErrorOther, or "http_<status>" for a
	// URL failed by its status. Nil when there is none.
	ErrorKinds map[string]int64
	// Statuses counts the responses received by HTTP status ("200",
	// "404", "503"), those of failed URLs included. Nil when none.
	Statuses map[string]int64
	// Parsed counts the HTML pages whose links and items were found by
	// parsing their body in this run; Reused those taken from a stored
	// parse result (Options.Parses).
	Parsed, Reused int64
	// Loading is true while a resume still reads the run's frontier in
	// the background: Queue is then only what was read so far.
	Loading bool
}

// Run crawls the run opts.RunID until its frontier is drained (it then
// returns nil), ctx is cancelled (in-flight pages get ShutdownGrace to
// finish, the rest is released for a later resume, and the error wraps
// ErrInterrupted and ctx.Err()), or a fatal error occurs (the store or the
// pipeline failed; the error names which). The Progress returned is final
// in every case.
func Run(ctx context.Context, opts Options) (Progress, error) {
	c, err := newCrawl(opts)
	if err != nil {
		return Progress{}, err
	}
	return c.run(ctx)
}

// crawl is the state of one Run.
type crawl struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	start   time.Time
	worker  string
	follow  []string
	allowed []string
	maxBody int64

	polite   *Politeness
	cache    *cache.Transport
	robots   *robots
	front    *frontier.Frontier
	fetcher  *fetcher
	hosts    *hostGate     // nil unless HostLeases
	render   *renderer     // nil unless Render
	secrets  seedSecrets   // written before the first fetch, read-only after
	linkSel  [][]simpleSel // follow selectors the tokenizer matches; nil: colly's parse
	lastMods *lastMods     // sitemap <lastmod>s; nil unless the run reads sitemaps
	// linkFinder finds links of the other follow selectors when parse
	// results are reused (colly would parse every page); rules is the
	// digest of the follow and extract rules parse records are kept under.
	linkFinder *pipeline.LinkFinder
	rules      string

	parsed, reused, reuseErrs atomic.Int64

	runCtx   context.Context // cancelled on interrupt or fatal error
	fetchCtx context.Context // outlives runCtx by ShutdownGrace
	ackCtx   context.Context // never cancelled: acks and releases

	pages, hits, misses, revalidated, stale, errs, items atomic.Int64
	breakdown                                            breakdown

	renewEvery atomic.Int64 // time.Duration; see Options.LeaseRenew
	renewSet   sync.Once

	addMu sync.Mutex
	total int // entries in the frontier, for MaxPages

	mu       sync.Mutex
	inflight map[string]frontier.Entry // claimed and not finished
	fetching int                       // claimed and not yet through the fetch stage
	byPage   map[string][]string       // page URL → ids waiting for the pipeline
	changed  chan struct{}

	stopLoad func()      // ends a background frontier load; nil if none
	loading  atomic.Bool // a background frontier load is reading

	fatalOnce sync.Once
	fatalErr  error
	stop      context.CancelFunc

	pagesCh     chan pipeline.Page
	pipeDone    chan struct{}
	pipeCancel  context.CancelFunc
	restoreHook func() // puts the pipeline's own OnPageDone back
}

func newCrawl(opts Options) (*crawl, error) {
	switch {
	case opts.RunID == "":
		return nil, errors.New("crawl: run id is required")
	case opts.Frontier == nil:
		return nil, errors.New("crawl: frontier is required")
	case !opts.Resume && len(opts.Seeds) == 0:
		return nil, errors.New("crawl: at least one seed is required")
	}
	return buildCrawl(opts)
}

// buildCrawl fills in the defaults of opts; Run and Inspect share it.
func buildCrawl(opts Options) (*crawl, error) {
	if opts.Store == nil {
		return nil, errors.New("crawl: store is required")
	}
	c := &crawl{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		worker:   opts.Worker,
		follow:   opts.Follow,
		maxBody:  opts.MaxBodySize,
		front:    opts.Frontier,
		inflight: make(map[string]frontier.Entry),
		byPage:   make(map[string][]string),
		changed:  make(chan struct{}, 1),
		secrets:  make(seedSecrets),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.worker == "" {
		h, _ := os.Hostname()
		c.worker = h + "-" + strconv.Itoa(os.Getpid())
	}
	if len(c.follow) == 0 {
		c.follow = DefaultFollow
	}
	if c.maxBody <= 0 {
		c.maxBody = cache.DefaultMaxBodySize
	}
	if c.opts.Parallelism <= 0 {
		c.opts.Parallelism = DefaultParallelism
	}
	if c.opts.UserAgent == "" {
		c.opts.UserAgent = DefaultUserAgent
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = DefaultTimeout
	}
	if c.opts.ShutdownGrace <= 0 {
		c.opts.ShutdownGrace = DefaultShutdownGrace
	}
	c.renewEvery.Store(int64(DefaultLeaseRenew))
	if c.opts.LeaseRenew > 0 {
		c.renewEvery.Store(int64(c.opts.LeaseRenew))
	}
	allowed, err := allowedDomains(opts.AllowedDomains, opts.Seeds)
	if err != nil {
		return nil, err
	}
	c.allowed = allowed
	if opts.Sitemaps.Discover || len(opts.Sitemaps.URLs) > 0 {
		c.lastMods = &lastMods{m: map[string]time.Time{}, trust: opts.Sitemaps.TrustLastMod}
	}
	if opts.Parses != nil {
		c.rules = c.rulesDigest()
	}
	return c, nil
}

// newUpstream is the run's one network transport, tuned for many hosts and
// Parallelism concurrent requests.
func newUpstream(parallelism int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * parallelism,
		MaxIdleConnsPerHost:   parallelism,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (c *crawl) run(ctx context.Context) (Progress, error) {
	c.start = time.Now()
	closeTransports, err := c.openTransports(ctx)
	if err != nil {
		return Progress{}, err
	}
	defer closeTransports()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	c.runCtx, c.stop = runCtx, stop
	c.ackCtx = context.WithoutCancel(ctx)
	fetchCtx, cancelFetch := context.WithCancel(c.ackCtx)
	defer cancelFetch()
	c.fetchCtx = fetchCtx

	if c.opts.Render != nil {
		if c.render, err = newRenderer(ctx, c); err != nil {
			return Progress{}, err
		}
		defer c.render.close()
	}
	if c.opts.HostLeases {
		c.hosts = newHostGate(c)
	}
	c.fetcher = newFetcher(c)
	go c.watchInterrupt(ctx, cancelFetch)

	if err := c.startFrontier(ctx); err != nil {
		return c.progress(), err
	}
	if err := c.readSitemaps(runCtx); err != nil {
		return c.progress(), err
	}
	c.startPipeline()

	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(c.ackCtx)
	bg.Add(2)
	go func() { defer bg.Done(); c.reportLoop(bgCtx) }()
	go func() { defer bg.Done(); c.renewLoop(bgCtx) }()
	if c.hosts != nil {
		bg.Add(1)
		go func() { defer bg.Done(); c.hosts.loop(bgCtx) }()
	}

	loopErr := c.claimLoop()
	if c.stopLoad != nil {
		c.stopLoad()
	}

	// Shut down: fetchers finish (or give up after the grace period), the
	// pipeline drains, and whatever is still leased goes back to pending.
	c.fetcher.wait()
	c.stopPipeline()
	stopBG()
	bg.Wait()
	if c.hosts != nil {
		hctx, cancel := c.handBackCtx()
		c.hosts.tend(hctx, true)
		cancel()
	}
	c.releaseAll()

	p := c.progress()
	if c.opts.Progress != nil {
		c.opts.Progress(p)
	}
	if fe := c.fatal(); fe != nil {
		return p, fe
	}
	if loopErr != nil {
		return p, loopErr
	}
	if ctx.Err() != nil {
		return p, fmt.Errorf("run %s: %w: %w", c.opts.RunID, ErrInterrupted, ctx.Err())
	}
	return p, nil
}

// startFrontier adds the seeds, or reloads the run on resume.
func (c *crawl) startFrontier(ctx context.Context) error {
	c.front.RedactLog(c.opts.RunID, c.redact)
	if c.opts.Resume && c.opts.MaxPages <= 0 {
		c.learnSeeds()
		return c.startLoading(ctx)
	}
	if c.opts.Resume {
		c.learnSeeds()
		counts, err := c.front.LoadRun(ctx, c.opts.RunID, c.opts.Reclaim...)
		if err != nil {
			return fmt.Errorf("resume run %s from frontier store: %w", c.opts.RunID, err)
		}
		c.total = counts.Total()
		c.log.Info("resuming run", "run", c.opts.RunID, "pending", counts.Pending, "leased", counts.Leased, "done", counts.Done, "failed", counts.Failed)
		if len(c.opts.Seeds) == 0 || counts.Total() > 0 {
			return nil
		}
	}
	var links []frontier.Link
	for _, s := range c.opts.Seeds {
		l, ok := c.seedLink(s)
		if !ok {
			return fmt.Errorf("seed %q is not an absolute http(s) url", c.redact(s))
		}
		l.Depth = 0
		links = append(links, l)
	}
	if _, err := c.addLinks(ctx, links); err != nil {
		return err
	}
	return nil
}

// startLoading resumes a run without MaxPages: the frontier is read in
// the background (frontier.StartLoadRun) while the crawl claims what it
// has read, so a run of a million URLs fetches again within seconds. A
// seed the run does not hold, in its redacted form or (written by an
// earlier release) in clear, is added, in case the run stopped before its
// seeds were.
func (c *crawl) startLoading(ctx context.Context) error {
	loadCtx, cancel := context.WithCancel(c.ackCtx)
	c.stopLoad = cancel
	loaded, err := c.front.StartLoadRun(loadCtx, c.opts.RunID, c.opts.Reclaim...)
	if err != nil {
		return fmt.Errorf("resume run %s from frontier store: %w", c.opts.RunID, err)
	}
	c.log.Info("resuming run; reading its frontier", "run", c.opts.RunID)
	c.loading.Store(true)
	go func() {
		res := <-loaded
		c.loading.Store(false)
		if res.Err != nil && loadCtx.Err() != nil {
			return // the run ended first
		}
		if res.Err != nil {
			c.setFatal(fmt.Errorf("resume run %s from frontier store: %w", c.opts.RunID, res.Err))
			return
		}
		n := res.Counts
		c.log.Info("frontier read", "run", c.opts.RunID, "pending", n.Pending, "leased", n.Leased, "done", n.Done, "failed", n.Failed)
		c.signal()
	}()
	var links []frontier.Link
	for _, s := range c.opts.Seeds {
		l, ok := c.seedLink(s)
		if !ok {
			continue
		}
		forms := []string{l.URL}
		if clear, ok := c.secrets[l.URL]; ok {
			forms = append(forms, clear)
		}
		known := false
		for _, u := range forms {
			has, err := c.front.Has(ctx, c.opts.RunID, u)
			if err != nil {
				return fmt.Errorf("resume run %s from frontier store: %w", c.opts.RunID, err)
			}
			known = known || has
		}
		if !known {
			links = append(links, l)
		}
	}
	_, err = c.addLinks(ctx, links)
	return err
}

// addLinks adds links to the frontier within MaxPages and returns how many
// were new. Near the limit it adds in chunks of the remaining room, because
// links already in the frontier do not count (Add is idempotent).
func (c *crawl) addLinks(ctx context.Context, links []frontier.Link) (int, error) {
	if len(links) == 0 {
		return 0, nil
	}
	if c.opts.MaxPages <= 0 {
		n, err := c.front.Add(ctx, c.opts.RunID, links)
		if err != nil {
			return n, fmt.Errorf("add links to frontier store: %w", err)
		}
		return n, nil
	}
	c.addMu.Lock()
	defer c.addMu.Unlock()
	added := 0
	for len(links) > 0 && c.total < c.opts.MaxPages {
		chunk := links[:min(len(links), c.opts.MaxPages-c.total)]
		links = links[len(chunk):]
		n, err := c.front.Add(ctx, c.opts.RunID, chunk)
		c.total += n
		added += n
		if err != nil {
			return added, fmt.Errorf("add links to frontier store: %w", err)
		}
	}
	return added, nil
}

// setFatal records the first fatal error and stops the run.
func (c *crawl) setFatal(err error) {
	c.fatalOnce.Do(func() {
		c.mu.Lock()
		c.fatalErr = err
		c.mu.Unlock()
		c.log.Error("crawl stopped", "run", c.opts.RunID, "err", err)
		c.stop()
	})
}

func (c *crawl) fatal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatalErr
}

// signal wakes the claim loop after a state change.
func (c *crawl) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// progress returns the counters now.
func (c *crawl) progress() Progress {
	p := Progress{
		Pages: c.pages.Load(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Revalidated: c.revalidated.Load(), Stale: c.stale.Load(), Errors: c.errs.Load(),
		Items: c.items.Load(), Elapsed: time.Since(c.start),
		Parsed: c.parsed.Load(), Reused: c.reused.Load(),
	}
	if c.cache != nil {
		st := c.cache.Stats()
		p.NetworkBytes, p.SavedBytes = st.NetworkBytes, st.SavedBytes
	}
	if c.polite != nil {
		p.Retries = c.polite.Stats().Retries
	}
	c.breakdown.fill(&p)
	if c.front != nil {
		c.mu.Lock()
		p.Queue = int64(len(c.inflight))
		c.mu.Unlock()
		p.Queue += int64(c.front.Queued(c.opts.RunID))
	}
	p.Loading = c.loading.Load()
	return p
}

// reportLoop calls Progress about once a second.
func (c *crawl) reportLoop(ctx context.Context) {
	if c.opts.Progress == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.opts.Progress(c.progress())
		}
	}
}

// renewLoop extends the leases of in-flight URLs while they are worked on.
func (c *crawl) renewLoop(ctx context.Context) {
	for {
		t := time.NewTimer(c.renewInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ids := c.inflightIDs()
		if len(ids) == 0 {
			continue
		}
		if err := c.front.Renew(ctx, c.worker, ids); err != nil {
			if errors.Is(err, frontier.ErrLeaseLost) {
				c.log.Warn("some leases were lost; their pages may be fetched again (from the cache)", "err", err)
				continue
			}
			if ctx.Err() == nil {
				c.setFatal(fmt.Errorf("renew leases in frontier store: %w", err))
			}
		}
	}
}

func (c *crawl) renewInterval() time.Duration { return time.Duration(c.renewEvery.Load()) }

// learnLease sets the renew interval to a third of the lease the frontier
// granted e, unless Options.LeaseRenew is set.
func (c *crawl) learnLease(e frontier.Entry) {
	if c.opts.LeaseRenew > 0 || e.LeaseUntil.IsZero() {
		return
	}
	c.renewSet.Do(func() {
		lease := e.LeaseUntil.Sub(c.now())
		every := min(max(lease/3, 50*time.Millisecond), DefaultLeaseRenew)
		c.renewEvery.Store(int64(every))
	})
}
