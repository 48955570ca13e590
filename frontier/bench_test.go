package frontier_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"crawlcache/frontier"
)

// addN adds n links to runID in batches, as a crawler would.
func addN(b *testing.B, f *frontier.Frontier, runID string, n int) {
	b.Helper()
	const batch = 1000
	for start := 0; start < n; start += batch {
		ls := make([]frontier.Link, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			ls = append(ls, frontier.Link{URL: fmt.Sprintf("https://host%d.example/some/path/page-%d.html", i%50, i), Host: fmt.Sprintf("host%d.example", i%50), Depth: 2, Parent: "https://example.org/some/parent/page.html"})
		}
		mustAdd(b, f, runID, ls)
	}
}

// BenchmarkClaimDone is the per-page frontier cost of one worker: claim
// entries (batch at a time, as a crawler with that parallelism does) and
// mark each done, by the size of the run. ns/op is per entry.
func BenchmarkClaimDone(b *testing.B) {
	for _, bc := range []struct{ entries, batch int }{{1_000, 1}, {10_000, 1}, {10_000, 8}, {50_000, 8}} {
		b.Run(fmt.Sprintf("entries=%d/batch=%d", bc.entries, bc.batch), func(b *testing.B) {
			ctx := context.Background()
			f := newFrontier(b, openDB(b), newClock())
			addN(b, f, "r", bc.entries+b.N)
			b.ResetTimer()
			for done := 0; done < b.N; {
				es, err := f.Claim(ctx, "r", "w", min(bc.batch, b.N-done))
				if err != nil || len(es) == 0 {
					b.Fatalf("Claim = %d entries, %v", len(es), err)
				}
				for _, e := range es {
					if err := f.Done(ctx, e.ID); err != nil {
						b.Fatal(err)
					}
				}
				done += len(es)
			}
		})
	}
}

// BenchmarkAdd is the cost per new link added in batches of 1000, and
// the heap the Frontier then holds per queued URL (B/url).
func BenchmarkAdd(b *testing.B) {
	f := newFrontier(b, openDB(b), newClock())
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	addN(b, f, "r", b.N)
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "B/url")
	runtime.KeepAlive(f)
}

// bigRun is a run of 100k entries of which 10k are done (20k log
// records), on a fresh store.
func bigRun(b *testing.B) (*frontier.Frontier, func() *frontier.Frontier) {
	const n, finished = 100_000, 10_000
	ctx := context.Background()
	clk := newClock()
	db := openDB(b)
	f := newFrontier(b, db, clk)
	addN(b, f, "r", n)
	for done := 0; done < finished; {
		es, err := f.Claim(ctx, "r", "w", 8)
		if err != nil || len(es) == 0 {
			b.Fatalf("Claim = %d, %v", len(es), err)
		}
		for _, e := range es {
			if err := f.Done(ctx, e.ID); err != nil {
				b.Fatal(err)
			}
		}
		done += len(es)
	}
	return f, func() *frontier.Frontier { return newFrontier(b, db, clk) }
}

// BenchmarkScan100k is resuming a run of 100k URLs (10k done): LoadRun, one
// scan of the entries and the log. It reports the heap held per URL by the
// Frontier's memory of the run. Drained (when it scans) and Counts cost
// the same scan.
func BenchmarkScan100k(b *testing.B) {
	ctx := context.Background()
	_, fresh := bigRun(b)
	b.Run("LoadRun", func(b *testing.B) {
		var bytesPerEntry float64
		for range b.N {
			f := fresh()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := f.LoadRun(ctx, "r")
			if err != nil || c.Pending != 90_000 || c.Done != 10_000 {
				b.Fatalf("LoadRun = %+v, %v", c, err)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			bytesPerEntry = float64(after.HeapAlloc-before.HeapAlloc) / 100_000
			runtime.KeepAlive(f)
			b.StartTimer()
		}
		b.ReportMetric(bytesPerEntry, "B/url")
	})
	b.Run("StartLoadRun to first claim", func(b *testing.B) {
		for range b.N {
			f := fresh()
			loaded, err := f.StartLoadRun(ctx, "r")
			if err != nil {
				b.Fatal(err)
			}
			for {
				es, err := f.Claim(ctx, "r", "w2", 1)
				if err != nil {
					b.Fatal(err)
				}
				if len(es) > 0 {
					break
				}
				runtime.Gosched()
			}
			b.StopTimer()
			// The first claim leased one entry before the scan read it.
			if res := <-loaded; res.Err != nil || res.Counts.Pending+res.Counts.Leased != 90_000 {
				b.Fatalf("StartLoadRun = %+v", res)
			}
			b.StartTimer()
		}
	})
	b.Run("StartLoadRun whole scan", func(b *testing.B) {
		for range b.N {
			loaded, err := fresh().StartLoadRun(ctx, "r")
			if err != nil {
				b.Fatal(err)
			}
			if res := <-loaded; res.Err != nil || res.Counts.Pending+res.Counts.Leased != 90_000 {
				b.Fatalf("StartLoadRun = %+v", res)
			}
		}
	})
	b.Run("Drained", func(b *testing.B) {
		for range b.N {
			if _, err := fresh().Drained(ctx, "r"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
