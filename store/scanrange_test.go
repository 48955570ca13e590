package store_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

func TestScanIDPrefix(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll := s.Database("t").Collection("c")
	var docs []any
	for _, id := range []string{"run-1-b", "run-10-x", "run-1-a", "run-1.z", "run-2-a", "run-1-c#3", "run-"} {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: id + "!"}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	d := store.DirectOf(s)
	for _, tc := range []struct {
		name, db, coll, prefix string
		want                   []string
	}{
		{"one run", "t", "c", "run-1-", []string{"run-1-a", "run-1-b", "run-1-c#3"}},
		{"a prefix of other runs' ids", "t", "c", "run-1", []string{"run-1-a", "run-1-b", "run-1-c#3", "run-1.z", "run-10-x"}},
		{"nothing", "t", "c", "run-3-", nil},
		{"no such collection", "t", "nope", "run-", nil},
		{"no such database", "nope", "c", "run-", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := d.ScanIDPrefix(ctx, tc.db, tc.coll, tc.prefix, func(doc bson.Raw) error {
				if v := doc.Lookup("v").StringValue(); v != doc.Lookup("_id").StringValue()+"!" {
					t.Errorf("document %s: v = %q", doc, v)
				}
				got = append(got, doc.Lookup("_id").StringValue())
				return nil
			})
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ScanIDPrefix(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
			}
		})
	}
	if err := d.ScanIDPrefix(ctx, "t", "c", `run"`, func(bson.Raw) error { return nil }); err == nil {
		t.Errorf("ScanIDPrefix with a quote in the prefix succeeded, want an error")
	}
}
