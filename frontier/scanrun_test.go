package frontier_test

import (
	"context"
	"testing"
)

// TestCountsReadOnlyTheRun: a run's counts and load see its own entries
// only, also those of a run whose id extends its own (job "a" and job
// "a-2026..." share the _id prefix the embedded store's per-run scan
// reads by).
func TestCountsReadOnlyTheRun(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	f := newFrontier(t, db, clk)
	for _, tc := range []struct {
		run string
		n   int
	}{{"a-20260102T030405Z-0001", 3}, {"a-20260102T030405Z-0001-20260102T030405Z-0002", 5}, {"b-20260102T030405Z-0003", 7}} {
		if _, err := f.Add(ctx, tc.run, links(tc.n, "example.org")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Claim(ctx, "a-20260102T030405Z-0001", "w", 1); err != nil {
		t.Fatal(err)
	}
	g := newFrontier(t, db, clk) // another process: reads the store
	for run, want := range map[string]int{"a-20260102T030405Z-0001": 3, "a-20260102T030405Z-0001-20260102T030405Z-0002": 5, "b-20260102T030405Z-0003": 7, "c": 0} {
		c, err := g.LoadRun(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if c.Total() != want {
			t.Errorf("LoadRun(%s) counts %+v, total %d; want %d", run, c, c.Total(), want)
		}
	}
	c, err := g.Counts(ctx, "a-20260102T030405Z-0001")
	if err != nil || c.Leased != 1 || c.Pending != 2 {
		t.Errorf("Counts = %+v, %v; want 1 leased, 2 pending", c, err)
	}
}
