// Command bench measures crawlcache against plain colly on the generated
// test site, in one process on one machine, and prints a markdown table
// (also written to -out). `make bench` runs it.
//
// Every figure is a ratio against a peer measured in the same run, so the
// table says how crawlcache compares, not how fast this machine is.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

type config struct {
	pages       int
	latency     time.Duration
	parallelism int
	frontier    int
	out         string
	skipRSS     bool
	cpuProfile  string
	memProfile  string
	runs        int
	bandwidth   int64
	// only selects scenarios by name (see scenarioNames); empty means all.
	only map[string]bool
	// links selects one of the million-link scenarios: "hubs", "big" or
	// "" for both.
	links string
	// proxyClients download at once in the proxy scenarios; proxyLarge
	// is the size of the body too large to store, proxyHuge of the single
	// very large body (0 skips that row).
	proxyClients          int
	proxyLarge, proxyHuge int64
	// historyItems and historyFrontier size the store of the history
	// scenario.
	historyItems, historyFrontier int
	// compassPages is the number of cached pages the compass scenario
	// queries.
	compassPages int
	// renderPages sizes the site of the render scenario (product pages);
	// renderTabs is the pages rendered at once.
	renderPages, renderTabs int
	// adaptivePages sizes the site of the adaptive scenario (10% of its
	// pages change every day).
	adaptivePages int
}

// scenarioNames are the values of -only.
var scenarioNames = []string{"cold", "crawl", "resume", "roundtrips", "rss", "links", "proxy", "history", "incremental", "compass", "render", "adaptive"}

// want reports whether scenario name runs.
func (c config) want(name string) bool { return len(c.only) == 0 || c.only[name] }

func main() {
	if os.Getenv(childEnv) != "" {
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.IntVar(&cfg.pages, "pages", 1000, "content pages of the test site")
	flag.DurationVar(&cfg.latency, "latency", 20*time.Millisecond, "latency of every origin response")
	flag.IntVar(&cfg.parallelism, "parallelism", 8, "concurrent requests for both crawlers")
	flag.IntVar(&cfg.frontier, "frontier", 100000, "URLs in the frontier of the memory scenario")
	flag.StringVar(&cfg.out, "out", "docs/BENCH.md", "file the markdown table is written to")
	flag.IntVar(&cfg.runs, "runs", 3, "rounds of the crawl scenarios; the table shows medians")
	flag.Int64Var(&cfg.bandwidth, "bandwidth", 1<<20, "bytes per second per connection of the re-crawl variant where bodies take transfer time")
	flag.IntVar(&cfg.historyItems, "history-items", 1000000, "items of earlier runs in the store of the history scenario")
	flag.IntVar(&cfg.historyFrontier, "history-frontier", 1000000, "frontier entries of earlier runs in the store of the history scenario")
	flag.IntVar(&cfg.compassPages, "compass-pages", 20000, "cached pages of 40 KB the compass scenario queries")
	flag.IntVar(&cfg.renderPages, "render-pages", 200, "product pages of the script-built shop the render scenario renders (plus its entry and listing pages)")
	flag.IntVar(&cfg.renderTabs, "render-tabs", 2, "pages rendered at once in the render scenario, by crawlcache and by chromedp")
	flag.IntVar(&cfg.adaptivePages, "adaptive-pages", 200, "pages of the site of the adaptive scenario (30 simulated daily runs; a tenth of the pages change every day)")
	flag.BoolVar(&cfg.skipRSS, "skip-rss", false, "skip the 100k-URL memory scenario (the slowest)")
	flag.StringVar(&cfg.links, "links", "", "with -only links: hubs (1,000 pages of 1,000 links) or big (one page of a million links); empty runs both")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU, block and mutex profiles of each crawl to PREFIX.<crawl>[.block|.mutex].prof (the last round's)")
	flag.StringVar(&cfg.memProfile, "memprofile", "", "with -only links: write a heap profile of each crawling child at its peak RSS to PREFIX.<scenario>[.resume].heap.prof, and the Go runtime's memory statistics at that peak to stderr")
	flag.IntVar(&cfg.proxyClients, "proxy-clients", 100, "concurrent clients of the proxy memory scenarios")
	flag.Int64Var(&cfg.proxyLarge, "proxy-large", 200<<20, "bytes of the body too large to store that every proxy client downloads")
	flag.Int64Var(&cfg.proxyHuge, "proxy-huge", 5<<30, "bytes of the single very large body streamed through the proxy (0 skips that row)")
	only := flag.String("only", "", "comma-separated scenarios to run, of "+strings.Join(scenarioNames, ", ")+
		" (cold: only the cold crawl rows; links: the 1-million-link rows; render: Chromium, minutes); empty runs every scenario but links and render")
	flag.Parse()
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			if !slices.Contains(scenarioNames, n) {
				fmt.Fprintf(os.Stderr, "bench: -only: unknown scenario %q (want %s)\n", n, strings.Join(scenarioNames, ", "))
				os.Exit(2)
			}
			cfg.only[n] = true
		}
	}
	cfg.runs = max(cfg.runs, 1)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	ctx := context.Background()
	tbl, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(tbl)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(tbl), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "written to %s\n", cfg.out)
	}
}

// row is one line of the result table.
type row struct {
	scenario, crawlcache, peer, ratio, target, met string
}

func run(ctx context.Context, cfg config) (string, error) {
	var rows []row
	add := func(r ...row) { rows = append(rows, r...) }
	step := func(name string) func() {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s...", name)
		return func() { fmt.Fprintf(os.Stderr, " %.1fs\n", time.Since(start).Seconds()) }
	}

	scenarios := []struct {
		name, title string
		run         func(context.Context, config) ([]row, error)
	}{
		{"crawl", "cold, warm and re-crawl", crawlScenarios},
		{"resume", "resume after SIGKILL at 50%", resumeScenario},
		{"roundtrips", "store round trips", func(ctx context.Context, _ config) ([]row, error) { return roundTrips(ctx) }},
		{"rss", fmt.Sprintf("peak RSS with a %d-URL frontier", cfg.frontier), rssScenario},
		{"links", "a million links", linkScenarios},
		{"proxy", fmt.Sprintf("proxy peak RSS, %d concurrent large downloads", cfg.proxyClients), proxyScenarios},
		{"history", "start and end of a run over the history of earlier runs", historyScenario},
		{"incremental", "incremental re-crawls on a CPU-bound site", incrementalScenarios},
		{"compass", "queries people make in Compass", compassScenario},
		{"render", "rendering script-built pages in Chromium", renderScenario},
		{"adaptive", "adaptive revisits over 30 simulated daily runs", adaptiveScenario},
	}
	for _, sc := range scenarios {
		switch {
		case sc.name == "crawl" && !cfg.want("crawl") && cfg.want("cold"):
		case sc.name == "rss" && cfg.skipRSS:
			continue
		case (sc.name == "links" || sc.name == "render") && len(cfg.only) == 0:
			continue // minutes long (render needs Chromium): run them with -only
		case !cfg.want(sc.name):
			continue
		}
		done := step(sc.title)
		r, err := sc.run(ctx, cfg)
		done()
		if err != nil {
			return "", err
		}
		add(r...)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s/%s, %s): test site of %d pages (10–150 KB), %s latency per response, parallelism %d, embedded store; crawl rows are medians of %d rounds.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), cfg.pages, cfg.latency, cfg.parallelism, cfg.runs)
	b.WriteString("| scenario | crawlcache | peer | ratio | target | met |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.scenario, r.crawlcache, r.peer, r.ratio, r.target, r.met)
	}
	return b.String(), nil
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// childEnv selects a child-process scenario; its value is a JSON childSpec.
const childEnv = "CRAWLCACHE_BENCH_CHILD"

// spawn starts this program as a child running spec.
func spawn(spec childSpec) (*exec.Cmd, error) {
	b, _ := json.Marshal(spec)
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	return cmd, nil
}
