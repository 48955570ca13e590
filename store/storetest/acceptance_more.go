package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

func testScan(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "scan")
	for i := range 10 {
		tag := "even"
		if i%2 == 1 {
			tag = "odd"
		}
		if err := c.Insert(ctx, acceptanceDoc{ID: fmt.Sprintf("d%02d", i), N: int64(i), Tag: tag}); err != nil {
			t.Fatal(err)
		}
	}
	odd := bson.D{{Key: "tag", Value: "odd"}}
	if got, want := ids(t, c, odd, store.FindOptions{Sort: bson.D{{Key: "n", Value: -1}}}), []string{"d09", "d07", "d05", "d03", "d01"}; !slices.Equal(got, want) {
		t.Errorf("Scan odd by n desc = %v, want %v", got, want)
	}
	if got, want := ids(t, c, bson.D{}, store.FindOptions{Sort: bson.D{{Key: "_id", Value: 1}}, Skip: 2, Limit: 3}), []string{"d02", "d03", "d04"}; !slices.Equal(got, want) {
		t.Errorf("Scan skip 2 limit 3 = %v, want %v", got, want)
	}
	err := c.Scan(ctx, bson.D{}, store.FindOptions{Projection: bson.D{{Key: "tag", Value: 1}}, BatchSize: 3}, func(raw bson.Raw) error {
		if _, err := raw.LookupErr("n"); err == nil {
			return fmt.Errorf("projected out field n in %v", raw)
		}
		return nil
	})
	if err != nil {
		t.Errorf("Scan with projection: %v", err)
	}
	stop := errors.New("stop")
	seen := 0
	if err := c.Scan(ctx, bson.D{}, store.FindOptions{}, func(bson.Raw) error { seen++; return stop }); !errors.Is(err, stop) || seen != 1 {
		t.Errorf("Scan stopped by fn: err %v after %d documents, want stop after 1", err, seen)
	}
	raw, err := c.FindOne(ctx, odd, store.FindOptions{Sort: bson.D{{Key: "n", Value: 1}}})
	if err != nil || decode(t, raw).ID != "d01" {
		t.Errorf("FindOne odd by n = %v, %v; want d01", raw, err)
	}
	if n, err := c.Count(ctx, odd); err != nil || n != 5 {
		t.Errorf("Count odd = %d, %v; want 5", n, err)
	}
	var all []acceptanceDoc
	if err := c.All(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: 8}}}}, store.FindOptions{Sort: bson.D{{Key: "n", Value: 1}}}, &all); err != nil || len(all) != 2 || all[0].ID != "d08" {
		t.Errorf("All n >= 8 = %+v, %v; want d08, d09", all, err)
	}
}

func testScanIDPrefix(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "prefix")
	if err := im.Store.EnsureCollections(ctx, im.DB, "prefix"); err != nil {
		t.Fatal(err)
	}
	all := []string{"run1/b", "run1/a", "run10/x", "run2/a", "run0/z", "run1:c", "run1/a/deep"}
	docs := make([]any, len(all))
	for i, id := range all {
		docs[i] = acceptanceDoc{ID: id}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"run1/", []string{"run1/a", "run1/a/deep", "run1/b"}},
		{"run1", []string{"run1/a", "run1/a/deep", "run1/b", "run10/x", "run1:c"}},
		{"run3/", nil},
		{"", []string{"run0/z", "run1/a", "run1/a/deep", "run1/b", "run10/x", "run1:c", "run2/a"}},
	} {
		var got []string
		err := c.ScanIDPrefix(ctx, tc.prefix, func(raw bson.Raw) error {
			got = append(got, decode(t, raw).ID)
			return nil
		})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ScanIDPrefix(%q) = %v, %v; want %v", tc.prefix, got, err, tc.want)
		}
	}
	// A prefix whose JSON text is not itself is refused by every
	// implementation alike.
	for _, prefix := range []string{"run 1", "run\"1", "ré"} {
		if err := c.ScanIDPrefix(ctx, prefix, func(bson.Raw) error { return nil }); err == nil {
			t.Errorf("ScanIDPrefix(%q) = nil, want an error (unsupported prefix)", prefix)
		}
	}
}

func testUpdate(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "update")
	res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int64(1)}}}}, false)
	if err != nil || res.Matched != 0 || res.Upserted {
		t.Errorf("UpdateOne of a missing document = %+v, %v; want nothing matched", res, err)
	}
	res, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int64(1)}}}}, true)
	if err != nil || !res.Upserted {
		t.Errorf("UpdateOne upsert = %+v, %v; want upserted", res, err)
	}
	if err := c.Insert(ctx, acceptanceDoc{ID: "v", N: 1}); err != nil {
		t.Fatal(err)
	}
	res, err = c.UpdateMany(ctx, bson.D{{Key: "n", Value: int64(1)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "tag", Value: "x"}}}})
	if err != nil || res.Matched != 2 || res.Modified != 2 {
		t.Errorf("UpdateMany = %+v, %v; want 2 matched and modified", res, err)
	}
	if got := mustGet(t, c, "u"); got.Tag != "x" || got.N != 1 {
		t.Errorf("u = %+v, want n 1 tag x", got)
	}
}

func testFindOneAndUpdate(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "claim")
	for i, st := range []string{"done", "queued", "queued"} {
		if err := c.Insert(ctx, acceptanceDoc{ID: fmt.Sprintf("e%d", i), N: int64(i), Tag: st}); err != nil {
			t.Fatal(err)
		}
	}
	claim := bson.D{{Key: "$set", Value: bson.D{{Key: "tag", Value: "leased"}}}}
	queued := bson.D{{Key: "tag", Value: "queued"}}
	raw, err := c.FindOneAndUpdate(ctx, queued, claim, store.FindAndUpdate{Sort: bson.D{{Key: "n", Value: -1}}})
	if err != nil {
		t.Fatalf("FindOneAndUpdate: %v", err)
	}
	if got := decode(t, raw); got.ID != "e2" || got.Tag != "queued" {
		t.Errorf("FindOneAndUpdate returned %+v, want e2 as it was (queued)", got)
	}
	raw, err = c.FindOneAndUpdate(ctx, queued, claim, store.FindAndUpdate{ReturnNew: true})
	if err != nil || decode(t, raw).ID != "e1" || decode(t, raw).Tag != "leased" {
		t.Errorf("FindOneAndUpdate ReturnNew = %v, %v; want e1 leased", raw, err)
	}
	if _, err := c.FindOneAndUpdate(ctx, queued, claim, store.FindAndUpdate{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindOneAndUpdate with nothing queued: err = %v, want ErrNotFound", err)
	}
}

func testConcurrentWriters(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "writers")
	const writers, each = 8, 20
	for _, err := range concurrently(writers, func(w int) error {
		for i := range each {
			id := fmt.Sprintf("w%d/%03d", w, i)
			if err := c.Insert(ctx, acceptanceDoc{ID: id, N: int64(i)}); err != nil {
				return err
			}
			if err := c.Upsert(ctx, "shared", acceptanceDoc{ID: "shared", N: int64(w)}); err != nil {
				return err
			}
			if i%5 == 0 {
				if _, err := c.Get(ctx, id); err != nil {
					return err
				}
			}
		}
		return nil
	}) {
		t.Errorf("concurrent writer: %v", err)
	}
	if n, err := c.Count(ctx, bson.D{}); err != nil || n != writers*each+1 {
		t.Errorf("Count = %d, %v; want %d", n, err, writers*each+1)
	}
}

func testConcurrentDuplicate(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "dup")
	if err := im.Store.EnsureCollections(ctx, im.DB, "dup"); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := range n {
		wg.Go(func() { results <- c.Insert(ctx, acceptanceDoc{ID: "one", N: int64(i)}) })
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrDuplicateID):
			t.Errorf("concurrent Insert: %v, want nil or ErrDuplicateID", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent inserts of one _id succeeded, want 1", ok, n)
	}
}

func testCounters(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "counters")
	const workers, each = 8, 25
	for _, err := range concurrently(workers, func(_ int) error {
		for range each {
			inc := bson.D{{Key: "hits", Value: int64(1)}, {Key: "bytes", Value: int64(10)}}
			if _, err := c.Inc(ctx, "proxy", inc, bson.D{{Key: "updated", Value: "now"}}); err != nil {
				return err
			}
		}
		return nil
	}) {
		t.Errorf("Inc: %v", err)
	}
	raw, err := c.Inc(ctx, "proxy", bson.D{{Key: "hits", Value: int64(0)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Hits    int64  `bson:"hits"`
		Bytes   int64  `bson:"bytes"`
		Updated string `bson:"updated"`
	}
	if err := bson.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Hits != workers*each || got.Bytes != 10*workers*each || got.Updated != "now" {
		t.Errorf("counter = %+v, want hits %d bytes %d updated now", got, workers*each, 10*workers*each)
	}
}

func testIndex(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "indexed")
	if err := c.Insert(ctx, acceptanceDoc{ID: "a", Tag: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureIndex(ctx, "tag", bson.D{{Key: "tag", Value: 1}}); err != nil {
		t.Fatalf("EnsureIndex: %v", err)
	}
	names, err := c.Indexes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Only a server that uses secondary indexes keeps one.
	pushdown := im.Store.Capabilities().FilterPushdown
	if got := slices.Contains(names, "tag"); got != pushdown {
		t.Errorf("index tag present = %v, want %v (filter pushdown %v); indexes %v", got, pushdown, pushdown, names)
	}
	if err := c.DropIndex(ctx, "tag"); err != nil {
		t.Errorf("DropIndex: %v", err)
	}
	if err := c.Drop(ctx); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if n, err := c.Count(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("Count after Drop = %d, %v; want 0", n, err)
	}
}

// testTTL: on MongoDB the TTL index exists with the expiry asked for
// (MongoDB's monitor deletes within a minute of expiry, too slow to wait
// for here); on the embedded store EnsureTTL says there are no TTL indexes
// and the sweep (DeleteMany on the date) deletes exactly what expired.
func testTTL(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "ttl")
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, age := range []time.Duration{3 * time.Hour, 2 * time.Hour, 30 * time.Minute} {
		if err := c.Insert(ctx, acceptanceDoc{ID: fmt.Sprintf("t%d", i), At: now.Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.EnsureTTL(ctx, "at_ttl", "at", time.Hour)
	if !c.TTLIndexes() {
		if !errors.Is(err, store.ErrNoTTLIndexes) {
			t.Fatalf("EnsureTTL without TTL indexes: err = %v, want ErrNoTTLIndexes", err)
		}
		n, err := c.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: now.Add(-time.Hour)}}}})
		if err != nil || n != 2 {
			t.Errorf("sweep = %d, %v; want 2 deleted", n, err)
		}
		if got := ids(t, c, bson.D{}, store.FindOptions{}); !slices.Equal(got, []string{"t2"}) {
			t.Errorf("after the sweep %v, want [t2]", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("EnsureTTL: %v", err)
	}
	for _, want := range []time.Duration{time.Hour, 2 * time.Hour} {
		if err := c.EnsureTTL(ctx, "at_ttl", "at", want); err != nil {
			t.Fatalf("EnsureTTL %v: %v", want, err)
		}
		got, ok, err := c.TTL(ctx, "at_ttl")
		if err != nil || !ok || got != want {
			t.Errorf("TTL index expiry = %v (present %v, err %v), want %v", got, ok, err, want)
		}
	}
}

func testClosed(t *testing.T, im Impl) {
	c := coll(t, im, "closed")
	ctx := ctxT(t)
	if err := c.Insert(ctx, acceptanceDoc{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := im.Store.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["Get"] = c.Get(ctx, "a")
	checks["Insert"] = c.Insert(ctx, acceptanceDoc{ID: "b"})
	checks["Upsert"] = c.Upsert(ctx, "a", acceptanceDoc{ID: "a"})
	checks["Delete"] = c.Delete(ctx, "a")
	_, checks["Count"] = c.Count(ctx, bson.D{})
	checks["ScanIDPrefix"] = c.ScanIDPrefix(ctx, "a", func(bson.Raw) error { return nil })
	for op, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", op, err)
		}
	}
}

// testGone: the server stops under an open store; every operation fails
// with an error that IsUnavailable recognizes (or ErrClosed when the
// store itself was the server), never hangs past its context.
func testGone(t *testing.T, im Impl) {
	if im.Kill == nil {
		t.Skip("this implementation cannot be stopped by the test")
	}
	c := coll(t, im, "gone")
	ctx := ctxT(t)
	if err := c.Insert(ctx, acceptanceDoc{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	im.Kill()
	// The driver keeps looking for a server until the context ends: a
	// short one keeps the test short.
	gctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, getErr := c.Get(gctx, "a")
	ictx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	insErr := c.Insert(ictx, acceptanceDoc{ID: "b"})
	for op, err := range map[string]error{"Get": getErr, "Insert": insErr} {
		if err == nil || !(store.IsUnavailable(err) || errors.Is(err, store.ErrClosed)) {
			t.Errorf("%s with the server gone: err = %v, want one IsUnavailable recognizes (or ErrClosed)", op, err)
		}
	}
}
