package frontier_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"crawlcache/frontier"
	"crawlcache/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func openLog(f *frontier.Frontier) *store.Collection {
	return frontier.CollectionForTest(f, frontier.LogCollection)
}

func TestHostLease(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	a, b := newFrontier(t, db, clk), newFrontier(t, db, clk)
	const d = 30 * time.Second
	steps := []struct {
		name    string
		f       *frontier.Frontier
		worker  string
		advance time.Duration
		release bool
		want    bool
	}{
		{"A takes a free host", a, "A", 0, false, true},
		{"B is refused while A holds it", b, "B", 0, false, false},
		{"A renews", a, "A", d / 2, false, true},
		{"B is refused after A renewed", b, "B", d * 3 / 4, false, false},
		{"B takes it once A's lease expired", b, "B", d, false, true},
		{"A is refused", a, "A", 0, false, false},
		{"A's release of B's lease does nothing", a, "A", 0, true, false},
		{"B still holds it", b, "B", 0, false, true},
		{"B releases", b, "B", 0, true, false},
		{"A takes it at once", a, "A", 0, false, true},
		{"A renews it again", a, "A", d / 5, false, true},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.release {
			if err := s.f.ReleaseHost(ctx, "h.example", s.worker); err != nil {
				t.Fatalf("%s: ReleaseHost: %v", s.name, err)
			}
			continue
		}
		got, err := s.f.LeaseHost(ctx, "h.example", s.worker, d)
		if err != nil {
			t.Fatalf("%s: LeaseHost: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: LeaseHost = %v, want %v", s.name, got, s.want)
		}
	}
	// Other hosts are independent.
	if ok, err := b.LeaseHost(ctx, "other.example", "B", d); err != nil || !ok {
		t.Errorf("LeaseHost(other host) = %v, %v; want true", ok, err)
	}
}

func TestHostLeaseConcurrentlyHasOneHolder(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	fs := []*frontier.Frontier{newFrontier(t, db, clk), newFrontier(t, db, clk), newFrontier(t, db, clk)}
	for round := range 3 {
		var mu sync.Mutex
		holders := map[string]bool{}
		var wg sync.WaitGroup
		for i, f := range fs {
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := fmt.Sprintf("w%d-%d", i, g)
					ok, err := f.LeaseHost(ctx, "h.example", w, time.Minute)
					if err != nil {
						t.Errorf("LeaseHost: %v", err)
						return
					}
					if ok {
						mu.Lock()
						holders[w] = true
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Errorf("round %d: holders = %v, want exactly one", round, holders)
		}
		clk.Advance(2 * time.Minute) // expire it for the next round
	}
}

// A worker that crashed between winning a host token and writing the lease
// leaves an orphaned token; the host is free again once it is stale.
func TestHostLeaseOrphanedTokenIsSkipped(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	f := newFrontier(t, db, clk)
	if ok, err := f.LeaseHost(ctx, "h.example", "A", time.Second); err != nil || !ok {
		t.Fatalf("LeaseHost(A) = %v, %v", ok, err)
	}
	clk.Advance(2 * time.Second) // A's lease expired
	err := db.Collection(testDB, frontier.HostTokensCollection).Insert(ctx, bson.D{
		{Key: "_id", Value: "h.example#2"}, {Key: "worker", Value: "crashed"}, {Key: "at", Value: clk.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.LeaseHost(ctx, "h.example", "B", time.Second); err != nil || ok {
		t.Fatalf("LeaseHost(B) with a fresh orphaned token = %v, %v; want false", ok, err)
	}
	clk.Advance(testLease + time.Second)
	if ok, err := f.LeaseHost(ctx, "h.example", "B", time.Second); err != nil || !ok {
		t.Fatalf("LeaseHost(B) with a stale orphaned token = %v, %v; want true", ok, err)
	}
}
