package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

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
	coll := s.Database("crawlcache_test").Collection("items")

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

	n, err := coll.CountDocuments(ctx, bson.D{})
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
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: pageA[1].ID}}).Decode(&doc); err != nil {
		t.Fatalf("find item by _id: %v", err)
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

func TestMongoSinkOtherErrorsAreReturned(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantDup int
		wantErr bool
	}{
		{"nil", nil, 0, false},
		{"only duplicates", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000}}, {WriteError: mongo.WriteError{Code: 11000}}}}, 2, false},
		{"duplicate and another error", mongo.BulkWriteException{WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000}}, {WriteError: mongo.WriteError{Code: 2}}}}, 0, true},
		{"write concern", mongo.BulkWriteException{WriteConcernError: &mongo.WriteConcernError{Code: 64}, WriteErrors: []mongo.BulkWriteError{{WriteError: mongo.WriteError{Code: 11000}}}}, 0, true},
		{"network", errors.New("connection reset"), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dup, err := onlyDuplicates(tt.err)
			if dup != tt.wantDup || (err != nil) != tt.wantErr {
				t.Errorf("onlyDuplicates: got (%d, %v), want (%d, error %v)", dup, err, tt.wantDup, tt.wantErr)
			}
		})
	}
}

// The run_id index of the items collection exists only where it is asked
// for (a server that uses secondary indexes); otherwise Open removes the
// one earlier releases created on every store, which the embedded store
// never used and maintained on every insert.
func TestMongoSinkRunIDIndex(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		indexRunID bool
		before     bool // the collection has the index already (earlier release)
		want       bool
	}{
		{"asked for", true, false, true},
		{"asked for, already there", true, true, true},
		{"not asked for, earlier release's index", false, true, false},
		{"not asked for, none", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			coll := storetest.Open(t).Database("crawlcache_test").Collection("items")
			if tc.before {
				if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "run_id", Value: 1}}}); err != nil {
					t.Fatal(err)
				}
			}
			sink := NewCountedMongoSink(coll, MongoSinkOptions{IndexRunID: tc.indexRunID})
			if err := sink.Open(ctx, "r1", false); err != nil {
				t.Fatalf("Open: %v", err)
			}
			specs, err := coll.Indexes().ListSpecifications(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, s := range specs {
				got = got || s.Name == "run_id_1"
			}
			if got != tc.want {
				t.Errorf("index run_id_1 present = %v, want %v (indexes %v)", got, tc.want, specs)
			}
		})
	}
}
