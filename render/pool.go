package render

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// Options configures a Pool. Chromium and Transport are required.
type Options struct {
	// Chromium is the browser executable (see FindChromium).
	Chromium string
	// Transport answers every request the browser makes, except the
	// page's own document (given in Page). The crawler passes its
	// cache.Transport, with its politeness below.
	Transport http.RoundTripper
	// Wait is when a page counts as rendered; the zero value is WaitLoad.
	Wait Wait
	// Timeout bounds one attempt at a page, from opening its tab to its
	// HTML; if zero, DefaultTimeout.
	Timeout time.Duration
	// Parallelism is the number of pages rendered at once; if zero,
	// DefaultParallelism.
	Parallelism int
	// TabsPerBrowser is the most pages one browser renders at once; if
	// zero, DefaultTabsPerBrowser. Browsers are started as needed, so
	// Parallelism/TabsPerBrowser (rounded up) run at once.
	TabsPerBrowser int
	// PagesPerBrowser recycles a browser (a new process) after it started
	// that many pages; if zero, DefaultPagesPerBrowser.
	PagesPerBrowser int
	// MaxRequests bounds the requests of one page; if zero,
	// DefaultMaxRequests.
	MaxRequests int
	// MaxBodySize is the largest body handed to the browser; a larger one
	// fails that request in the page. If zero, 15 MiB.
	MaxBodySize int64
	// Block lists resource types (ResourceTypes) answered without a
	// request. If nil, DefaultBlock; an empty non-nil slice blocks none.
	Block []string
	// Cookies keeps a cookie jar per page: Set-Cookie of the page's
	// responses is sent back with its later requests (and the browser
	// sees it). Off, every request goes without Cookie and Set-Cookie is
	// dropped, so responses stay cacheable.
	Cookies bool
	// UserAgent replaces the browser's on every request (and in
	// navigator.userAgent); if empty, Chromium's own.
	UserAgent string
	// Headers are added to requests whose URL HeadersFor allows (the
	// job's credentials go to its own domains only). They are never
	// logged.
	Headers    http.Header
	HeadersFor func(*url.URL) bool
	// Allowed, if set, is asked before any request but the document's
	// (robots.txt of the request's host); a false answer fails the
	// request in the page.
	Allowed func(context.Context, *url.URL) bool
	// Logger receives browser restarts and recycling. If nil,
	// slog.Default().
	Logger *slog.Logger
	// Output, if set, receives Chromium's own stdout and stderr.
	Output io.Writer
}

// Stats are a Pool's counters.
type Stats struct {
	Pages    int64 // pages rendered
	Failed   int64 // pages that returned an error
	Retries  int64 // pages rendered again after their browser was lost
	Launches int64 // browsers started
	Lost     int64 // browsers that crashed or stopped answering
	Recycled int64 // browsers closed after PagesPerBrowser pages
	Requests int64 // requests answered through the Transport
	Blocked  int64 // requests refused (blocked types, robots.txt, limits)
	// Escaped counts requests the browsers sent past the Fetch domain
	// (refused by the pool's proxy): 0 when every request went through
	// the Transport.
	Escaped int64
}

// Pool renders pages in a few headless Chromium processes. It is safe for
// concurrent use; create it with NewPool and Close it.
type Pool struct {
	opts  Options
	log   *slog.Logger
	slots chan struct{}
	trap  *trap
	// health bounds the check that a browser still answers (healthTimeout;
	// tests shorten it).
	health time.Duration

	mu       sync.Mutex
	browsers []*instance
	closed   bool
	nextID   int

	pages, failed, retries, launches, lost, recycled, requests, blocked atomic.Int64
}

// instance is one browser process.
type instance struct {
	id          int
	ctx         context.Context // the browser's chromedp context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	proc        *os.Process
	active      int  // pages being rendered in it
	started     int  // pages started in it
	retiring    bool // no new pages: closed when the last one ends
	dead        bool
}

// NewPool checks the options; browsers start when the first pages come.
// It returns an error wrapping ErrNoChromium when Options.Chromium is not
// an executable.
func NewPool(opts Options) (*Pool, error) {
	if opts.Transport == nil {
		return nil, errors.New("render: a transport is required")
	}
	path, err := FindChromium(opts.Chromium)
	if err != nil {
		return nil, err
	}
	opts.Chromium = path
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = DefaultParallelism
	}
	if opts.TabsPerBrowser <= 0 {
		opts.TabsPerBrowser = DefaultTabsPerBrowser
	}
	if opts.PagesPerBrowser <= 0 {
		opts.PagesPerBrowser = DefaultPagesPerBrowser
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = DefaultMaxRequests
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 15 << 20
	}
	if opts.Block == nil {
		opts.Block = DefaultBlock
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	t, err := newTrap(log)
	if err != nil {
		return nil, err
	}
	p := &Pool{opts: opts, log: log, slots: make(chan struct{}, opts.Parallelism), trap: t, health: healthTimeout}
	return p, nil
}

// Stats returns the counters so far.
func (p *Pool) Stats() Stats {
	return Stats{
		Pages: p.pages.Load(), Failed: p.failed.Load(), Retries: p.retries.Load(),
		Launches: p.launches.Load(), Lost: p.lost.Load(), Recycled: p.recycled.Load(),
		Requests: p.requests.Load(), Blocked: p.blocked.Load(), Escaped: p.trap.escaped.Load(),
	}
}

// Render loads pg in a browser tab and returns its DOM once the wait
// condition holds. A browser that crashes or stops answering during the
// page is killed and the page rendered once more in a new one; if that
// fails too the error wraps ErrBrowserLost. A page that does not reach its
// wait condition within Timeout returns an error wrapping ErrTimeout (the
// browser is healthy: it is not retried). ctx bounds the wait for a slot
// and the render.
func (p *Pool) Render(ctx context.Context, pg Page) (*Result, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.slots }()
	var res *Result
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		var b *instance
		if b, err = p.acquire(); err != nil {
			break
		}
		res, err = p.renderIn(ctx, b, pg)
		lost := err != nil && ctx.Err() == nil && p.browserLost(b, err)
		p.release(b, lost)
		if err == nil {
			res.Attempts = attempt
			p.pages.Add(1)
			return res, nil
		}
		if !lost {
			break
		}
		p.lost.Add(1)
		p.log.Warn("browser crashed or hung; restarting it", "browser", b.id, "url", pg.URL, "attempt", attempt, "err", err)
		if attempt == 1 {
			p.retries.Add(1)
		} else {
			err = fmt.Errorf("%w: %w", ErrBrowserLost, err)
		}
	}
	p.failed.Add(1)
	return nil, fmt.Errorf("render %s: %w", pg.URL, err)
}

// browserLost tells a lost browser (its process gone, or not answering a
// version request) from a page that failed in a healthy one.
func (p *Pool) browserLost(b *instance, err error) bool {
	if errors.Is(err, errTabCrashed) || b.ctx.Err() != nil {
		return true
	}
	ctx, cancel := context.WithTimeout(b.ctx, p.health)
	defer cancel()
	_, herr := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	return herr != nil
}

// acquire returns a browser with a free tab, starting one if needed.
func (p *Pool) acquire() (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	for _, b := range p.browsers {
		if !b.dead && !b.retiring && b.active < p.opts.TabsPerBrowser && b.ctx.Err() == nil {
			p.take(b)
			return b, nil
		}
	}
	b, err := p.launch()
	if err != nil {
		// A browser that crashes while starting is started once more, as a
		// browser lost mid-page is.
		p.debugf("render: %v; starting another browser", err)
		if b, err = p.launch(); err != nil {
			return nil, err
		}
	}
	p.browsers = append(p.browsers, b)
	p.take(b)
	return b, nil
}

func (p *Pool) take(b *instance) {
	b.active++
	b.started++
	if b.started >= p.opts.PagesPerBrowser {
		b.retiring = true
	}
}

// release ends a page in b; a lost browser is killed, a retiring one
// closed once idle.
func (p *Pool) release(b *instance, lost bool) {
	p.mu.Lock()
	b.active--
	closeIt := false
	if lost && !b.dead {
		b.dead = true
		closeIt = true
	} else if b.retiring && b.active == 0 && !b.dead {
		b.dead = true
		closeIt = true
		p.recycled.Add(1)
		p.log.Debug("browser recycled", "browser", b.id, "pages", b.started)
	}
	if closeIt {
		p.remove(b)
	}
	p.mu.Unlock()
	if closeIt {
		go b.kill() // a hung browser may take a while to reap
	}
}

func (p *Pool) remove(b *instance) {
	for i, x := range p.browsers {
		if x == b {
			p.browsers = append(p.browsers[:i], p.browsers[i+1:]...)
			return
		}
	}
}

// Close stops every browser and waits for their processes to exit. Pages
// being rendered fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	bs := p.browsers
	p.browsers = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Add(1)
		go func() { defer wg.Done(); b.kill() }()
	}
	wg.Wait()
	p.trap.close()
	return nil
}

// Processes returns the process ids of the running browsers' main
// processes (their renderers and helpers are their children), for
// memory measurements and tests.
func (p *Pool) Processes() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, b := range p.browsers {
		if b.proc != nil && !b.dead {
			out = append(out, b.proc.Pid)
		}
	}
	return out
}

// launch starts a browser process. Flags: headless, no sandbox (CI runs
// as root), no GPU, no QUIC, no first-run, background networking,
// component updates or sync (on a closed network those connections are
// refused and slow the start), a fresh user data directory (chromedp
// makes and removes one), and a proxy that refuses every connection, so
// that a request the Fetch domain does not pause fails instead of
// reaching the network behind the cache's back (loopback included).
func (p *Pool) launch() (*instance, error) {
	p.nextID++
	b := &instance{id: p.nextID}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(p.opts.Chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions,"+
			"NetworkTimeServiceQuerying,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"+
			"DialMediaRouteProvider,PrivacySandboxSettings4,SafeBrowsingBetterTelemetryAcrossReports"),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-component-extensions-with-background-pages", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("no-service-autorun", true),
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("disable-search-engine-choice-screen", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("proxy-server", p.trap.addr()),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
	}
	if p.opts.UserAgent != "" {
		opts = append(opts, chromedp.UserAgent(p.opts.UserAgent))
	}
	if p.opts.Output != nil {
		opts = append(opts, chromedp.CombinedOutput(p.opts.Output))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(p.debugf), chromedp.WithLogf(p.debugf))
	// The browser's life is bound to the context of its first Do, so the
	// start is bounded by a timer rather than by a context with a
	// deadline.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	var err error
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		cancel()
		allocCancel()
		<-started
		err = fmt.Errorf("no answer after %s", startTimeout)
	}
	if err != nil {
		cancel()
		allocCancel()
		return nil, fmt.Errorf("start chromium %s: %w", p.opts.Chromium, err)
	}
	b.ctx, b.cancel, b.allocCancel = ctx, cancel, allocCancel
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil {
		b.proc = c.Browser.Process()
	}
	p.launches.Add(1)
	p.log.Debug("browser started", "browser", b.id)
	return b, nil
}

// startTimeout bounds the start of a browser.
const startTimeout = 60 * time.Second

// kill ends the browser: SIGKILL first (a stopped or hung process does
// not close gracefully), then the contexts, which reap the process and
// remove its user data directory.
func (b *instance) kill() {
	if b.proc != nil {
		_ = b.proc.Kill()
	}
	b.cancel()
	b.allocCancel()
}

// debugf takes chromedp's own messages (a tab that went away while a
// command waited, ...): expected when a page times out or a browser is
// lost, so they are debug lines, not the standard logger's.
func (p *Pool) debugf(format string, args ...any) {
	p.log.Debug("chromedp: " + fmt.Sprintf(format, args...))
}
