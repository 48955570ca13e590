package crawler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/pipeline"
)

// Inspection is what a run does with one page: how it was served, the page
// the crawler hands to the pipeline, and the verdict on every link the
// follow selectors find on it. Every URL in it is redacted as logs and
// outputs show it (secret query parameters REDACTED).
type Inspection struct {
	// URL is the page's URL as the frontier holds it (normalized).
	URL string
	// FinalURL is the URL of the response, after redirects.
	FinalURL string
	// Depth is the page's link depth (0 for a seed).
	Depth int
	// Status is the response's HTTP status; 0 when none came.
	Status int
	// Served says how the cache answered: cache.ServedHit, ServedStale
	// (a stored copy past its freshness, used as it is), ServedRevalidated
	// or ServedMiss (fetched now, and stored).
	Served string
	// Page is what a run hands to the pipeline (extract, outputs); nil
	// when it does not: a failure, or a status other than 2xx.
	Page *pipeline.Page
	// Links are the links found on the page, in page order, each with its
	// verdict; empty unless Page is set.
	Links []LinkVerdict
	// Failure is why a run marks the URL failed or skips it (robots.txt,
	// an error status left after retries, a body too large, a redirect
	// off the allowed domains); nil when it handles the page.
	Failure error
}

// LinkVerdict is the decision on one link found on a page.
type LinkVerdict struct {
	// URL is the link normalized as the frontier stores it (the raw value
	// when it is not an http(s) URL).
	URL string
	// Depth is the depth the link would have in the frontier.
	Depth int
	// Skip is "" for a link a run follows (adds to its frontier), else
	// one of the Skip* reasons.
	Skip string
	// Rule is what decided a skip when one rule did: the exclude pattern
	// matched, or "max_depth N".
	Rule string
}

// Inspect does to one page what Run does to a URL it claims, without a
// frontier, a pipeline or a run: the page is read from the cache whatever
// its freshness (the copy a user writes selectors against), and fetched
// only when nothing is stored for it, through the cache (which stores it),
// politeness and robots.txt exactly as a run fetches it. Its links are
// found by the follow selectors and judged by the run's own rules (scheme,
// duplicates, depth, allowed domains, include/exclude, robots.txt), with
// the page at depth. max_pages, a limit on the run's frontier, is not
// judged.
//
// opts are Run's; RunID and Job only label the page (as in items), and
// Frontier, Pipeline, Resume and the progress and interrupt hooks are not
// used. The error is for what stops the inspection itself (the URL is not
// http(s), the store cannot be opened, ctx ends); what a run would record
// against the URL is Inspection.Failure.
func Inspect(ctx context.Context, opts Options, rawURL string, depth int) (*Inspection, error) {
	c, err := buildCrawl(opts)
	if err != nil {
		return nil, err
	}
	c.start = time.Now()
	closeTransports, err := c.openTransports(ctx)
	if err != nil {
		return nil, err
	}
	defer closeTransports()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	c.runCtx, c.stop, c.ackCtx, c.fetchCtx = runCtx, stop, context.WithoutCancel(ctx), ctx

	if c.opts.Render != nil { // a run renders its pages: so does the inspection
		if c.render, err = newRenderer(ctx, c); err != nil {
			return nil, err
		}
		defer c.render.close()
	}
	c.learnSeeds()
	l, ok := c.seedLink(rawURL)
	if !ok {
		return nil, fmt.Errorf("inspect %q: not an absolute http(s) url", c.redact(rawURL))
	}
	e := frontier.Entry{URL: l.URL, Host: l.Host, Depth: depth}
	in := &Inspection{URL: l.URL, FinalURL: l.URL, Depth: depth}
	reqURL := c.fetchURL(e)
	u, err := url.Parse(reqURL)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", l.URL, err)
	}
	if c.opts.Robots && !c.robots.Allowed(ctx, u) {
		in.Failure = ErrRobots
		return in, ctx.Err()
	}
	st, err := c.getCachedFirst(ctx, reqURL)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if st.resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		in.Failure = c.scrubErr(e, err)
		return in, nil
	}
	c.inspectResponse(in, e, st)
	return in, nil
}

// getCachedFirst requests reqURL with the cache in offline mode (any
// stored copy is served, fresh or not), and again normally when nothing is
// stored for it.
func (c *crawl) getCachedFirst(ctx context.Context, reqURL string) (*pageState, error) {
	offline := &fetcher{c: c}
	offline.collector(cache.WithOnlyIfCached(ctx))
	st, err := offline.get(reqURL, "")
	if st.resp != nil && !(st.resp.StatusCode == http.StatusGatewayTimeout && st.resp.Headers.Get(cache.HeaderServed) == cache.ServedMiss) {
		return st, err
	}
	if c.opts.CachePolicy.OnlyIfCached {
		return st, err // the job itself replays offline: a miss stays a miss
	}
	online := &fetcher{c: c}
	online.collector(ctx)
	return online.get(reqURL, "")
}

// inspectResponse fills in what a run does with the response in st: the
// same checks as fetcher.handle, then the page and its links.
func (c *crawl) inspectResponse(in *Inspection, e frontier.Entry, st *pageState) {
	r := st.resp
	in.Status = r.StatusCode
	in.Served = r.Headers.Get(cache.HeaderServed)
	in.FinalURL = c.redact(r.Request.URL.String())
	if int64(len(r.Body)) > c.maxBody {
		in.Failure = fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, c.maxBody)
		return
	}
	if err := c.statusFailure(r.StatusCode); err != nil {
		in.Failure = err
		return
	}
	if r.StatusCode < 200 || r.StatusCode >= 400 {
		return // an answer with no items and no links
	}
	if c.render != nil && c.render.applies(r) {
		if err := c.render.into(r, st); err != nil {
			in.Failure = err
			return
		}
	}
	seen := make(map[string]bool)
	c.pageLinks(r, st, func(raw string) bool {
		l, skip, rule := c.judgeLink(e, raw, seen)
		in.Links = append(in.Links, LinkVerdict{URL: c.redact(l.URL), Depth: l.Depth, Skip: skip, Rule: rule})
		return true
	})
	in.Page = &pipeline.Page{
		RunID: c.opts.RunID, Job: c.opts.Job, URL: in.FinalURL, Status: r.StatusCode,
		Header: utf8Header(*r.Headers), Body: r.Body, FetchedAt: c.now(), Served: in.Served, Depth: e.Depth,
	}
}
