package crawler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/sitemap"
)

// SitemapOptions says which sitemaps a run reads before it crawls. The
// zero value reads none.
type SitemapOptions struct {
	// Discover reads, for each seed's scheme and host, the Sitemap: lines
	// of its robots.txt and its /sitemap.xml (a missing /sitemap.xml is
	// not a warning).
	Discover bool
	// URLs are sitemaps (or sitemap indexes) to read as well.
	URLs []string
	// TrustLastMod lets a <lastmod> no newer than a cached copy's last
	// validation count as fresh (cache.LastModHint.Trust).
	TrustLastMod bool
}

// maxSitemapNesting bounds how deep indexes may list indexes (the protocol
// allows none; some sites nest one level).
const maxSitemapNesting = 3

// sitemapRef is a sitemap file to read.
type sitemapRef struct {
	url      string
	nesting  int  // 0 for configured and discovered sitemaps
	implicit bool // /sitemap.xml guessed by Discover: absence is normal
}

// lastMods holds the <lastmod> of each URL the run's sitemaps listed, by
// normalized URL. Safe for concurrent use.
type lastMods struct {
	mu    sync.RWMutex
	m     map[string]time.Time
	trust bool
}

func (l *lastMods) get(u string) (time.Time, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t, ok := l.m[u]
	return t, ok
}

func (l *lastMods) set(u string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.m[u]; !ok || t.After(old) {
		l.m[u] = t
	}
}

// lastModTransport passes each request's sitemap <lastmod> to the cache
// (cache.WithLastMod). It sits between colly and the cache.
type lastModTransport struct {
	next http.RoundTripper
	c    *crawl
}

// RoundTrip adds the hint of req's URL, if any, and calls next.
func (t *lastModTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(withLastMod(t.c, req))
}

// withLastMod returns req with the sitemap <lastmod> of its URL on its
// context (cache.WithLastMod), req itself when there is none.
func withLastMod(c *crawl, req *http.Request) *http.Request {
	if l, ok := c.normalize(req.URL.String()); ok {
		if lm, ok := c.lastMods.get(l.URL); ok {
			return req.WithContext(cache.WithLastMod(req.Context(), cache.LastModHint{LastMod: lm, Trust: c.lastMods.trust}))
		}
	}
	return req
}

// pageTransport is the transport colly fetches pages through: the cache,
// with sitemap hints when the run reads sitemaps.
func (c *crawl) pageTransport() http.RoundTripper {
	if c.lastMods == nil {
		return c.cache
	}
	return &lastModTransport{next: c.cache, c: c}
}

// sitemapTally counts what the run's sitemaps gave.
type sitemapTally struct {
	files, entries, added, lastmods, problems int
}

// readSitemaps reads the run's sitemaps through the cache (so they are
// cached and revalidated like pages) and adds the URLs they list to the
// frontier as depth-0 entries, filtered like links (allowed_domains,
// include/exclude, robots.txt, max_pages), recording each URL's <lastmod>.
// A sitemap that cannot be fetched, is malformed or is over the protocol's
// limits is a warning naming it; the crawl goes on. It returns an error
// only when the frontier store fails.
func (c *crawl) readSitemaps(ctx context.Context) error {
	o := c.opts.Sitemaps
	if !o.Discover && len(o.URLs) == 0 {
		return nil
	}
	client := &http.Client{Transport: c.cache, Timeout: 2 * c.opts.Timeout, CheckRedirect: c.sitemapRedirect}
	queue := c.sitemapRoots(ctx)
	seen := map[string]bool{}
	var tally sitemapTally
	for len(queue) > 0 && ctx.Err() == nil {
		ref := queue[0]
		queue = queue[1:]
		if seen[ref.url] {
			continue
		}
		seen[ref.url] = true
		sm := c.fetchSitemap(ctx, client, ref, &tally)
		if sm == nil {
			continue
		}
		tally.files++
		if sm.Kind == sitemap.Index {
			if ref.nesting+1 > maxSitemapNesting {
				c.log.Warn("sitemap index nested too deep, not read", "sitemap", c.redact(ref.url), "max_nesting", maxSitemapNesting)
				tally.problems++
				continue
			}
			for _, e := range sm.Entries {
				queue = append(queue, sitemapRef{url: e.Loc, nesting: ref.nesting + 1})
			}
			continue
		}
		if err := c.addSitemapURLs(ctx, ref.url, sm.Entries, &tally); err != nil {
			return err
		}
	}
	c.log.Info("sitemaps read", "run", c.opts.RunID, "files", tally.files, "urls", tally.entries,
		"added", tally.added, "with_lastmod", tally.lastmods, "problems", tally.problems)
	return nil
}

// sitemapRoots lists the configured sitemaps and, with Discover, those of
// each seed host.
func (c *crawl) sitemapRoots(ctx context.Context) []sitemapRef {
	var out []sitemapRef
	for _, s := range c.opts.Sitemaps.URLs {
		out = append(out, sitemapRef{url: s})
	}
	if !c.opts.Sitemaps.Discover {
		return out
	}
	hosts := map[string]bool{}
	for _, s := range c.opts.Seeds {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || hosts[u.Scheme+"://"+u.Host] {
			continue
		}
		hosts[u.Scheme+"://"+u.Host] = true
		for _, line := range c.robotsSitemaps(ctx, u) {
			out = append(out, sitemapRef{url: line})
		}
		out = append(out, sitemapRef{url: u.Scheme + "://" + u.Host + "/sitemap.xml", implicit: true})
	}
	return out
}

// robotsSitemaps returns the Sitemap: lines of u's host's robots.txt, read
// through the run's robots cache when the run honours robots.txt.
func (c *crawl) robotsSitemaps(ctx context.Context, u *url.URL) []string {
	r := c.robots
	if c.opts.Robots {
		r.Allowed(ctx, u) // fetches the host's robots.txt once for the run
		r.mu.Lock()
		e := r.hosts[u.Host]
		r.mu.Unlock()
		if e == nil || e.data == nil {
			return nil
		}
		return e.data.Sitemaps
	}
	data, err := r.get(ctx, (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/robots.txt"}).String())
	if err != nil {
		c.log.Debug("robots.txt unavailable: no Sitemap lines from it", "host", u.Host, "err", err)
		return nil
	}
	return data.Sitemaps
}

// sitemapRedirect follows a sitemap's redirects only to allowed,
// robots-allowed URLs.
func (c *crawl) sitemapRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return ErrTooManyRedirects
	}
	return c.sitemapAllowed(req.Context(), req.URL)
}

// sitemapAllowed applies allowed_domains and robots.txt to a sitemap file
// (include/exclude are for pages, not for the sitemaps that list them).
func (c *crawl) sitemapAllowed(ctx context.Context, u *url.URL) error {
	if !c.hostAllowed(u) {
		return fmt.Errorf("host %s is not an allowed domain", u.Host)
	}
	if c.opts.Robots && !c.robots.Allowed(ctx, u) {
		return ErrRobots
	}
	return nil
}

// fetchSitemap fetches and parses one sitemap file. It logs a warning and
// returns what was read (possibly nil) when it fails.
func (c *crawl) fetchSitemap(ctx context.Context, client *http.Client, ref sitemapRef, tally *sitemapTally) *sitemap.Sitemap {
	name := c.redact(ref.url)
	warn := func(msg string, err error) {
		tally.problems++
		c.log.Warn(msg, "sitemap", name, "err", err)
	}
	u, err := url.Parse(ref.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		warn("sitemap skipped: not an absolute http(s) URL", err)
		return nil
	}
	if err := c.sitemapAllowed(ctx, u); err != nil {
		warn("sitemap skipped", err)
		return nil
	}
	resp, err := c.getSitemap(ctx, client, ref.url)
	if err != nil {
		if ctx.Err() == nil {
			warn("sitemap skipped", err)
		}
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if ref.implicit && resp.StatusCode == http.StatusNotFound {
			c.log.Debug("no /sitemap.xml", "sitemap", name)
			return nil
		}
		warn("sitemap skipped", fmt.Errorf("status %d", resp.StatusCode))
		return nil
	}
	sm, err := sitemap.Parse(io.LimitReader(resp.Body, sitemap.MaxBytes+1), resp.Request.URL)
	switch {
	case errors.Is(err, sitemap.ErrNotSitemap):
		warn("sitemap skipped", err)
		return nil
	case err != nil:
		warn(fmt.Sprintf("sitemap read in part: the %d entries before the problem are used", len(sm.Entries)), err)
	}
	if sm.Relative > 0 {
		c.log.Warn("sitemap has relative <loc> URLs (the protocol wants absolute ones); resolved against the sitemap's URL", "sitemap", name, "relative", sm.Relative)
	}
	return sm
}

func (c *crawl) getSitemap(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	// Revalidated at every run whatever the job's expiry (a conditional
	// request: a 304 costs no download): the sitemap is where the run
	// learns what changed.
	req, err := http.NewRequestWithContext(cache.WithRefresh(ctx), http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build sitemap request: %w", err)
	}
	for k, vs := range c.opts.Headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	return client.Do(req)
}

// addSitemapURLs adds a sitemap's pages to the frontier, in chunks, and
// records their <lastmod>.
func (c *crawl) addSitemapURLs(ctx context.Context, from string, entries []sitemap.Entry, tally *sitemapTally) error {
	src := frontier.Entry{URL: from, Depth: -1} // its links get depth 0, like seeds
	for len(entries) > 0 && ctx.Err() == nil {
		chunk := entries[:min(len(entries), linkChunk)]
		entries = entries[len(chunk):]
		raws := make([]string, len(chunk))
		for i, e := range chunk {
			raws[i] = e.Loc
			if l, ok := c.normalize(e.Loc); ok && !e.LastMod.IsZero() {
				c.lastMods.set(l.URL, e.LastMod)
				tally.lastmods++
			}
		}
		tally.entries += len(chunk)
		n, err := c.addLinks(ctx, c.filterLinks(src, raws))
		tally.added += n
		if err != nil {
			return err
		}
		c.signal()
	}
	return nil
}
