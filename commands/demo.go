package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
	"crawlcache/jobs"
	"crawlcache/store"
	"crawlcache/testsite"
)

// demoCommand is what `make run` calls: the bundled shop on loopback, one
// crawl of configs/example.yaml, and a second crawl that revalidates every
// page (all 304s), then how to look at the result.
func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "crawl the bundled demo shop twice (download, then revalidate with 304s) and show how to browse the pages",
		Description: "Starts the demo shop (package testsite) on --listen, runs --config against it on the store,\n" +
			"then runs it again with --revalidate: every cached page is a conditional request and the shop\n" +
			"answers 304 Not Modified, so nothing is downloaded twice. Works offline.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8089", Usage: "address of the demo shop (the seeds of --config are pointed at it)", EnvVars: []string{"CRAWLCACHE_DEMO_LISTEN"}},
			&cli.StringFlag{Name: "config", Value: "configs/example.yaml", Usage: "job config to crawl the shop with", EnvVars: []string{"CRAWLCACHE_DEMO_CONFIG"}},
			&cli.IntFlag{Name: "pages", Value: 300, Usage: "product pages in the shop", EnvVars: []string{"CRAWLCACHE_DEMO_PAGES"}},
			durationFlag("latency", 5*time.Millisecond, "delay of every shop response", "CRAWLCACHE_DEMO_LATENCY"),
		}, storeFlags()...),
		Action: demo,
	}
}

func demo(c *cli.Context) error {
	w := c.App.Writer
	job, err := configs.Load(c.String("config"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("demo shop: %s is already in use (another `crawlcache demo` or `site serve`?); stop it or pick another address with --listen 127.0.0.1:PORT", c.String("listen"))
	}
	if err != nil {
		return fmt.Errorf("demo shop: listen on %s: %w", c.String("listen"), err)
	}
	site := testsite.New(testsite.Options{Pages: c.Int("pages"), Seed: 1, Latency: flagDuration(c, "latency"), Clock: time.Now, NoRequestLog: true})
	srv := &http.Server{Handler: site, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		site.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	base := "http://" + ln.Addr().String()
	job.Seeds = []string{base + "/"}

	fmt.Fprintf(w, "demo shop   %s/  (%d product pages, ETag + Last-Modified, robots.txt, %s latency)\n", base, c.Int("pages"), flagDuration(c, "latency"))
	return withStore(c, func(ctx context.Context, s *store.Store) error {
		fmt.Fprintf(w, "store       %s\n", s.Describe())
		fmt.Fprintf(w, "job         %s (%s)\n", job.Name, job.Source)
		// Run notes go to the log at warn level only: the demo prints its own.
		quiet := slog.New(slog.NewTextHandler(errWriter(c), &slog.HandlerOptions{Level: slog.LevelWarn}))
		passes := []struct {
			title string
			opts  jobs.StartOptions
		}{
			{"pass 1: crawl (downloads what the cache does not have yet)", jobs.StartOptions{Fresh: true}},
			{"pass 2: crawl again with --revalidate (a conditional request for every cached page)", jobs.StartOptions{Fresh: true, Revalidate: true}},
		}
		var last *jobs.Run
		for i, p := range passes {
			fmt.Fprintf(w, "\n%s\n", p.title)
			before := site.Counts()
			r, rep := newRunner(c, s)
			r.Logger = slog.New(rep.LogHandler(quiet.Handler()))
			out, err := r.Run(ctx, job, p.opts)
			rep.Done()
			if out == nil || out.Run == nil {
				return err
			}
			if err != nil {
				return reportOutcome(c, out, storeFull(s, err))
			}
			last = out.Run
			after := site.Counts()
			printPass(w, out.Run, after.Total-before.Total, after.Bodies-before.Bodies, after.NotModified-before.NotModified)
			if i == 1 {
				k := out.Run.Counters
				if k.Revalidated == k.Pages && after.Bodies == before.Bodies {
					fmt.Fprintf(w, "  => every page came back as a 304: %s of bodies not downloaded again\n", jobs.HumanBytes(k.SavedBytes))
				} else {
					fmt.Fprintf(w, "  => %d of %d pages revalidated with a 304\n", k.Revalidated, k.Pages)
				}
			}
		}
		printBrowse(w, s, job, last)
		return nil
	})
}

func printPass(w io.Writer, r *jobs.Run, requests, bodies, notModified int) {
	k := r.Counters
	fmt.Fprintf(w, "  run %s %s in %s\n", r.ID, r.Status, r.Elapsed().Round(100*time.Millisecond))
	fmt.Fprintf(w, "  %d pages: %d downloaded, %d fresh from the cache, %d revalidated (304), %d errors; %d items\n",
		k.Pages, k.Misses, k.Hits, k.Revalidated, k.Errors, k.Items)
	fmt.Fprintf(w, "  the shop answered %d requests: %d with a body, %d with 304 Not Modified\n", requests, bodies, notModified)
}

func printBrowse(w io.Writer, s *store.Store, job *configs.Job, last *jobs.Run) {
	fmt.Fprintln(w, "\nbrowse the pages")
	uri := s.URI
	if s.Embedded {
		uri = "mongodb://127.0.0.1:27017/"
		fmt.Fprintf(w, "  crawlcache db serve --data-dir %s      (keeps the store open; then, in another terminal:)\n", s.DataDir)
	}
	fmt.Fprintf(w, "  mongosh %s            (or Compass: New connection -> %s)\n", uri, uri)
	fmt.Fprintln(w, `  use http_cache`)
	fmt.Fprintln(w, `  db.pages.find({status: 200}).limit(5)                 (url, status, last validation: quick to filter)`)
	fmt.Fprintln(w, `  db.responses.findOne({_id: "<an _id from pages>"})   (the stored response, body included)`)
	fmt.Fprintln(w, `  use crawlcache`)
	fmt.Fprintf(w, "  db.items.find({run_id: %q}, {title: 1, price: 1, url: 1}).limit(5)\n", last.ID)
	for _, o := range job.Outputs {
		if o.Path != "" {
			fmt.Fprintf(w, "  items are also in %s\n", o.Path)
		}
	}
	fmt.Fprintf(w, "  runs: crawlcache runs ls; crawlcache runs show %s\n", last.ID)
}
