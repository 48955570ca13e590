package crawler

import (
	"context"
	"fmt"
	"net/http"

	"crawlcache/cache"
)

// openTransports builds the crawl's network path, below to above: the
// upstream transport, politeness, the cache, and robots.txt through the
// cache. Run and Inspect both use it, so a page inspected is fetched the
// way a run fetches it. The function returned closes what it opened.
func (c *crawl) openTransports(ctx context.Context) (func(), error) {
	upstream := c.opts.Upstream
	closeIdle := func() {}
	if upstream == nil {
		proxy := http.ProxyFromEnvironment
		switch {
		case c.opts.Proxy != nil:
			proxy = http.ProxyURL(c.opts.Proxy)
			// Scheme and host only: the user info is a credential.
			c.log.Info("network requests go through the job's proxy", "proxy", c.opts.Proxy.Scheme+"://"+c.opts.Proxy.Host)
		case c.opts.NoProxy:
			proxy = nil
		}
		t := newUpstream(c.opts.Parallelism, proxy)
		closeIdle = t.CloseIdleConnections
		upstream = t
	}
	c.polite = &Politeness{
		Upstream: upstream, PerHost: c.opts.PerHost, Burst: c.opts.Burst,
		Parallelism: c.opts.Parallelism, PerHostParallelism: c.opts.PerHostParallelism, RetryMax: c.opts.RetryMax,
		RetryBackoff: c.opts.RetryBackoff, Timeout: c.opts.Timeout, Sleep: c.opts.sleep,
	}
	// A private cache (Shared false): one job's own requests. Job binds
	// its credentialed entries under credentials: job.
	ct, err := cache.New(ctx, c.opts.Store, cache.Options{
		Database: c.opts.CacheDatabase, Upstream: c.polite, Policy: c.opts.CachePolicy, Now: c.opts.Now, Logger: c.log,
		MaxBodySize: c.maxBody, Job: c.opts.Job, RunStart: c.now(),
	})
	if err != nil {
		closeIdle()
		return nil, fmt.Errorf("open http cache in store: %w", err)
	}
	c.cache = ct
	c.robots = newRobots(&http.Client{Transport: ct, Timeout: 2 * c.opts.Timeout}, c.opts.UserAgent, c.opts.Headers, c.polite, c.log)
	return func() { ct.Close(); closeIdle() }, nil
}
