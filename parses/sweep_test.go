package parses

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// TestSweepDeletesOnlyOldRecordsOfGoneEntries: Sweep deletes the records
// made before the cutoff whose cache entry is gone, and a document that is
// not a record; a record of a page still cached stays however old, and a
// recent one stays whatever its entry. More records than one batch of
// cache keys.
func TestSweepDeletesOnlyOldRecordsOfGoneEntries(t *testing.T) {
	ctx := context.Background()
	coll := storetest.Open(t).Collection("crawlcache", DefaultCollection)
	s := New(coll)
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	cutoff := now.Add(-30 * 24 * time.Hour)
	cached := map[string]bool{}
	want := map[string]bool{} // record _id → kept
	save := func(key string, at time.Time, isCached, kept bool) {
		t.Helper()
		rec := &Record{ID: ID(key, "rules"), URL: "http://example.org/" + key, CacheKey: key, Rules: "rules", BodyHash: "h", ParsedAt: at}
		if ok, err := s.Save(ctx, rec); !ok || err != nil {
			t.Fatalf("Save = %v, %v", ok, err)
		}
		cached[key], want[rec.ID] = isCached, kept
	}
	for i := range 300 {
		save(fmt.Sprint("gone-old-", i), cutoff.Add(-time.Duration(i+1)*time.Hour), false, false)
	}
	for i := range 10 {
		save(fmt.Sprint("cached-old-", i), cutoff.Add(-365*24*time.Hour), true, true)
		save(fmt.Sprint("gone-recent-", i), cutoff.Add(time.Hour), false, true)
	}
	if err := coll.Upsert(ctx, "junk", bson.D{{Key: "_id", Value: "junk"}, {Key: "note", Value: "typed in Compass"}}); err != nil {
		t.Fatal(err)
	}
	want["junk"] = false
	asked := 0
	live := func(_ context.Context, keys []string) (map[string]bool, error) {
		if len(keys) > sweepBatch {
			t.Errorf("asked about %d keys at once, more than a batch (%d)", len(keys), sweepBatch)
		}
		asked += len(keys)
		out := map[string]bool{}
		for _, k := range keys {
			out[k] = cached[k]
		}
		return out, nil
	}
	n, err := s.Sweep(ctx, cutoff, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 301 || asked != 310 {
		t.Errorf("Sweep deleted %d records, asked about %d cache keys; want 301 and 310 (the old ones)", n, asked)
	}
	for id, kept := range want {
		_, err := coll.Get(ctx, id)
		switch {
		case kept && err != nil:
			t.Errorf("record %s deleted (%v), want kept", id, err)
		case !kept && !errors.Is(err, store.ErrNotFound):
			t.Errorf("record %s still there (%v), want deleted", id, err)
		}
	}
	if n, err := s.Sweep(ctx, cutoff, live, nil); n != 0 || err != nil {
		t.Errorf("second Sweep = %d, %v; want nothing more", n, err)
	}
}

// BenchmarkSweepAllCached: a sweep of 20,000 parse records older than the
// TTL whose pages are all still cached (the steady state of a nightly
// crawl): a scan of the collection and a lookup of each page summary,
// nothing deleted.
func BenchmarkSweepAllCached(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b)
	s := New(st.Collection("crawlcache", DefaultCollection))
	pages := st.Collection(cache.DefaultDatabase, cache.PagesCollection)
	const n = 20000
	old := time.Now().Add(-365 * 24 * time.Hour)
	var recs, sums []any
	for i := range n {
		key := fmt.Sprintf("%032x", i)
		recs = append(recs, &Record{ID: ID(key, "rules"), URL: "http://example.org/" + key, CacheKey: key, Rules: "rules",
			BodyHash: "h", Links: []string{"http://example.org/a", "http://example.org/b"}, Items: []bson.D{}, ParsedAt: old})
		sums = append(sums, cache.Page{ID: key, URL: "http://example.org/" + key, Status: 200, ValidatedAt: time.Now()})
	}
	if _, err := st.Collection("crawlcache", DefaultCollection).InsertMany(ctx, recs); err != nil {
		b.Fatal(err)
	}
	if _, err := pages.InsertMany(ctx, sums); err != nil {
		b.Fatal(err)
	}
	live := cache.NewAdmin(st, cache.DefaultDatabase, nil).Live
	b.ResetTimer()
	for b.Loop() {
		if d, err := s.Sweep(ctx, time.Now(), live, nil); d != 0 || err != nil {
			b.Fatalf("Sweep = %d, %v", d, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}
