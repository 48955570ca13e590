package crawler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Politeness when its fields are zero.
const (
	DefaultRetryBackoff = time.Second
	// MaxRetryAfter caps how long one Retry-After (or backoff) pauses a
	// host, so a hostile or broken header cannot stall a run for days.
	MaxRetryAfter = 5 * time.Minute
	// HostDownAfter is how many requests in a row to one host must fail
	// after all their retries (network errors and 5xx) before the host
	// counts as down: each further request to it is sent once, without
	// retries, until one gets an answer that is not such a failure. A dead
	// origin then costs one request per page (and, with stale_if_error,
	// each page its stale copy at once) instead of RetryMax+1 requests and
	// their backoff.
	HostDownAfter = 3
)

var _ http.RoundTripper = (*Politeness)(nil)

// Politeness is the RoundTripper on the network path, below the cache: only
// requests the cache could not answer reach it. It keeps one token bucket per
// host (x/time/rate), a global limit of concurrent network requests, honours
// robots.txt Crawl-delay (SetCrawlDelay) and Retry-After, and retries
// transient failures (network errors, 408, 429, 500, 502, 503, 504) with
// exponential backoff and jitter.
//
// Configure the exported fields before the first RoundTrip and do not change
// them afterwards. A Politeness is safe for concurrent use. Like every
// RoundTripper it returns an error only when no response was obtained; after
// the last retry it returns the last (failed) response as is, so the cache
// above can decide to serve a stale entry.
type Politeness struct {
	// Upstream performs the network requests. If nil, http.DefaultTransport.
	Upstream http.RoundTripper
	// PerHost is the rate of network requests per host per second; 0 means
	// unlimited (only Crawl-delay and Retry-After slow a host down).
	PerHost float64
	// Burst is the token bucket size per host; values below 1 mean 1.
	Burst int
	// Parallelism bounds concurrent network requests over all hosts; 0
	// means unlimited. A slot is held from the request until its response
	// body is closed (not merely read to the end): cache.Transport closes
	// it once the response is stored, so a slot covers a response until it
	// is durable.
	Parallelism int
	// PerHostParallelism bounds concurrent network requests to one host
	// (host:port), like Scrapy's CONCURRENT_REQUESTS_PER_DOMAIN; 0 means
	// only Parallelism bounds them. A host slot is held like a global slot,
	// from before the host's token is taken until the body is closed.
	PerHostParallelism int
	// RetryMax is how many times a transient failure is retried (so a
	// request is sent at most RetryMax+1 times); 0 disables retries.
	RetryMax int
	// RetryBackoff is the first retry's delay, doubled on each further
	// attempt, with ±50% jitter. If zero, DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Timeout bounds one network attempt including reading its body; 0
	// means no limit besides the request's context.
	Timeout time.Duration
	// Now is the clock used for the token buckets and Retry-After dates. If
	// nil, time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done (returning ctx.Err()). If nil, a
	// real timer. Tests inject one that advances a fake Now instead.
	Sleep func(ctx context.Context, d time.Duration) error

	initOnce sync.Once
	slots    chan struct{}
	mu       sync.Mutex
	hosts    map[string]*hostState

	requests, retries, waits, tokens, pauses atomic.Int64
	waited, bytes                            atomic.Int64
}

// hostState is the politeness state of one host (host:port).
type hostState struct {
	slots       chan struct{} // nil unless PerHostParallelism > 0
	mu          sync.Mutex
	lim         *rate.Limiter
	crawlDelay  time.Duration
	pausedUntil time.Time
	// failed is how many requests in a row failed after all their retries
	// (HostDownAfter).
	failed int
	stats  HostStats
}

// HostStats are the politeness counters of one host.
type HostStats struct {
	// Requests is the number of network attempts sent (retries included).
	Requests int64
	// Tokens is the number of tokens taken from the host's bucket (one per
	// attempt).
	Tokens int64
	// Waits counts attempts that had to wait for a token or a pause.
	Waits int64
	// Waited is the total time spent waiting for this host.
	Waited time.Duration
	// Retries counts attempts after the first.
	Retries int64
	// Pauses counts Retry-After headers that paused the host.
	Pauses int64
	// Unretried counts requests sent once, without retries, because the
	// host was down (HostDownAfter).
	Unretried int64
}

// PolitenessStats are the counters of a Politeness over all hosts.
type PolitenessStats struct {
	Requests, Retries, Waits, Tokens, Pauses int64
	Waited                                   time.Duration
	// NetworkBytes is the number of response body bytes read from the
	// network.
	NetworkBytes int64
}

func (p *Politeness) init() {
	p.initOnce.Do(func() {
		if p.Parallelism > 0 {
			p.slots = make(chan struct{}, p.Parallelism)
		}
		p.hosts = make(map[string]*hostState)
	})
}

func (p *Politeness) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Politeness) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limit is the host's rate: PerHost, lowered by its Crawl-delay.
func (p *Politeness) limit(crawlDelay time.Duration) rate.Limit {
	l := rate.Inf
	if p.PerHost > 0 {
		l = rate.Limit(p.PerHost)
	}
	if crawlDelay > 0 {
		if cd := rate.Every(crawlDelay); cd < l {
			l = cd
		}
	}
	return l
}

func (p *Politeness) host(h string) *hostState {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	hs, ok := p.hosts[h]
	if !ok {
		b := max(p.Burst, 1)
		hs = &hostState{lim: rate.NewLimiter(p.limit(0), b)}
		if p.PerHostParallelism > 0 {
			hs.slots = make(chan struct{}, p.PerHostParallelism)
		}
		p.hosts[h] = hs
	}
	return hs
}

// SetCrawlDelay lowers host's rate to one request per d (robots.txt
// Crawl-delay) when that is slower than PerHost. host is "host[:port]" as in
// a request URL.
func (p *Politeness) SetCrawlDelay(host string, d time.Duration) {
	hs := p.host(host)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.crawlDelay = d
	hs.lim.SetLimitAt(p.now(), p.limit(d))
}

// restart empties host's token bucket, so its next request waits a full
// interval: used when this worker takes the host over from another, whose
// last request may have been just now.
func (p *Politeness) restart(host string) {
	hs := p.host(host)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	now := p.now()
	if tokens := int(hs.lim.TokensAt(now)); tokens > 0 && hs.lim.Limit() != rate.Inf {
		hs.lim.ReserveN(now, tokens)
	}
}

// Stats returns the counters over all hosts.
func (p *Politeness) Stats() PolitenessStats {
	return PolitenessStats{
		Requests: p.requests.Load(), Retries: p.retries.Load(), Waits: p.waits.Load(),
		Tokens: p.tokens.Load(), Pauses: p.pauses.Load(), Waited: time.Duration(p.waited.Load()),
		NetworkBytes: p.bytes.Load(),
	}
}

// HostStats returns the counters of one host ("host[:port]"); zero for a
// host never requested.
func (p *Politeness) HostStats(host string) HostStats {
	p.init()
	p.mu.Lock()
	hs, ok := p.hosts[host]
	p.mu.Unlock()
	if !ok {
		return HostStats{}
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.stats
}

// RoundTrip sends req to the network when its host's pause is over and a
// token and a global slot are free, retrying transient failures.
func (p *Politeness) RoundTrip(req *http.Request) (*http.Response, error) {
	p.init()
	ctx := req.Context()
	hs := p.host(req.URL.Host)
	attempts := p.RetryMax + 1
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		attempts = 1 // the body cannot be replayed
	}
	if attempts > 1 && hs.down() {
		attempts = 1
	}
	for attempt := 0; ; attempt++ {
		if err := p.waitTurn(ctx, hs); err != nil {
			return nil, fmt.Errorf("wait for %s: %w", req.URL.Host, err)
		}
		if attempt > 0 {
			p.retries.Add(1)
			hs.mu.Lock()
			hs.stats.Retries++
			hs.mu.Unlock()
		}
		resp, err := p.attempt(req, hs)
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		retryAfter, hasRetryAfter := time.Duration(0), false
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			retryAfter, hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), p.now())
			if hasRetryAfter {
				p.pause(hs, retryAfter)
			}
		}
		if !transient(resp, err) || attempt+1 >= attempts {
			hs.outcome(hostFailure(resp, err))
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if !hasRetryAfter {
			// With Retry-After the host pause already spaces the retry.
			if err := p.sleep(ctx, p.backoff(attempt)); err != nil {
				return nil, err
			}
		}
	}
}

// down reports whether the host's last HostDownAfter requests each
// failed after all their retries, and counts the request about to be sent
// once because of it.
func (hs *hostState) down() bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.failed < HostDownAfter {
		return false
	}
	hs.stats.Unretried++
	return true
}

// outcome records how a request to the host ended: failed (hostFailure)
// extends the run of failures, anything else ends it.
func (hs *hostState) outcome(failed bool) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if failed {
		hs.failed++
	} else {
		hs.failed = 0
	}
}

// hostFailure reports whether a request's last attempt says its host is
// failing: a network error (not a cancellation) or a 500, 502, 503 or 504.
// A 408 or 429 is an answer from a host that is up.
func hostFailure(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// waitTurn waits for a slot of the host (PerHostParallelism), for the
// host's pause to end and for a token from its bucket, then for a global
// slot (in that order: a slow host never holds a global slot while it
// waits, and a token is taken only when the request can use it, so host
// slots freed together never release a burst the bucket did not allow).
func (p *Politeness) waitTurn(ctx context.Context, hs *hostState) error {
	if hs.slots != nil {
		select {
		case hs.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := p.waitToken(ctx, hs); err != nil {
		hs.release()
		return err
	}
	return nil
}

// release gives a host slot back; a no-op without PerHostParallelism.
func (hs *hostState) release() {
	if hs.slots != nil {
		<-hs.slots
	}
}

// waitToken waits for the host's pause to end and for a token, then for a
// global slot.
func (p *Politeness) waitToken(ctx context.Context, hs *hostState) error {
	now := p.now()
	hs.mu.Lock()
	var delay time.Duration
	if hs.pausedUntil.After(now) {
		delay = hs.pausedUntil.Sub(now)
	}
	// Reserve at the end of the pause so the bucket does not refill
	// during it and release a burst the moment it ends.
	r := hs.lim.ReserveN(now.Add(delay), 1)
	delay += r.DelayFrom(now.Add(delay))
	hs.stats.Tokens++
	hs.stats.Requests++
	if delay > 0 {
		hs.stats.Waits++
		hs.stats.Waited += delay
	}
	hs.mu.Unlock()
	p.tokens.Add(1)
	if delay > 0 {
		p.waits.Add(1)
		p.waited.Add(int64(delay))
		if err := p.sleep(ctx, delay); err != nil {
			r.CancelAt(p.now())
			return err
		}
	}
	if p.slots != nil {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// attempt sends one network request holding a global slot (and a slot of
// its host) until the body is done.
func (p *Politeness) attempt(req *http.Request, hs *hostState) (*http.Response, error) {
	p.requests.Add(1)
	release := func() {
		if p.slots != nil {
			<-p.slots
		}
		hs.release()
	}
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if p.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
	}
	out := req.Clone(ctx)
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			release()
			return nil, fmt.Errorf("replay request body: %w", err)
		}
		out.Body = body
	}
	up := p.Upstream
	if up == nil {
		up = http.DefaultTransport
	}
	resp, err := up.RoundTrip(out)
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, done: func() { cancel(); release() }, bytes: &p.bytes}
	return resp, nil
}

// slotBody gives the global slot back and ends the attempt's timeout when
// the body is closed. Reading to the end is not enough: the slot bounds the
// responses received and not yet durable (the cache closes the body after
// its store write), which bounds what a kill -9 can cost in downloads.
type slotBody struct {
	io.ReadCloser
	once  sync.Once
	done  func()
	bytes *atomic.Int64
}

func (b *slotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.bytes.Add(int64(n))
	return n, err
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// pause stops requests to the host for d (capped at MaxRetryAfter).
func (p *Politeness) pause(hs *hostState, d time.Duration) {
	d = min(d, MaxRetryAfter)
	until := p.now().Add(d)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.stats.Pauses++
	p.pauses.Add(1)
	if until.After(hs.pausedUntil) {
		hs.pausedUntil = until
	}
}

// backoff is the delay before retry number attempt+1: RetryBackoff·2^attempt
// with ±50% jitter, capped at MaxRetryAfter.
func (p *Politeness) backoff(attempt int) time.Duration {
	base := p.RetryBackoff
	if base <= 0 {
		base = DefaultRetryBackoff
	}
	d := base << min(attempt, 20)
	if d <= 0 || d > MaxRetryAfter {
		d = MaxRetryAfter
	}
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// transient reports whether a failed attempt is worth retrying: a sign the
// host is failing (hostFailure), or a 408 or 429 from a host that is up.
func transient(resp *http.Response, err error) bool {
	if hostFailure(resp, err) {
		return true
	}
	return err == nil && (resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests)
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date
// (relative to now). A date in the past means no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
