package crawler

import (
	"cmp"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/testsite"
)

// simClock is a simulated clock: a run starts when set says, and every
// reading moves it step on (a millisecond when zero), so pages are
// validated a little after their run started, as in a real run.
type simClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(cmp.Or(c.step, time.Millisecond))
	return c.t
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestAdaptiveRevisitsFindEveryDailyChange runs a job with expire_after:
// adaptive once a day for 12 simulated days over a site where 2 pages of
// 21 change every day and the rest never do: every change is fetched by
// the run that follows it, and a page that is not due sends no request at
// all (counted at the origin). The static pages' intervals grow from the
// span they stayed unchanged: 1d, then 1.5x the span, so they are asked on
// days 0, 1, 3, 6 and 11; a page due a few milliseconds after a run's
// start counts as due (the tolerance at the run's start).
func TestAdaptiveRevisitsFindEveryDailyChange(t *testing.T) {
	e := newEnv(t)
	origin := testsite.NewChurn(20, 2)
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	clock := &simClock{}
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	const days = 12
	for d := range days {
		origin.SetDay(d)
		clock.set(start.Add(time.Duration(d) * 24 * time.Hour))
		opts := e.options(fmt.Sprintf("day%d", d), srv.URL+"/", newRecorder(t))
		opts.CachePolicy = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive}}
		opts.Now = clock.Now
		_, p := run(t, opts)
		if p.Pages != 21 {
			t.Errorf("day %d: %d pages, want all 21 (pages not due come from the cache)", d, p.Pages)
		}
		for _, path := range origin.Paths() {
			if d > 0 && origin.Daily(path) && origin.Served(d, path) != 1 {
				t.Errorf("day %d: %s changed since day %d and was served %d times (304s: %d), want fetched once: a missed change",
					d, path, d-1, origin.Served(d, path), origin.NotModified(d, path))
			}
		}
	}
	want := []int{0, 1, 3, 6, 11}
	for _, path := range origin.Paths() {
		if origin.Daily(path) {
			continue
		}
		var asked []int
		for d := range days {
			if n := origin.Served(d, path) + origin.NotModified(d, path); n > 0 {
				asked = append(asked, d)
			}
		}
		if !slices.Equal(asked, want) {
			t.Errorf("%s (never changes) was requested on days %v, want %v: on other days it is not due and must send no request", path, asked, want)
		}
	}
}
