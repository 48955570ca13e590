package frontier_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

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

// BenchmarkClaimDone is the per-page frontier cost of one worker: claim one
// entry and mark it done, in a collection of 10k entries.
func BenchmarkClaimDone(b *testing.B) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(b)
	f := newFrontier(b, db, clk)
	addN(b, f, "r", 10_000+b.N)
	b.ResetTimer()
	for range b.N {
		es, err := f.Claim(ctx, "r", "w", 1)
		if err != nil || len(es) != 1 {
			b.Fatalf("Claim = %d entries, %v", len(es), err)
		}
		if err := f.Done(ctx, es[0].ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdd is the cost per new link added in batches of 1000.
func BenchmarkAdd(b *testing.B) {
	f := newFrontier(b, openDB(b), newClock())
	b.ResetTimer()
	addN(b, f, "r", b.N)
}

// BenchmarkLoadRun is resuming a run of 100k entries: one scan. It reports
// the heap held per entry by the Frontier's memory of the run.
func BenchmarkLoadRun(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	clk := newClock()
	db := openDB(b)
	addN(b, newFrontier(b, db, clk), "r", n)
	b.ResetTimer()
	var bytesPerEntry float64
	for range b.N {
		f := newFrontier(b, db, clk)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := f.LoadRun(ctx, "r")
		if err != nil || c.Pending != n {
			b.Fatalf("LoadRun = %+v, %v", c, err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		bytesPerEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(f)
		b.StartTimer()
	}
	b.ReportMetric(bytesPerEntry, "B/entry")
}

// BenchmarkScan100k is one scan of a 100k-entry run: what Drained, Counts
// and an empty-queue Claim cost on the embedded server.
func BenchmarkScan100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	clk := newClock()
	db := openDB(b)
	f := newFrontier(b, db, clk)
	addN(b, f, "r", n)
	b.Run("Drained", func(b *testing.B) {
		for range b.N {
			if _, err := f.Drained(ctx, "other"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Counts", func(b *testing.B) {
		for range b.N {
			if _, err := f.Counts(ctx, "r"); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = time.Second
}
