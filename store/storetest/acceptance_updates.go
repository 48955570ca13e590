package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// The updates of one document by several clients at once, half of them
// in this Store and half in a second client opened as another process
// would open it: none is lost (MongoDB's updates are atomic; the embedded
// server's are serialized, updatelock.go). Without that, measured on the
// embedded store, about half of 400 concurrent $inc counted and a free
// document claimed by 6 clients at once had two winners in 9 rounds of 20.

// clients is im.Store and a second client of the same store.
func clients(t *testing.T, im Impl, name string) [2]*store.Collection {
	return [2]*store.Collection{coll(t, im, name), im.Another(t).Collection(im.DB, name)}
}

func testConcurrentUpdates(t *testing.T, im Impl) {
	ctx := ctxT(t)
	cs := clients(t, im, "updates")
	if err := cs[0].Insert(ctx, bson.D{{Key: "_id", Value: "run"}, {Key: "n", Value: int64(0)}}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 30
	for _, err := range concurrently(writers, func(w int) error {
		c := cs[w%2]
		for i := range each {
			// A worker's progress report: a counter and a field of its own.
			update := bson.D{
				{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}},
				{Key: "$set", Value: bson.D{{Key: fmt.Sprintf("workers.w%d", w), Value: int64(i + 1)}}},
			}
			if _, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "run"}}, update, false); err != nil {
				return err
			}
		}
		return nil
	}) {
		t.Fatalf("UpdateOne: %v", err)
	}
	raw, err := cs[1].Get(ctx, "run")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		N       int64            `bson:"n"`
		Workers map[string]int64 `bson:"workers"`
	}
	if err := bson.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.N != writers*each {
		t.Errorf("n = %d after %d concurrent $inc of 1, want %d", got.N, writers*each, writers*each)
	}
	for w := range writers {
		if v := got.Workers[fmt.Sprintf("w%d", w)]; v != each {
			t.Errorf("workers.w%d = %d, want %d (its last $set)", w, v, each)
		}
	}
}

func testConcurrentClaims(t *testing.T, im Impl) {
	ctx := ctxT(t)
	cs := clients(t, im, "claims")
	const rounds, claimers = 15, 6
	for r := range rounds {
		id := fmt.Sprintf("host%d", r)
		if err := cs[0].Insert(ctx, bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: ""}}); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := range claimers {
			wg.Go(func() {
				free := bson.D{{Key: "_id", Value: id}, {Key: "owner", Value: ""}}
				claim := bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: fmt.Sprintf("w%d", w)}}}}
				_, err := cs[w%2].FindOneAndUpdate(ctx, free, claim, store.FindAndUpdate{})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("claim: %v", err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("round %d: %d of %d concurrent claims of one free document won, want 1", r, n, claimers)
		}
	}
}

// testReplaceAmongUpdates: a whole-document replace that lands among
// updates of the same document is never undone by one of them.
func testReplaceAmongUpdates(t *testing.T, im Impl) {
	ctx := ctxT(t)
	cs := clients(t, im, "replace")
	for r := range 10 {
		id := fmt.Sprintf("d%d", r)
		if err := cs[0].Insert(ctx, acceptanceDoc{ID: id}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for range 10 {
					inc := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}}}
					if _, err := cs[w%2].UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, inc, false); err != nil {
						t.Errorf("UpdateOne: %v", err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			if err := cs[0].Upsert(ctx, id, acceptanceDoc{ID: id, N: 1000, Tag: "replaced"}); err != nil {
				t.Errorf("Upsert: %v", err)
			}
		})
		wg.Wait()
		if got := mustGet(t, cs[1], id); got.Tag != "replaced" || got.N < 1000 || got.N > 1040 {
			t.Errorf("round %d: document %+v after a replace among 40 $inc; want tag replaced, n in [1000, 1040]", r, got)
		}
	}
}
