package crawler

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/gocolly/colly/v2"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/render"
)

// RenderOptions turns rendering on for a Run: HTML pages (2xx) whose URL
// matches Include (or every one, if it is empty) are loaded in headless
// Chromium, every request the browser makes going through the run's
// cache.Transport and politeness, and the rendered DOM is what the links
// are found in and what the pipeline sees.
type RenderOptions struct {
	// Chromium is the browser executable; if empty, found on PATH
	// (render.FindChromium).
	Chromium string
	// Wait, Timeout, Parallelism, Block and Cookies configure the
	// renderer (render.Options); zero values take render's defaults, a nil
	// Block blocks images, fonts and media.
	Wait        render.Wait
	Timeout     time.Duration
	Parallelism int
	Block       []string
	Cookies     bool
	// Include, if not empty, limits rendering to matching page URLs.
	Include []*regexp.Regexp
	// TabsPerBrowser and PagesPerBrowser size and recycle the browsers;
	// zero means render's defaults.
	TabsPerBrowser, PagesPerBrowser int
	// NoReuse renders every page, even one whose stored render could be
	// served because nothing it loaded changed (benchmarks).
	NoReuse bool
}

// renderer is a run's rendering: the browser pool and the store of
// rendered pages.
type renderer struct {
	c      *crawl
	opts   RenderOptions
	pool   *render.Pool
	stored *render.Store
	// storeCache is the cache transport under stored.
	storeCache *cache.Transport
	// thirdParty answers robots.txt of hosts outside the allowed domains
	// without the job's headers (its credentials go to its own domains
	// only).
	thirdParty *robots
}

// newRenderer starts the pool (browsers start with the first page). It
// fails when Chromium is missing, with the way to install it.
func newRenderer(ctx context.Context, c *crawl) (*renderer, error) {
	o := *c.opts.Render
	r := &renderer{c: c, opts: o}
	r.thirdParty = newRobots(&http.Client{Transport: c.cache, Timeout: 2 * c.opts.Timeout}, c.opts.UserAgent, nil, c.polite, c.log)
	pool, err := render.NewPool(render.Options{
		Chromium: o.Chromium, Transport: c.cache, Wait: o.Wait, Timeout: o.Timeout,
		Parallelism: o.Parallelism, TabsPerBrowser: o.TabsPerBrowser, PagesPerBrowser: o.PagesPerBrowser,
		Block: o.Block, Cookies: o.Cookies, UserAgent: c.opts.UserAgent, MaxBodySize: c.maxBody,
		Headers: c.opts.Headers, HeadersFor: c.hostAllowed, Allowed: r.robotsAllowed, Logger: c.log,
	})
	if err != nil {
		return nil, fmt.Errorf("job renders pages: %w", err)
	}
	r.pool = pool
	r.stored, err = render.NewStore(render.StoreOptions{
		Pages: c.cache, Headers: c.opts.Headers, HeadersFor: c.hostAllowed, Logger: c.log,
		Wait: o.Wait, Block: o.Block, Cookies: o.Cookies, UserAgent: c.opts.UserAgent, Follow: c.follow,
		Open: func(up http.RoundTripper) (http.RoundTripper, error) {
			pol := c.opts.CachePolicy
			pol.ExpireAfter, pol.URLsExpireAfter = cache.Expiry{Kind: cache.ExpireNever}, nil
			pol.AllowableCodes, pol.AllowableMethods = []int{http.StatusOK}, []string{http.MethodGet}
			pol.CacheControl, pol.OnlyIfCached, pol.StaleIfError, pol.StaleWhileRevalidate = false, false, 0, 0
			pol.MatchHeaders = []string{render.HeaderRenderKey}
			ct, err := cache.New(ctx, c.opts.Store, cache.Options{
				Database: c.opts.CacheDatabase, Upstream: up, Policy: pol, Now: c.opts.Now, Logger: c.log,
				MaxBodySize: c.maxBody, Job: c.opts.Job,
				Responses: render.StoreResponses, Redirects: render.StoreRedirects,
				Revalidations: render.StoreRevalidations, Variants: render.StoreVariants, Pages: render.StorePages,
			})
			r.storeCache = ct
			return ct, err
		},
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open the store of rendered pages: %w", err)
	}
	return r, nil
}

// close stops the browsers.
func (r *renderer) close() {
	r.pool.Close()
	if r.storeCache != nil {
		r.storeCache.Close()
	}
	st := r.pool.Stats()
	r.c.log.Info("rendering done", "rendered", st.Pages, "reused", r.stored.Reused(), "failed", st.Failed,
		"retried", st.Retries, "browsers", st.Launches, "lost", st.Lost, "recycled", st.Recycled,
		"requests", st.Requests, "refused", st.Blocked, "escaped", st.Escaped)
}

// counts returns the pages rendered and the stored renders reused.
func (r *renderer) counts() (rendered, reused int64) {
	return r.pool.Stats().Pages, r.stored.Reused()
}

// robotsAllowed is robots.txt for a request of a render: the run's own
// check for allowed hosts, one without credentials for the others.
func (r *renderer) robotsAllowed(ctx context.Context, u *url.URL) bool {
	if !r.c.opts.Robots {
		return true
	}
	if r.c.hostAllowed(u) {
		return r.c.robots.Allowed(ctx, u)
	}
	return r.thirdParty.Allowed(ctx, u)
}

// applies reports whether page r is rendered.
func (r *renderer) applies(resp *colly.Response) bool {
	if !isHTML(*resp.Headers, resp.Body) {
		return false
	}
	if len(r.opts.Include) == 0 {
		return true
	}
	u := r.c.redact(resp.Request.URL.String())
	for _, re := range r.opts.Include {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

// page renders e's page in place: the body becomes the rendered HTML and,
// for follow selectors the tokenizer does not handle, the links become
// those the browser found. A stored render is used instead when nothing
// the page loaded changed. It returns false when the page failed (it is
// then marked failed) or the run is stopping (released at the end).
func (r *renderer) page(e frontier.Entry, resp *colly.Response, st *pageState) bool {
	c := r.c
	if err := r.into(resp, st); err != nil {
		if c.fetchCtx.Err() != nil {
			return false
		}
		c.markFailed(e, responded(err, resp.StatusCode))
		return false
	}
	return true
}

// into replaces resp's body (and st's links) with the rendered page.
func (r *renderer) into(resp *colly.Response, st *pageState) error {
	c := r.c
	pg := render.Page{
		URL: resp.Request.URL.String(), Status: resp.StatusCode, Header: resp.Headers.Clone(), Body: resp.Body,
	}
	if c.linkSel == nil {
		pg.Follow = c.follow
	}
	res, err := r.render(c.fetchCtx, pg)
	if err != nil {
		return err
	}
	resp.Body = res.HTML
	resp.Headers.Set("Content-Type", "text/html; charset=utf-8")
	resp.Headers.Del("Content-Length")
	resp.Headers.Del(cache.HeaderBodySHA256) // the hash of the body before rendering
	if c.linkSel == nil {
		st.links = res.Links
	}
	return nil
}

// render returns the stored render of pg when nothing it loaded changed,
// else renders it and stores the result.
func (r *renderer) render(ctx context.Context, pg render.Page) (*render.Result, error) {
	if !r.opts.NoReuse {
		if res, ok := r.stored.Reuse(ctx, pg); ok {
			return res, nil
		}
	}
	res, err := r.pool.Render(ctx, pg)
	if err != nil {
		return nil, err
	}
	r.stored.Save(ctx, pg, res)
	return res, nil
}
