package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"crawlcache/store/storetest"
)

// TestCountedMongoSink: the run's item count is kept in one document read
// by _id, counts every item once across a resume that writes duplicates,
// and starts from the items already stored when a run of an earlier release
// (no counter) is resumed.
func TestCountedMongoSink(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll, counters := s.Collection("crawlcache_test", "items"), s.Collection("crawlcache_test", "run_counters")
	pageA := testItems("r1", "https://example.org/a", 3)
	pageB := testItems("r1", "https://example.org/b", 2)
	old := testItems("r0", "https://example.org/a", 4)

	// A run of an earlier release: items, no counter.
	plain := NewMongoSink(coll)
	if err := plain.Open(ctx, "r0", false); err != nil {
		t.Fatal(err)
	}
	if err := plain.Write(ctx, old[:3]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ItemCount(ctx, counters, "r0", "items", nil); err != nil || ok {
		t.Fatalf("ItemCount of a run without counter = ok %v, err %v; want not found", ok, err)
	}

	workers := map[string][]string{"r0": {"w3"}, "r1": {"w1", "w2"}}
	for _, tc := range []struct {
		name   string
		run    string
		worker string
		resume bool
		writes [][]Item
		want   int64
	}{
		{"new run", "r1", "w1", false, [][]Item{pageA}, 3},
		{"resume writes duplicates and new items", "r1", "w2", true, [][]Item{append([]Item{pageB[0]}, pageA...), pageB[1:]}, 5},
		{"resume of a run without counter", "r0", "w3", true, [][]Item{old}, 4},
		// Regression: a joining worker's Open reset the counter to 0.
		{"a worker joins the run", "r1", "w1", false, [][]Item{testItems("r1", "https://example.org/c", 1)}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := NewCountedMongoSink(coll, counters, tc.worker)
			if err := sink.Open(ctx, tc.run, tc.resume); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.writes {
				if err := sink.Write(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := ItemCount(ctx, counters, tc.run, "items", workers[tc.run])
			if err != nil || !ok || got != tc.want {
				t.Errorf("ItemCount(%s) = %d, %v, %v; want %d", tc.run, got, ok, err, tc.want)
			}
			_ = sink.Close()
		})
	}
}

// TestCountedMongoSinkConcurrentOpen: workers opening their sinks for one
// run at once all succeed and their items are all counted (regressions: the
// loser of the race failed with a duplicate key error and the worker exited;
// increments of one shared document were lost on the embedded store).
func TestCountedMongoSinkConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll, counters := s.Collection("crawlcache_test", "items"), s.Collection("crawlcache_test", "run_counters")
	const workers = 8
	var wg sync.WaitGroup
	errs := make([]error, workers)
	var ids []string
	for i := range workers {
		ids = append(ids, fmt.Sprintf("w%d", i))
	}
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := NewCountedMongoSink(coll, counters, ids[i])
			if errs[i] = sink.Open(ctx, "r1", false); errs[i] != nil {
				return
			}
			errs[i] = sink.Write(ctx, testItems("r1", fmt.Sprintf("https://example.org/%d", i), 1))
			_ = sink.Close()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if got, ok, err := ItemCount(ctx, counters, "r1", "items", ids); err != nil || !ok || got != workers {
		t.Errorf("ItemCount = %d, %v, %v; want %d", got, ok, err, workers)
	}
}
