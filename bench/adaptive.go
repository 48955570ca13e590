package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"time"

	"crawlcache/cache"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/store"
	"crawlcache/testsite"
)

// adaptiveDays is how many daily runs the adaptive scenario simulates.
const adaptiveDays = 30

// simClock reads a simulated day's start plus the real time elapsed
// since that run started, so pages are validated a little after their
// run's start, as in a real run.
type simClock struct {
	mu        sync.Mutex
	dayStart  time.Time
	wallStart time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dayStart.Add(time.Since(c.wallStart))
}

func (c *simClock) startDay(t time.Time) {
	c.mu.Lock()
	c.dayStart, c.wallStart = t, time.Now()
	c.mu.Unlock()
}

// adaptiveResult is what 30 daily runs of one policy sent and missed.
type adaptiveResult struct {
	requests int // page requests at the origin over the runs
	misses   int // changes of daily pages not fetched by the next run
	pages    int64
}

// adaptiveSim runs adaptiveDays daily crawls of a Churn site with pol,
// through the crawler, the cache and an embedded store, with the clock
// moved a day between runs and the site's daily pages changed.
func adaptiveSim(ctx context.Context, cfg config, pol cache.Policy, name string) (adaptiveResult, error) {
	var res adaptiveResult
	site := testsite.NewChurn(cfg.adaptivePages-1, cfg.adaptivePages/10)
	srv := httptest.NewServer(site)
	defer srv.Close()
	s, done, err := tempStore(ctx, "adaptive-"+name)
	if err != nil {
		return res, err
	}
	defer done()
	clock := &simClock{}
	start := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	for d := range adaptiveDays {
		site.SetDay(d)
		clock.startDay(start.Add(time.Duration(d) * 24 * time.Hour))
		p, err := adaptiveCrawl(ctx, s, fmt.Sprintf("%s-day%d", name, d), srv.URL+"/", pol, cfg.parallelism, clock.Now)
		if err != nil {
			return res, fmt.Errorf("%s, day %d: %w", name, d, err)
		}
		res.pages += p.Pages
		res.requests += site.Requests(d)
		for _, path := range site.Paths() {
			if d > 0 && site.Daily(path) && site.Served(d, path) == 0 {
				res.misses++
			}
		}
	}
	return res, nil
}

// adaptiveCrawl is one run of the simulation.
func adaptiveCrawl(ctx context.Context, s *store.Store, id, seed string, pol cache.Policy, parallelism int, now func() time.Time) (crawler.Progress, error) {
	fr, err := frontier.New(ctx, s, "crawlcache", frontier.Options{Logger: quiet})
	if err != nil {
		return crawler.Progress{}, err
	}
	return crawler.Run(ctx, crawler.Options{
		RunID: id, Job: "bench-adaptive", Seeds: []string{seed}, Robots: true, Parallelism: parallelism,
		Store: s, CachePolicy: pol, Frontier: fr, Now: now, Logger: quiet,
	})
}

// nutchRule is Nutch's AdaptiveFetchSchedule with its default rates
// (db.fetch.schedule.adaptive.inc_rate 0.4, dec_rate 0.2): the scheduled
// interval, not the span the page stayed unchanged, grows or shrinks.
func nutchRule(interval, _ time.Duration, unchanged bool) time.Duration {
	if unchanged {
		return time.Duration(float64(interval) * 1.4)
	}
	return time.Duration(float64(interval) * 0.8)
}

// scheduledRule is crawlcache's factors applied to the scheduled
// interval instead of the span the page stayed unchanged.
func scheduledRule(interval, _ time.Duration, unchanged bool) time.Duration {
	if unchanged {
		return time.Duration(float64(interval) * cache.AdaptiveGrow)
	}
	return time.Duration(float64(interval) * cache.AdaptiveShrink)
}

// adaptiveScenario compares expire_after: adaptive with full revalidation
// (expire_after: 0s, every page a conditional request every run) over 30
// simulated daily runs of a site where 10% of the pages change every day
// and the others never do.
func adaptiveScenario(ctx context.Context, cfg config) ([]row, error) {
	full, err := adaptiveSim(ctx, cfg, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter}}, "full")
	if err != nil {
		return nil, err
	}
	adaptive, err := adaptiveSim(ctx, cfg, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive}}, "adaptive")
	if err != nil {
		return nil, err
	}
	nutch, err := adaptiveSim(ctx, cfg, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive},
		Adaptive: cache.Adaptive{Min: time.Minute, Max: 365 * 24 * time.Hour, Rule: nutchRule}}, "nutch")
	if err != nil {
		return nil, err
	}
	scheduled, err := adaptiveSim(ctx, cfg, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive},
		Adaptive: cache.Adaptive{Rule: scheduledRule}}, "scheduled")
	if err != nil {
		return nil, err
	}
	ratio := float64(adaptive.requests) / float64(full.requests)
	scheduledRatio := float64(scheduled.requests) / float64(full.requests)
	nutchRatio := float64(nutch.requests) / float64(full.requests)
	title := fmt.Sprintf("adaptive revisits: requests over %d daily runs (%d pages, 10%% change daily)", adaptiveDays, cfg.adaptivePages)
	return []row{
		{title, fmt.Sprintf("%d requests", adaptive.requests), fmt.Sprintf("%d (full revalidation)", full.requests),
			fmt.Sprintf("%.1f%%", 100*ratio), "≤ 30%", yesNo(ratio <= 0.30)},
		{"the same growing the scheduled interval x1.5 instead of the unchanged span", fmt.Sprintf("%d requests (%d missed)", scheduled.requests, scheduled.misses),
			fmt.Sprintf("%d (full revalidation)", full.requests), fmt.Sprintf("%.1f%%", 100*scheduledRatio), "(why the span)", yesNo(ratio < scheduledRatio)},
		{"the same with Nutch's AdaptiveFetchSchedule defaults (x1.4 / x0.8 of the scheduled interval, from 1d)", fmt.Sprintf("%d requests (%d missed)", nutch.requests, nutch.misses),
			fmt.Sprintf("%d (full revalidation)", full.requests), fmt.Sprintf("%.1f%%", 100*nutchRatio), "≈ 34% (the rule to beat)", yesNo(ratio < nutchRatio)},
		{"adaptive revisits: daily changes not found by the next run", fmt.Sprintf("%d of %d", adaptive.misses, (adaptiveDays-1)*(cfg.adaptivePages/10)),
			fmt.Sprintf("%d (full revalidation)", full.misses), "", "0", yesNo(adaptive.misses == 0)},
		{"adaptive revisits: pages crawled (every run reaches every page)", fmt.Sprint(adaptive.pages), fmt.Sprint(full.pages), "", "equal", yesNo(adaptive.pages == full.pages)},
	}, nil
}
