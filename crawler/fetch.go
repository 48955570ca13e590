package crawler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gocolly/colly/v2"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/pipeline"
)

// maxRedirects is the redirect limit per page (http.Client's default).
const maxRedirects = 10

// errDomainNotAllowed is recorded on a URL that redirects off the allowed
// domains.
var errDomainNotAllowed = errors.New("redirect to a domain that is not allowed")

// stateKey is the colly context key of a request's pageState.
const stateKey = "crawlcache.page"

// pageState collects what colly's callbacks see of one request; the fetch
// goroutine acts on it once Request returns (colly is used synchronously).
type pageState struct {
	resp  *colly.Response
	links []string
	pre   *preRead // the head read done before the request, if any
}

// fetcherFactor × Parallelism goroutines fetch pages, while the
// politeness transport lets at most Parallelism requests hold a network
// slot at once, from the request until the cache has stored the response
// (so a kill -9 costs at most Parallelism downloads): a goroutine whose
// response is being parsed, written by the pipeline or acknowledged in the
// store does not hold a slot, so the origin sees the same concurrency and
// that work no longer idles the network. Measured with make bench's cold
// crawl (1000 pages, 20 ms latency, parallelism 8): 0.75–0.80× plain colly
// with one goroutine per slot, 0.93–0.96× with two while a slot ended when
// the body was read; 0.78–0.82× on a busy machine (median 0.89× before,
// alternately) since a slot ends when the response is stored.
const fetcherFactor = 2

// claimFactor × Parallelism entries at most are claimed and not yet
// fetched, so every fetch goroutine finds work queued.
const claimFactor = 3

// fetcher runs fetcherFactor×Parallelism goroutines that fetch claimed entries through
// one shared collector.
type fetcher struct {
	c    *crawl
	col  *colly.Collector
	work chan frontier.Entry
	wg   sync.WaitGroup
}

func newFetcher(c *crawl) *fetcher {
	f := &fetcher{c: c, work: make(chan frontier.Entry, claimFactor*c.opts.Parallelism)}
	f.collector(c.fetchCtx)
	for range fetcherFactor * c.opts.Parallelism {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for e := range f.work {
				f.process(e)
			}
		}()
	}
	return f
}

// collector sets up f's colly collector, whose requests use ctx.
func (f *fetcher) collector(ctx context.Context) {
	c := f.c
	// colly reads at most MaxBodySize bytes and silently truncates; one
	// byte more than the limit tells a too-large body from a whole one.
	bodyLimit := int(min(c.maxBody+1, math.MaxInt32))
	f.col = colly.NewCollector(
		colly.UserAgent(c.opts.UserAgent),
		colly.AllowURLRevisit(),        // the frontier dedupes, not colly
		colly.IgnoreRobotsTxt(),        // robots are checked (and cached) here
		colly.ParseHTTPErrorResponse(), // every status reaches OnResponse
		colly.MaxBodySize(bodyLimit),   // see above
		colly.StdlibContext(ctx),       // in-flight requests outlive an interrupt by the grace period
	)
	c.detectCharset = f.col.DetectCharset
	f.col.WithTransport(releaseBodies{next: handoffTransport{next: c.pageTransport(), h: &c.handoffs}})
	f.col.SetRequestTimeout(0) // per network attempt in Politeness; a hit or a wait is not a timeout
	f.col.DisableCookies()
	f.col.SetRedirectHandler(f.redirect)
	f.col.OnResponse(func(r *colly.Response) {
		if st, ok := r.Ctx.GetAny(stateKey).(*pageState); ok {
			st.resp = r
		}
	})
	if groups, ok := parseSimpleFollow(c.follow); ok {
		c.linkSel = groups                              // found with the tokenizer in handle: no parse tree
		c.linkFinder = pipeline.NewLinkFinder(c.follow) // for pages the tokenizer reads differently
	} else if c.opts.Parses != nil {
		c.linkFinder = pipeline.NewLinkFinder(c.follow) // parsed only when no stored parse serves
	} else {
		f.followParsed()
	}
}

// followParsed collects links through colly's parsed document, for follow
// selectors the tokenizer cannot match.
func (f *fetcher) followParsed() {
	for _, sel := range f.c.follow {
		f.col.OnHTML(sel, func(e *colly.HTMLElement) {
			v := e.Attr("href")
			if v == "" {
				v = e.Attr("src")
			}
			if v == "" {
				return
			}
			if abs := e.Request.AbsoluteURL(v); abs != "" {
				if st, ok := e.Request.Ctx.GetAny(stateKey).(*pageState); ok {
					st.links = append(st.links, abs)
				}
			}
		})
	}
}

// wait stops the fetchers once the queued entries are handled.
func (f *fetcher) wait() {
	close(f.work)
	f.wg.Wait()
}

// redirect is colly's redirect handler: at most maxRedirects hops, only to
// allowed domains and robots-allowed paths.
func (f *fetcher) redirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return ErrTooManyRedirects
	}
	if !f.c.hostAllowed(req.URL) {
		return fmt.Errorf("%w: %s", errDomainNotAllowed, req.URL.Host)
	}
	// The run's context, not the request's: Inspect's requests may carry
	// a cache mode that must not apply to robots.txt.
	if f.c.opts.Robots && !f.c.robots.Allowed(f.c.fetchCtx, req.URL) {
		return fmt.Errorf("redirect to %s: %w", req.URL, ErrRobots)
	}
	return nil
}

// process fetches one claimed entry and finishes it: added links, a page
// for the pipeline, or a failure. After an interrupt an entry that did not
// get a response stays in flight and is released at the end of the run.
func (f *fetcher) process(e frontier.Entry) {
	c := f.c
	defer c.fetchDone()
	if c.runCtx.Err() != nil {
		return
	}
	reqURL := c.fetchURL(e)
	u, err := url.Parse(reqURL)
	if err != nil {
		c.markFailed(e, fmt.Errorf("parse url: %w", err))
		return
	}
	if c.hosts != nil {
		if !c.hosts.acquire(u.Host) {
			return // interrupted while another worker held the host
		}
		defer c.hosts.done(u.Host)
	}
	if c.opts.Robots && !c.robots.Allowed(c.fetchCtx, u) {
		c.markSkipped(e, ErrRobots)
		return
	}
	done, pre, tok := f.fromHead(e, reqURL)
	if done {
		return
	}
	st, err := f.get(reqURL, tok)
	st.pre = pre
	if st.resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		switch {
		case c.fetchCtx.Err() != nil, c.runCtx.Err() != nil && errors.Is(err, context.Canceled):
			return // interrupted: released at the end
		case errors.Is(err, errDomainNotAllowed), errors.Is(err, ErrRobots):
			c.markSkipped(e, err)
		default:
			c.markFailed(e, err)
		}
		return
	}
	f.handle(e, st)
}

// get requests reqURL with the job's headers through the collector, with
// the answer waiting under the handoff token tok if it is not empty
// (handoff.go); the state holds the response, if one came.
func (f *fetcher) get(reqURL, tok string) (*pageState, error) {
	st := &pageState{}
	cctx := colly.NewContext()
	cctx.Put(stateKey, st)
	hdr := f.c.requestHeader()
	if tok != "" {
		hdr.Set(handoffHeader, tok)
		defer f.c.handoffs.drop(tok)
	}
	err := f.col.Request(http.MethodGet, reqURL, nil, cctx, hdr)
	return st, err
}

// requestHeader is the header of a page request: the job's headers and
// its User-Agent.
func (c *crawl) requestHeader() http.Header {
	hdr := c.opts.Headers.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("User-Agent", c.opts.UserAgent)
	return hdr
}

// handle finishes an entry that got a response.
func (f *fetcher) handle(e frontier.Entry, st *pageState) {
	c := f.c
	r := st.resp
	if int64(len(r.Body)) > c.maxBody {
		c.markFailed(e, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, c.maxBody))
		return
	}
	status := r.StatusCode
	c.breakdown.status(status)
	if err := c.statusFailure(status); err != nil {
		c.markFailed(e, responded(err, status))
		return
	}
	served := r.Headers.Get(cache.HeaderServed)
	c.countServed(served)
	if status >= 400 || status < 200 {
		c.observe(c.redact(r.Request.URL.String()), r, nil, "", nil)
		c.markDone(e.ID) // a 404 or 410 is an answer: done, with no items
		return
	}
	finalURL := r.Request.URL
	if c.render != nil && c.render.applies(r) && !c.render.page(e, r, st) {
		return // failed (marked) or interrupted (released at the end)
	}
	pp := c.lookupParse(r, c.redact(finalURL.String()), st.pre)
	parse := c.countParse(r, pp)
	c.observe(c.redact(finalURL.String()), r, pp, parse, nil)
	c.finish(e, r, st, pp, pipeline.Page{
		RunID: c.opts.RunID, Job: c.opts.Job, URL: c.redact(finalURL.String()), Status: status,
		Header: utf8Header(*r.Headers), Body: r.Body, FetchedAt: c.now(), Served: served, Depth: e.Depth,
	})
}

// finish adds the links of e's page (r is nil when the page was finished
// from its head) and hands pg, with pp's stored items, to the pipeline,
// or acknowledges e when the run has none. Interrupted or failed, the
// entry is released at the end.
func (c *crawl) finish(e frontier.Entry, r *colly.Response, st *pageState, pp *pageParse, pg pipeline.Page) {
	if !c.addPageLinks(e, r, st, pp) {
		return
	}
	if c.pagesCh == nil {
		c.saveParse(pp, nil)
		c.markDone(e.ID)
		return
	}
	if pp != nil {
		pg.Stored, pg.Meta = pp.stored, pp
	}
	c.toPipeline(e, pg)
}

// statusFailure is why a response with status fails its URL, nil when the
// status is an answer (2xx, or a 4xx other than 408 and 429).
func (c *crawl) statusFailure(status int) error {
	switch {
	case status >= 300 && status < 400:
		// Redirects are followed by the client; one that is left is a 304
		// the cache could not answer or a redirect without a Location.
		return fmt.Errorf("%w: status %d", errUnfollowedRedirect, status)
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		return &statusError{status: status, retries: c.opts.RetryMax}
	case status == http.StatusProxyAuthRequired:
		// The proxy's answer, not the site's: every URL would get it.
		return fmt.Errorf("the proxy refused its credentials (check the job's proxy key or HTTP_PROXY): %w", &statusError{status: status})
	}
	return nil
}

// linkChunk is how many links of a page are filtered and added at once: a
// page of a million links is added in chunks, so that its links never sit
// in memory all at once and an interrupt stops it between two chunks.
const linkChunk = 5000

// addPageLinks adds the links of e's page r to the frontier, chunk by
// chunk. It returns false if the run was interrupted between two chunks
// (the page is then done again on resume; adding links is idempotent) or
// the store failed (then fatal).
func (c *crawl) addPageLinks(e frontier.Entry, r *colly.Response, st *pageState, pp *pageParse) bool {
	if c.opts.MaxDepth > 0 && e.Depth+1 > c.opts.MaxDepth {
		if pp != nil && pp.rec == nil {
			c.findLinks(r, st, pp, func(string) bool { return true }) // for the record only
		}
		return true
	}
	chunk := make([]string, 0, min(linkChunk, len(st.links)+64))
	ok := true
	flush := func() {
		links := c.filterLinks(e, chunk)
		chunk = chunk[:0]
		if _, err := c.addLinks(c.ackCtx, links); err != nil {
			c.setFatal(err)
			ok = false
			return
		}
		c.signal()
	}
	c.findLinks(r, st, pp, func(u string) bool {
		chunk = append(chunk, u)
		if len(chunk) == linkChunk {
			flush()
			if ok && c.runCtx.Err() != nil {
				ok = false // interrupted in the middle of a huge page
			}
		}
		return ok
	})
	if ok && len(chunk) > 0 {
		flush()
	}
	return ok
}

// pageLinks calls each with the absolute URL of every link the follow
// selectors find on r, in page order, until each returns false.
func (c *crawl) pageLinks(r *colly.Response, st *pageState, each func(string) bool) {
	c.findLinks(r, st, nil, each)
}

// countServed counts a page by how the cache served it.
func (c *crawl) countServed(served string) {
	c.pages.Add(1)
	switch served {
	case cache.ServedHit:
		c.hits.Add(1)
	case cache.ServedRevalidated:
		c.revalidated.Add(1)
	case cache.ServedStale:
		c.stale.Add(1)
	default:
		c.misses.Add(1)
	}
}

// utf8Header returns a copy of h whose Content-Type says UTF-8 when colly
// has converted a body declared in another charset, so the pipeline does not
// decode it a second time.
func utf8Header(h http.Header) http.Header {
	h = h.Clone()
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return h
	}
	cs := strings.ToLower(params["charset"])
	if cs == "" || cs == "utf-8" || cs == "utf8" {
		return h
	}
	for _, p := range []string{"image/", "video/", "audio/", "font/"} {
		if strings.HasPrefix(mt, p) {
			return h
		}
	}
	params["charset"] = "utf-8"
	h.Set("Content-Type", mime.FormatMediaType(mt, params))
	return h
}
