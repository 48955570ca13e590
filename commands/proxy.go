package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/cache"
	"crawlcache/configs"
	"crawlcache/proxy"
	"crawlcache/store"
)

// proxyMinMemoryLimit is the least soft memory limit the proxy sets: the
// embedded store, connections and copy buffers need some heap whatever
// --max-buffer is.
const proxyMinMemoryLimit = 64 << 20

func proxyCommand() *cli.Command {
	return &cli.Command{
		Name:  "proxy",
		Usage: "share the cache with any HTTP client through a local caching proxy",
		Description: "With --upstream it is a caching reverse proxy in front of one origin (record and replay a site or\n" +
			"an API). Without it, a forward proxy for http:// URLs: set HTTP_PROXY=http://127.0.0.1:8081.\n" +
			"https:// URLs go through CONNECT tunnels and are NOT cached (the proxy cannot see inside TLS).\n" +
			"Every response carries X-Crawlcache: hit, miss, revalidated or stale.",
		Flags: append(storeFlags(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8081", Usage: "address to listen on (loopback unless --public)", EnvVars: []string{"CRAWLCACHE_PROXY_LISTEN"}},
			&cli.StringFlag{Name: "upstream", Usage: "origin URL for a reverse proxy, e.g. http://127.0.0.1:8000; empty = forward proxy", EnvVars: []string{"CRAWLCACHE_PROXY_UPSTREAM"}},
			&cli.StringSliceFlag{Name: "allow", Usage: "destinations a forward proxy may reach: host[:port], *.example.org, 10.0.0.0/8, or * for every public host (repeat or comma-separate); a host without a port allows ports 80 and 443; loopback and private addresses only when named; default every public host, CONNECT to 443 only", EnvVars: []string{"CRAWLCACHE_PROXY_ALLOW"}},
			&cli.StringFlag{Name: "max-buffer", Value: "256MiB", Usage: "memory for response bodies being stored while they stream to clients, shared by all requests; past it responses stream through uncached", EnvVars: []string{"CRAWLCACHE_PROXY_MAX_BUFFER"}},
			&cli.StringFlag{Name: "max-request-body", Value: "1GiB", Usage: "largest request body forwarded (streamed, never held whole); past it 413", EnvVars: []string{"CRAWLCACHE_PROXY_MAX_REQUEST_BODY"}},
			&cli.BoolFlag{Name: "public", Usage: "allow a non-loopback --listen address (an open proxy: combine with --allow)", EnvVars: []string{"CRAWLCACHE_PROXY_PUBLIC"}},
			&cli.StringFlag{Name: "policy", Usage: "YAML file with cache policy keys (expire_after, urls_expire_after, cache_control, ...), as in a job's cache: section", EnvVars: []string{"CRAWLCACHE_PROXY_POLICY"}},
			&cli.StringFlag{Name: "expire-after", Usage: "freshness lifetime: a duration, 0s (revalidate every time), never, do_not_cache or adaptive (overrides --policy)", EnvVars: []string{"CRAWLCACHE_EXPIRE_AFTER"}},
			&cli.BoolFlag{Name: "cache-control", Usage: "follow RFC 9111 (Cache-Control, Expires, Vary, Age; shared-cache rules unless --private) instead of the crawler policy", EnvVars: []string{"CRAWLCACHE_CACHE_CONTROL"}},
			&cli.BoolFlag{Name: "private", Usage: "be a private cache for a single user (RFC 9111): store private responses and Set-Cookie; default is a shared cache", EnvVars: []string{"CRAWLCACHE_PROXY_PRIVATE"}},
			&cli.BoolFlag{Name: "cdn-cache-control", Usage: "reverse proxy acting as the origin's CDN: obey CDN-Cache-Control (RFC 9213) over Cache-Control", EnvVars: []string{"CRAWLCACHE_PROXY_CDN_CACHE_CONTROL"}},
			durationFlag("stale-if-error", 0, "serve a stale entry for up to this long past expiry when the origin fails", "CRAWLCACHE_STALE_IF_ERROR"),
			&cli.BoolFlag{Name: "only-if-cached", Usage: "offline replay: never use the network, 504 on a miss", EnvVars: []string{"CRAWLCACHE_ONLY_IF_CACHED"}},
			&cli.StringFlag{Name: "db", Value: cache.DefaultDatabase, Usage: "database of the cache", EnvVars: []string{"CRAWLCACHE_CACHE_DB"}},
		),
		Action: runProxy,
	}
}

func proxyPolicy(c *cli.Context) (cache.Policy, error) {
	var pol cache.Policy
	if path := c.String("policy"); path != "" {
		job, err := configs.LoadPolicy(path)
		if err != nil {
			return pol, err
		}
		pol = job.Cache
	}
	if s := c.String("expire-after"); s != "" {
		exp, err := configs.ParseExpiry(s)
		if err != nil {
			return pol, fmt.Errorf("--expire-after: %w", err)
		}
		pol.ExpireAfter = exp
	}
	if c.IsSet("cache-control") {
		pol.CacheControl = c.Bool("cache-control")
	}
	if c.IsSet("stale-if-error") {
		pol.StaleIfError = flagDuration(c, "stale-if-error")
	}
	if c.IsSet("only-if-cached") {
		pol.OnlyIfCached = c.Bool("only-if-cached")
	}
	return pol, proxyAdaptiveCheck(c, pol)
}

// proxyAdaptiveCheck refuses what a job's config refuses of adaptive
// revisits once the flags have overridden the policy file: adaptive with
// RFC 9111 mode, which ignores expire_after, and adaptive bounds with no
// adaptive expiry left. A file alone is checked when it is loaded.
func proxyAdaptiveCheck(c *cli.Context, pol cache.Policy) error {
	file := c.String("policy")
	uses := configs.UsesAdaptive(pol)
	if uses && pol.CacheControl {
		cc, fix := "--cache-control", "remove --cache-control, or"
		if !c.IsSet("cache-control") {
			cc, fix = "cache_control: true in "+file, "remove cache_control from "+file+", or"
		}
		var ad, fixAd []string
		if c.IsSet("expire-after") && pol.ExpireAfter.Kind == cache.ExpireAdaptive {
			ad = append(ad, "--expire-after adaptive")
			fixAd = append(fixAd, "give --expire-after a duration, 0s, never or do_not_cache")
		}
		if configs.UsesAdaptive(cache.Policy{URLsExpireAfter: pol.URLsExpireAfter}) ||
			(!c.IsSet("expire-after") && pol.ExpireAfter.Kind == cache.ExpireAdaptive) {
			ad = append(ad, "the adaptive expiry in "+file)
			fixAd = append(fixAd, "remove the adaptive expiry from "+file)
		}
		return fmt.Errorf("%s follows RFC 9111 and ignores expire_after, so adaptive revisits (%s) would never apply: %s %s",
			cc, strings.Join(ad, " and "), fix, strings.Join(fixAd, " and "))
	}
	a := pol.Adaptive
	if !uses && (a.Min != 0 || a.Max != 0 || a.Initial != 0) {
		return fmt.Errorf("--expire-after %s replaces the adaptive expiry of %s, whose adaptive: bounds would then never apply: use --expire-after adaptive, or remove adaptive: from %s", c.String("expire-after"), file, file)
	}
	return nil
}

func runProxy(c *cli.Context) error {
	listen := c.String("listen")
	if err := proxy.CheckListen(listen, c.Bool("public")); err != nil {
		return err
	}
	var upstream *url.URL
	if raw := c.String("upstream"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--upstream %q: want an absolute http:// or https:// URL such as http://127.0.0.1:8000", raw)
		}
		upstream = u
	}
	pol, err := proxyPolicy(c)
	if err != nil {
		return err
	}
	maxReq, maxBuf, err := proxyLimits(c, upstream)
	if err != nil {
		return err
	}
	if err := proxy.CheckAllow(c.StringSlice("allow")); err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// The GC's default target lets the heap reach twice what is live;
		// bodies held within --max-buffer come and go in bursts, so keep
		// the heap within the budget instead.
		debug.SetMemoryLimit(max(maxBuf, proxyMinMemoryLimit))
	}
	return withStore(c, func(ctx context.Context, s *store.Store) error {
		guard := &proxy.Guard{Allow: c.StringSlice("allow"), Deny: proxy.StoreAddrs(s.URI)}
		if upstream != nil {
			guard = proxy.ReverseGuard(upstream, guard.Deny)
			if _, err := guard.Check(ctx, guard.Allow[0], false); errors.Is(err, proxy.ErrDenied) {
				return fmt.Errorf("--upstream %s: %w", upstream, err)
			}
		}
		db := c.String("db")
		budget := cache.NewBudget(maxBuf)
		t, err := cache.New(ctx, s, cache.Options{Database: db, Policy: pol,
			Upstream: proxy.NewUpstream(guard), Stream: true, Buffer: budget,
			Shared: !c.Bool("private"), CDNCacheControl: c.Bool("cdn-cache-control")})
		if err != nil {
			return err
		}
		defer t.Close()
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("proxy listen on %s: %w", listen, err)
		}
		h := &proxy.Handler{Transport: t, Upstream: upstream, Guard: guard, MaxRequestBody: maxReq}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}

		printProxyBanner(c, ln.Addr(), upstream, s)
		if c.Bool("public") {
			slog.Warn("the proxy listens on a non-loopback address: anyone who reaches it can use it", "listen", listen, "allow", c.StringSlice("allow"))
		}

		counters := proxy.NewCounterSink(s, db, "proxy", t.Stats)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if err := counters.Flush(ctx); err != nil {
					slog.Debug("save proxy counters", "err", err)
				}
			case err := <-errc:
				return fmt.Errorf("proxy: %w", err)
			case <-ctx.Done():
				shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := srv.Shutdown(shutdownCtx)
				if ferr := counters.Flush(shutdownCtx); ferr != nil {
					slog.Warn("save proxy counters", "err", ferr)
				}
				st := t.Stats()
				fmt.Fprintf(c.App.Writer, "proxy stopped: %d hits, %d misses, %d revalidated, %d stale; not stored: %d too large, %d past --max-buffer\n",
					st.Hits, st.Misses, st.Revalidated, st.Stale, st.TooLarge, budget.Refused())
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("proxy shutdown: %w", err)
				}
				return nil
			}
		}
	})
}

// proxyLimits checks the flags that bound what the proxy holds and does:
// --max-request-body, --max-buffer and --cdn-cache-control.
func proxyLimits(c *cli.Context, upstream *url.URL) (maxReq, maxBuf int64, err error) {
	if c.Bool("cdn-cache-control") && (upstream == nil || c.Bool("private")) {
		return 0, 0, fmt.Errorf("--cdn-cache-control: only a shared reverse proxy (with --upstream, without --private) acts as a CDN for its origin")
	}
	maxReq, err = configs.ParseSize(c.String("max-request-body"))
	if err != nil || maxReq == 0 {
		return 0, 0, fmt.Errorf("--max-request-body %q: want a size > 0 like 1GiB or 10485760", c.String("max-request-body"))
	}
	maxBuf, err = configs.ParseSize(c.String("max-buffer"))
	if err != nil || maxBuf == 0 {
		return 0, 0, fmt.Errorf("--max-buffer %q: want a size > 0 like 256MiB", c.String("max-buffer"))
	}
	return maxReq, maxBuf, nil
}

// printProxyBanner says where the proxy listens, what it proxies, its store
// and its role.
func printProxyBanner(c *cli.Context, addr net.Addr, upstream *url.URL, s *store.Store) {
	mode := "forward proxy for http:// URLs (https passes through CONNECT uncached)"
	if upstream != nil {
		mode = "reverse proxy for " + upstream.String()
	}
	fmt.Fprintf(c.App.Writer, "crawlcache proxy on http://%s: %s\n", addr, mode)
	role := "shared cache (many clients; --private for one user)"
	if c.Bool("private") {
		role = "private cache (one user)"
	}
	fmt.Fprintf(c.App.Writer, "cache: %s, db %s, %s\n", s.Describe(), c.String("db"), role)
	if upstream == nil {
		fmt.Fprintf(c.App.Writer, "use it with: HTTP_PROXY=http://%s curl -i http://example.org/\n", addr)
	}
}
