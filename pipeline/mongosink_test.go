package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store/storetest"
)

// testItems returns n items of page url in run, with a title and an All
// field, as the extractor would make them.
func testItems(run, url string, n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{
			ID: ItemID(run, url, i), RunID: run, Job: "books", URL: url, Index: i,
			FetchedAt: time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC), Served: ServedHit,
			Fields: []KV{
				{Key: "title", Value: fmt.Sprintf("Title %d, \"quoted\"\nsecond line", i)},
				{Key: "tags", Value: []string{"a", "b"}},
				{Key: "price", Value: nil},
			},
		}
	}
	return items
}

func TestMongoSink(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll := s.Collection("crawlcache_test", "items")

	sink := NewMongoSink(coll)
	if err := sink.Write(ctx, testItems("r1", "https://example.org/a", 1)); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("Write before Open: got %v, want ErrNotOpen", err)
	}
	if err := sink.Open(ctx, "r1", false); err != nil {
		t.Fatalf("Open: %v", err)
	}
	pageA := testItems("r1", "https://example.org/a", 3)
	pageB := testItems("r1", "https://example.org/b", 2)
	if err := sink.Write(ctx, pageA); err != nil {
		t.Fatalf("Write page a: %v", err)
	}
	// Crash and resume: a new sink on the same collection writes page a
	// again (some items already there, in the middle of the batch) and page b.
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	sink = NewMongoSink(coll)
	if err := sink.Open(ctx, "r1", true); err != nil {
		t.Fatalf("Open resume: %v", err)
	}
	mixed := append([]Item{pageB[0]}, pageA...)
	mixed = append(mixed, pageB[1])
	if err := sink.Write(ctx, mixed); err != nil {
		t.Fatalf("Write resumed duplicates: %v", err)
	}
	if err := sink.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}

	n, err := coll.Count(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 5 {
		t.Errorf("documents: got %d, want 5 (3 of page a, 2 of page b, each once)", n)
	}
	ms := sink.(*mongoSink)
	if got, want := ms.duplicates.Load(), int64(3); got != want {
		t.Errorf("duplicates ignored: got %d, want %d", got, want)
	}

	var doc bson.D
	raw, err := coll.Get(ctx, pageA[1].ID)
	if err != nil {
		t.Fatalf("find item by _id: %v", err)
	}
	if err := bson.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range doc {
		keys = append(keys, e.Key)
	}
	wantKeys := []string{"_id", "run_id", "job", "url", "index", "fetched_at", "served", "title", "tags", "price"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("document keys: got %v, want %v", keys, wantKeys)
	}
	m := map[string]any{}
	for _, e := range doc {
		m[e.Key] = e.Value
	}
	if got := m["fetched_at"]; got != bson.NewDateTimeFromTime(pageA[1].FetchedAt) {
		t.Errorf("fetched_at: got %#v, want a BSON date", got)
	}
	if got := m["tags"]; !reflect.DeepEqual(got, bson.A{"a", "b"}) {
		t.Errorf("tags: got %#v, want an array", got)
	}
	if got, ok := m["price"]; !ok || got != nil {
		t.Errorf("price: got %#v (present %v), want null", got, ok)
	}
	if got := m["index"]; got != int32(1) {
		t.Errorf("index: got %#v, want 1", got)
	}
}

// The run_id index of the items collection exists only where the server
// uses secondary indexes (MongoDB); on the embedded store Open removes the
// one earlier releases created there, which it never used and maintained
// on every insert.
func TestMongoSinkRunIDIndex(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		before bool // the collection has the index already (earlier release)
	}{
		{"earlier release's index", true},
		{"none", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			coll := s.Collection("crawlcache_test", "items")
			if tc.before {
				// As earlier releases did, on any store (by the server's
				// default name for the key).
				if err := coll.CreateIndex(ctx, "run_id_1", bson.D{{Key: "run_id", Value: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			sink := NewMongoSink(coll)
			if err := sink.Open(ctx, "r1", false); err != nil {
				t.Fatalf("Open: %v", err)
			}
			names, err := coll.Indexes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := s.Capabilities().FilterPushdown // true on MongoDB only
			if got := slices.Contains(names, "run_id_1"); got != want {
				t.Errorf("index run_id_1 present = %v, want %v (indexes %v)", got, want, names)
			}
		})
	}
}
