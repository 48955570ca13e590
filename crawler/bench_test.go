package crawler

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"crawlcache/frontier"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// BenchmarkCrawl crawls a 100-product site (about 110 pages of 10–40 KB)
// with an empty cache (cold) and with every page cached (warm, per_host 1:
// hits must not be rate limited), and reports pages per second.
func BenchmarkCrawl(b *testing.B) {
	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			st := storetest.Open(b)
			site := testsite.New(testsite.Options{Pages: 100, Seed: 11, MinSize: 10 << 10, MaxSize: 40 << 10})
			srv := site.Start()
			b.Cleanup(srv.Close)
			opts := func(i int) Options {
				db := "bench"
				if !warm {
					db = "bench" + strconv.Itoa(i)
				}
				f, err := frontier.New(context.Background(), st, db, frontier.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				o := Options{
					RunID: "run" + strconv.Itoa(i), Worker: "bench", Seeds: []string{srv.URL + "/"}, Robots: true,
					Parallelism: 8, Store: st, CacheDatabase: db, Frontier: f, Logger: slog.New(slog.DiscardHandler), Timeout: 10 * time.Second,
				}
				if warm && i >= 0 { // not the run that fills the cache
					o.PerHost, o.Burst = 1, 1
				}
				return o
			}
			if warm {
				if _, err := Run(context.Background(), opts(-1)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var pages int64
			for i := 0; i < b.N; i++ {
				p, err := Run(context.Background(), opts(i))
				if err != nil {
					b.Fatal(err)
				}
				pages += p.Pages
			}
			b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
		})
	}
}
