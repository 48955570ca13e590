package frontier_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"crawlcache/frontier"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// clock is a settable clock shared by the Frontiers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testLease = time.Minute

// testDB is the database the tests' frontiers use.
const testDB = "crawlcache"

// openDB starts an embedded store.
func openDB(tb testing.TB) *store.Store {
	tb.Helper()
	return storetest.Open(tb)
}

// newFrontier is one "worker process" on database testDB of s.
func newFrontier(tb testing.TB, s *store.Store, clk *clock) *frontier.Frontier {
	tb.Helper()
	f, err := frontier.New(context.Background(), s, testDB, frontier.Options{
		Now: clk.Now, Lease: testLease, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatalf("frontier.New: %v", err)
	}
	return f
}

func links(n int, host string) []frontier.Link {
	out := make([]frontier.Link, n)
	for i := range out {
		out[i] = frontier.Link{URL: fmt.Sprintf("https://%s/page/%d", host, i), Host: host, Depth: i % 3}
	}
	return out
}

func mustAdd(tb testing.TB, f *frontier.Frontier, runID string, ls []frontier.Link) int {
	tb.Helper()
	n, err := f.Add(context.Background(), runID, ls)
	if err != nil {
		tb.Fatalf("Add: %v", err)
	}
	return n
}

func mustClaim(tb testing.TB, f *frontier.Frontier, runID, worker string, max int) []frontier.Entry {
	tb.Helper()
	es, err := f.Claim(context.Background(), runID, worker, max)
	if err != nil {
		tb.Fatalf("Claim(%s, %d): %v", worker, max, err)
	}
	return es
}

// claimOrDrain claims like a crawler loop does: when Claim has nothing, ask
// Drained (which scans for other workers' work) and claim again.
func claimOrDrain(tb testing.TB, f *frontier.Frontier, runID, worker string, max int) []frontier.Entry {
	tb.Helper()
	if es := mustClaim(tb, f, runID, worker, max); len(es) > 0 {
		return es
	}
	if _, err := f.Drained(context.Background(), runID); err != nil {
		tb.Fatalf("Drained: %v", err)
	}
	return mustClaim(tb, f, runID, worker, max)
}

func mustCounts(tb testing.TB, f *frontier.Frontier, runID string) frontier.Counts {
	tb.Helper()
	c, err := f.Counts(context.Background(), runID)
	if err != nil {
		tb.Fatalf("Counts: %v", err)
	}
	return c
}

func ids(es []frontier.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}
