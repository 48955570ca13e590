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
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/pipeline"
)

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
	// results are reused (colly would parse every page), and of the pages
	// the tokenizer would read differently (readPage); rules is the
	// digest of the follow and extract rules parse records are kept under.
	linkFinder *pipeline.LinkFinder
	rules      string
	// detectCharset is the collector's DetectCharset (colly reads it from
	// the environment too): whether colly may convert a body that names
	// no charset (bodyhash.go).
	detectCharset bool

	parsed, reused, heads, reuseErrs atomic.Int64
	handoffs                         handoffs // answers of revalidated heads waiting for colly's request

	links linkMemo // facts of the links judged (links.go)

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
	acks        sync.WaitGroup
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
	if c.follow == nil {
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
func newUpstream(parallelism int, proxy func(*http.Request) (*url.URL, error)) *http.Transport {
	return &http.Transport{
		Proxy:                 proxy,
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
		Parsed: c.parsed.Load(), Reused: c.reused.Load(), Heads: c.heads.Load(),
	}
	if t := c.opts.Changes; t != nil {
		n := t.Seen()
		p.New, p.Changed, p.Unchanged, p.Gone = n.New, n.Changed, n.Unchanged, n.Gone
	}
	if c.cache != nil {
		st := c.cache.Stats()
		p.NetworkBytes, p.SavedBytes = st.NetworkBytes, st.SavedBytes
	}
	if c.polite != nil {
		p.Retries = c.polite.Stats().Retries
	}
	if c.render != nil {
		p.Rendered, p.RenderReused = c.render.counts()
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
