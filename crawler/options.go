package crawler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"crawlcache/cache"
	"crawlcache/changes"
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

// DefaultFollow is the link selector used when Options.Follow is nil.
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
	// If nil, DefaultFollow; an empty, non-nil list follows no link (the
	// job key `follow: []` crawls only the seeds).
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
	// Changes, if not nil, classifies every page the run gets (new,
	// changed, unchanged, gone, error) against what the job saw before
	// and records it; the run's Progress counts them.
	Changes *changes.Tracker
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
	// shared by the run, whose proxy is Proxy.
	Upstream http.RoundTripper
	// Proxy is the upstream proxy of every network request (its user info
	// is sent as Proxy-Authorization, never logged). If nil, the
	// environment's HTTP_PROXY, HTTPS_PROXY and NO_PROXY, unless NoProxy,
	// which connects directly. Not used with Upstream.
	Proxy   *url.URL
	NoProxy bool

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
	// parse result (Options.Parses). Heads counts those of Reused
	// finished from the cache's page summary alone, their body never
	// read: fresh hits, with no request, and due pages whose origin
	// answered the conditional request made from the summary with a 304
	// (or failed, under stale_if_error) (crawler/head.go).
	Parsed, Reused, Heads int64
	// New, Changed, Unchanged and Gone count the pages this process
	// classified (Options.Changes); Gone here is only pages that answered
	// 404 or 410 where they answered 2xx before (those no longer reached
	// are found when the run completes: changes.Tracker.Finish).
	New, Changed, Unchanged, Gone int64
	// Loading is true while a resume still reads the run's frontier in
	// the background: Queue is then only what was read so far.
	Loading bool
	// Rendered counts the pages rendered in Chromium (Options.Render);
	// RenderReused those whose stored render was used instead, nothing
	// they loaded having changed.
	Rendered, RenderReused int64
}
