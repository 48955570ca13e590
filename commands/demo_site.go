package commands

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/testsite"
)

// siteCommand runs the bundled demo shop (package testsite) in the
// foreground, for `make run` and for trying crawl configs without the internet.
func siteCommand() *cli.Command {
	return &cli.Command{
		Name:  "site",
		Usage: "run the bundled demo web site",
		Subcommands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "serve the deterministic demo shop until Ctrl-C",
				Description: "Serves a generated shop: a home page, paginated category listings and --pages product\n" +
					"pages (article.product items with h2 titles and .price), robots.txt disallowing /private/,\n" +
					"strong ETags and Last-Modified with 304 answers, and optional latency and faults.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8089", Usage: "address to listen on", EnvVars: []string{"CRAWLCACHE_SITE_LISTEN"}},
					&cli.IntFlag{Name: "pages", Value: 300, Usage: "number of product pages", EnvVars: []string{"CRAWLCACHE_SITE_PAGES"}},
					&cli.Int64Flag{Name: "seed", Value: 1, Usage: "site generator seed (same seed, same site)", EnvVars: []string{"CRAWLCACHE_SITE_SEED"}},
					durationFlag("latency", 0, "delay before every response, e.g. 20ms", "CRAWLCACHE_SITE_LATENCY"),
					&cli.Int64Flag{Name: "bandwidth", Usage: "bytes per second of a body's transfer, added after --latency (0: unlimited; 304s carry no body)", EnvVars: []string{"CRAWLCACHE_SITE_BANDWIDTH"}},
					&cli.StringFlag{Name: "cache-control", Value: "max-age=0", Usage: "Cache-Control header of pages", EnvVars: []string{"CRAWLCACHE_SITE_CACHE_CONTROL"}},
					durationFlag("crawl-delay", 0, "Crawl-delay announced in robots.txt (0: none)", "CRAWLCACHE_SITE_CRAWL_DELAY"),
					&cli.Float64Flag{Name: "error-rate", Usage: "fraction of requests answered 500/502/503/504", EnvVars: []string{"CRAWLCACHE_SITE_ERROR_RATE"}},
					&cli.Float64Flag{Name: "timeout-rate", Usage: "fraction of requests never answered", EnvVars: []string{"CRAWLCACHE_SITE_TIMEOUT_RATE"}},
					&cli.Float64Flag{Name: "reset-rate", Usage: "fraction of requests whose connection is reset", EnvVars: []string{"CRAWLCACHE_SITE_RESET_RATE"}},
					&cli.Float64Flag{Name: "rate-limit-rate", Usage: "fraction of requests answered 429 with Retry-After", EnvVars: []string{"CRAWLCACHE_SITE_RATE_LIMIT_RATE"}},
					&cli.Float64Flag{Name: "change", Value: 0.1, Usage: "fraction of product pages changed every --change-every", EnvVars: []string{"CRAWLCACHE_SITE_CHANGE"}},
					&cli.StringFlag{Name: "control", Value: "/_testsite/", Usage: "path prefix of the control endpoints (GET counts, POST reset, POST change?fraction=); empty disables them", EnvVars: []string{"CRAWLCACHE_SITE_CONTROL"}},
					durationFlag("change-every", 0, "change --change of the pages at this interval (0: never)", "CRAWLCACHE_SITE_CHANGE_EVERY"),
				},
				Action: serveSite,
			},
		},
	}
}

func serveSite(c *cli.Context) error {
	if c.Int("pages") < 1 {
		return fmt.Errorf("--pages %d: want at least 1", c.Int("pages"))
	}
	site := testsite.New(testsite.Options{
		Pages:        c.Int("pages"),
		Seed:         c.Int64("seed"),
		Latency:      flagDuration(c, "latency"),
		Bandwidth:    c.Int64("bandwidth"),
		Clock:        time.Now,
		CacheControl: c.String("cache-control"),
		CrawlDelay:   flagDuration(c, "crawl-delay"),
		Control:      c.String("control"),
		NoRequestLog: true, // nobody reads it in this process
		Faults: testsite.Faults{
			ErrorRate:     c.Float64("error-rate"),
			TimeoutRate:   c.Float64("timeout-rate"),
			ResetRate:     c.Float64("reset-rate"),
			Status429Rate: c.Float64("rate-limit-rate"),
		},
	})
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.String("listen"), err)
	}
	srv := &http.Server{Handler: site, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	w := c.App.Writer
	fmt.Fprintf(w, "demo shop with %d product pages at http://%s/\n", c.Int("pages"), ln.Addr())
	if every := flagDuration(c, "change-every"); every > 0 {
		fmt.Fprintf(w, "changing %.0f%% of the pages every %s\n", 100*c.Float64("change"), every)
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-c.Context.Done():
					return
				case <-t.C:
					site.Change(c.Float64("change"))
				}
			}
		}()
	}
	if p := c.String("control"); p != "" {
		fmt.Fprintf(w, "request counts: curl http://%s%scounts (also POST %sreset, POST %schange?fraction=0.1)\n", ln.Addr(), p, p, p)
	}
	fmt.Fprintln(w, "press Ctrl-C to stop")

	select {
	case err := <-served:
		return fmt.Errorf("serve demo site: %w", err)
	case <-c.Context.Done():
	}
	site.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop demo site: %w", err)
	}
	n := site.Counts()
	fmt.Fprintf(w, "served %d requests: %d bodies, %d not modified, %d body bytes\n", n.Total, n.Bodies, n.NotModified, n.BodyBytes)
	return nil
}
