package pipeline

import (
	"context"
	"testing"

	"crawlcache/store/storetest"
)

// TestCountedMongoSink: the run's item count is kept in one document read
// by _id, counts every item once across a resume that writes duplicates,
// and starts from the items already stored when a run of an earlier release
// (no counter) is resumed.
func TestCountedMongoSink(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t).Database("crawlcache_test")
	coll, counters := db.Collection("items"), db.Collection("run_counters")
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
	if _, ok, err := ItemCount(ctx, counters, "r0", "items"); err != nil || ok {
		t.Fatalf("ItemCount of a run without counter = ok %v, err %v; want not found", ok, err)
	}

	for _, tc := range []struct {
		name   string
		run    string
		resume bool
		writes [][]Item
		want   int64
	}{
		{"new run", "r1", false, [][]Item{pageA}, 3},
		{"resume writes duplicates and new items", "r1", true, [][]Item{append([]Item{pageB[0]}, pageA...), pageB[1:]}, 5},
		{"resume of a run without counter", "r0", true, [][]Item{old}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := NewCountedMongoSink(coll, counters)
			if err := sink.Open(ctx, tc.run, tc.resume); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.writes {
				if err := sink.Write(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := ItemCount(ctx, counters, tc.run, "items")
			if err != nil || !ok || got != tc.want {
				t.Errorf("ItemCount(%s) = %d, %v, %v; want %d", tc.run, got, ok, err, tc.want)
			}
			_ = sink.Close()
		})
	}
}
