package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"crawlcache/cache"
	"crawlcache/testsite"
)

// measured is one timed crawl.
type measured struct {
	pages int64
	wall  time.Duration
	cpu   time.Duration // of the whole process, the test site included
}

func (m measured) rate() float64 { return float64(m.pages) / m.wall.Seconds() }

// cpuPerPage is the process CPU time per page in milliseconds.
func (m measured) cpuPerPage() float64 {
	return float64(m.cpu.Microseconds()) / 1000 / float64(max(m.pages, 1))
}

// round is one pass of the crawl scenarios on a fresh site and store.
type round struct {
	colly, collyWarm, cold, warm, recrawl measured
	hits, revalidated                     int64
	coldBytes, reBytes                    int64
	re304, reTotal                        int
	// bwCold and bwRecrawl are crawlcache's cold crawl and re-crawl of the
	// same site when every body also takes its transfer time.
	bwCold, bwRecrawl measured
}

// timed runs f and measures its wall and process CPU time; with
// -cpuprofile it also writes CPU, block and mutex profiles of f to
// <prefix>.<name>[.block|.mutex].prof.
func timed(cfg config, name string, f func() (int64, error)) (measured, error) {
	stop := func() {}
	if cfg.cpuProfile != "" {
		pf, err := os.Create(cfg.cpuProfile + "." + name + ".prof")
		if err != nil {
			return measured{}, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return measured{}, err
		}
		runtime.SetBlockProfileRate(100000)
		runtime.SetMutexProfileFraction(2)
		stop = func() {
			pprof.StopCPUProfile()
			pf.Close()
			for _, p := range []string{"block", "mutex"} {
				if bf, err := os.Create(cfg.cpuProfile + "." + name + "." + p + ".prof"); err == nil {
					_ = pprof.Lookup(p).WriteTo(bf, 0)
					bf.Close()
				}
			}
			runtime.SetBlockProfileRate(0)
			runtime.SetMutexProfileFraction(0)
		}
	}
	cpu0 := processCPU()
	start := time.Now()
	pages, err := f()
	m := measured{pages: pages, wall: time.Since(start), cpu: processCPU() - cpu0}
	stop()
	return m, err
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// crawlRound measures plain colly, colly with CacheDir and crawlcache's
// cold crawl, warm replay and re-crawl on one site, then crawlcache's cold
// crawl and re-crawl on the same site with -bandwidth.
func crawlRound(ctx context.Context, cfg config) (round, error) {
	var r round
	site := testsite.New(testsite.Options{Pages: cfg.pages, Seed: 1, Latency: cfg.latency, SortedQueries: true})
	srv := site.Start()
	defer srv.Close()
	seed := srv.URL + "/"

	var err error
	collyRun := func(dir string) func() (int64, error) {
		return func() (int64, error) {
			return collyCrawl(seed, cfg.parallelism, dir)
		}
	}
	if r.colly, err = timed(cfg, "colly", collyRun("")); err != nil {
		return r, fmt.Errorf("colly cold crawl: %w", err)
	}
	cacheDir, err := os.MkdirTemp("", "crawlcache-bench-colly-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(cacheDir)
	if _, err := collyCrawl(seed, cfg.parallelism, cacheDir); err != nil {
		return r, fmt.Errorf("colly cache fill: %w", err)
	}
	if r.collyWarm, err = timed(cfg, "collywarm", collyRun(cacheDir)); err != nil {
		return r, fmt.Errorf("colly warm crawl: %w", err)
	}

	s, done, err := tempStore(ctx, "crawl")
	if err != nil {
		return r, err
	}
	defer done()
	fresh := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}
	revalidate := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}}
	crawl := func(id string, pol cache.Policy, hits, revalidated *int64) func() (int64, error) {
		return func() (int64, error) {
			p, _, err := crawlcacheCrawl(ctx, s, crawlSpec{RunID: id, Seed: seed, Parallelism: cfg.parallelism, Policy: pol})
			if hits != nil {
				*hits = p.Hits
			}
			if revalidated != nil {
				*revalidated = p.Revalidated
			}
			return p.Pages, err
		}
	}
	site.ResetCounts()
	if r.cold, err = timed(cfg, "cold", crawl("cold", fresh, nil, nil)); err != nil {
		return r, fmt.Errorf("crawlcache cold crawl: %w", err)
	}
	r.coldBytes = site.Counts().BodyBytes
	if r.warm, err = timed(cfg, "warm", crawl("warm", fresh, &r.hits, nil)); err != nil {
		return r, fmt.Errorf("crawlcache warm replay: %w", err)
	}
	site.ResetCounts()
	if r.recrawl, err = timed(cfg, "recrawl", crawl("recrawl", revalidate, nil, &r.revalidated)); err != nil {
		return r, fmt.Errorf("crawlcache re-crawl: %w", err)
	}
	c := site.Counts()
	r.reBytes, r.re304, r.reTotal = c.BodyBytes, c.NotModified, c.Total

	// The same site where a body also takes its transfer time.
	bwSite := testsite.New(testsite.Options{Pages: cfg.pages, Seed: 1, Latency: cfg.latency, Bandwidth: cfg.bandwidth, SortedQueries: true})
	bwSrv := bwSite.Start()
	defer bwSrv.Close()
	seed = bwSrv.URL + "/"
	if r.bwCold, err = timed(cfg, "bwcold", crawl("bwcold", fresh, nil, nil)); err != nil {
		return r, fmt.Errorf("crawlcache cold crawl with bandwidth: %w", err)
	}
	if r.bwRecrawl, err = timed(cfg, "bwrecrawl", crawl("bwrecrawl", revalidate, nil, nil)); err != nil {
		return r, fmt.Errorf("crawlcache re-crawl with bandwidth: %w", err)
	}
	return r, nil
}

// median of the values f takes over rounds (of any scenario).
func median[R any](rounds []R, f func(R) float64) float64 {
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// runRounds runs one round of a scenario cfg.runs times.
func runRounds[R any](ctx context.Context, cfg config, one func(context.Context, config) (R, error)) ([]R, error) {
	var rounds []R
	for i := range cfg.runs {
		r, err := one(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", i+1, err)
		}
		rounds = append(rounds, r)
	}
	return rounds, nil
}

func crawlScenarios(ctx context.Context, cfg config) ([]row, error) {
	rounds, err := runRounds(ctx, cfg, crawlRound)
	if err != nil {
		return nil, err
	}
	med := func(f func(round) float64) float64 { return median(rounds, f) }
	last := rounds[len(rounds)-1]
	coldRatio := med(func(r round) float64 { return r.cold.rate() / r.colly.rate() })
	warmRatio := med(func(r round) float64 { return r.warm.rate() / r.collyWarm.rate() })
	wallRatio := med(func(r round) float64 { return r.recrawl.wall.Seconds() / r.cold.wall.Seconds() })
	bwRatio := med(func(r round) float64 { return r.bwRecrawl.wall.Seconds() / r.bwCold.wall.Seconds() })
	bytesRatio := med(func(r round) float64 { return float64(r.reBytes) / float64(r.coldBytes) })
	share304 := med(func(r round) float64 { return float64(r.re304) / float64(r.reTotal) })
	// The re-crawl cannot beat one latency per page at this parallelism.
	floor := time.Duration(last.recrawl.pages) * cfg.latency / time.Duration(cfg.parallelism)
	return []row{
		{"cold crawl (pages/s)",
			fmt.Sprintf("%.0f (%d pages)", med(func(r round) float64 { return r.cold.rate() }), last.cold.pages),
			fmt.Sprintf("plain colly %.0f (%d pages)", med(func(r round) float64 { return r.colly.rate() }), last.colly.pages),
			fmt.Sprintf("%.2f×", coldRatio), "≥ 0.9×", yesNo(coldRatio >= 0.9)},
		{"cold crawl: CPU per page (whole process, site included)",
			fmt.Sprintf("%.2f ms", med(func(r round) float64 { return r.cold.cpuPerPage() })),
			fmt.Sprintf("plain colly %.2f ms", med(func(r round) float64 { return r.colly.cpuPerPage() })),
			fmt.Sprintf("%.2f×", med(func(r round) float64 { return r.cold.cpuPerPage() / r.colly.cpuPerPage() })), "", ""},
		{"warm replay, all fresh (pages/s)",
			fmt.Sprintf("%.0f (%d hits)", med(func(r round) float64 { return r.warm.rate() }), last.hits),
			fmt.Sprintf("colly CacheDir %.0f", med(func(r round) float64 { return r.collyWarm.rate() })),
			fmt.Sprintf("%.2f×", warmRatio), "≥ 0.7×", yesNo(warmRatio >= 0.7)},
		{"warm replay: CPU per page",
			fmt.Sprintf("%.2f ms", med(func(r round) float64 { return r.warm.cpuPerPage() })),
			fmt.Sprintf("colly CacheDir %.2f ms", med(func(r round) float64 { return r.collyWarm.cpuPerPage() })),
			fmt.Sprintf("%.2f×", med(func(r round) float64 { return r.warm.cpuPerPage() / r.collyWarm.cpuPerPage() })), "", ""},
		{"re-crawl after expiry: wall time",
			fmt.Sprintf("%.2fs (%d revalidated; floor %d × %s / %d = %.2fs)", med(func(r round) float64 { return r.recrawl.wall.Seconds() }), last.revalidated, last.recrawl.pages, cfg.latency, cfg.parallelism, floor.Seconds()),
			fmt.Sprintf("own cold crawl %.2fs", med(func(r round) float64 { return r.cold.wall.Seconds() })),
			fmt.Sprintf("%.2f×", wallRatio), "≤ 0.5×", yesNo(wallRatio <= 0.5)},
		{fmt.Sprintf("re-crawl after expiry: wall time, site also sending bodies at %s/s per connection", byteSize(cfg.bandwidth)),
			fmt.Sprintf("%.2fs", med(func(r round) float64 { return r.bwRecrawl.wall.Seconds() })),
			fmt.Sprintf("own cold crawl %.2fs", med(func(r round) float64 { return r.bwCold.wall.Seconds() })),
			fmt.Sprintf("%.2f×", bwRatio), "≤ 0.5×", yesNo(bwRatio <= 0.5)},
		{"re-crawl after expiry: origin body bytes", fmt.Sprintf("%d B", last.reBytes), fmt.Sprintf("own cold crawl %d B", last.coldBytes), fmt.Sprintf("%.2f%%", 100*bytesRatio), "≤ 1%", yesNo(bytesRatio <= 0.01)},
		{"re-crawl after expiry: 304 share of origin requests", fmt.Sprintf("%d of %d", last.re304, last.reTotal), "", fmt.Sprintf("%.1f%%", 100*share304), "≥ 99%", yesNo(share304 >= 0.99)},
	}, nil
}

// byteSize formats n bytes as KB or MB (powers of 1024).
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%d B", n)
}
