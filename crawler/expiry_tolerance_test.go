package crawler

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/testsite"
)

// TestDailyFixedExpiryRevisitsEveryPage runs a job with expire_after: 24h
// once a day, each run starting at 02:00 and storing its pages from a few
// seconds to about 4 minutes after that: every page is due at the next day's
// run (due within the tolerance at the run's start, 10% of 24h capped at
// 1h), so every page is asked every day and every daily change is fetched
// by the run after it. Without the tolerance a page stored at 02:03
// yesterday would not be due until 02:03 today and a run that reaches it
// sooner would skip it for a whole day. The crawler policy departs from
// RFC 9111 §4.2 here on purpose: the origin's freshness is not consulted.
func TestDailyFixedExpiryRevisitsEveryPage(t *testing.T) {
	e := newEnv(t)
	origin := testsite.NewChurn(20, 2)
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	clock := &simClock{step: 2 * time.Second} // a run lasts about 2-4 simulated minutes
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	const days = 3
	for d := range days {
		origin.SetDay(d)
		clock.set(start.Add(time.Duration(d) * 24 * time.Hour))
		opts := e.options(fmt.Sprintf("day%d", d), srv.URL+"/", newRecorder(t))
		opts.CachePolicy = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 24 * time.Hour}}
		opts.Now = clock.Now
		_, p := run(t, opts)
		if p.Pages != 21 {
			t.Errorf("day %d: %d pages, want all 21", d, p.Pages)
		}
		for _, path := range origin.Paths() {
			if asked := origin.Served(d, path) + origin.NotModified(d, path); asked != 1 {
				t.Errorf("day %d: %s asked %d times (200s %d, 304s %d), want once: stored a little after yesterday's start, it is due today",
					d, path, asked, origin.Served(d, path), origin.NotModified(d, path))
			}
		}
	}
}
