package store

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// UpsertAll writes each document in its collection, inserting new ones
// and replacing stored ones whether or not a put says New, in one
// database as one write and across databases one after the other; the
// server reads what it wrote.
func TestUpsertAll(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	a, b, other := s.Collection("w", "a"), s.Collection("w", "b"), s.Collection("x", "c")
	if err := s.EnsureCollections(ctx, "w", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureCollections(ctx, "x", "c"); err != nil {
		t.Fatal(err)
	}
	st0, _ := s.DirectStats()
	put := func(v int, newA bool) {
		t.Helper()
		err := UpsertAll(ctx,
			Put{Coll: a, ID: "k", Doc: bson.D{{Key: "_id", Value: "k"}, {Key: "v", Value: v}}, New: newA},
			Put{Coll: b, ID: "k", Doc: bson.D{{Key: "_id", Value: "k"}, {Key: "v", Value: v * 10}}})
		if err != nil {
			t.Fatalf("UpsertAll %d: %v", v, err)
		}
	}
	want := func(c *Collection, v int32) {
		t.Helper()
		raw, err := c.Get(ctx, "k")
		if err != nil || raw.Lookup("v").Int32() != v {
			t.Errorf("%s: %s, %v; want v %d", c, raw, err, v)
		}
		var doc bson.M
		if err := s.Database(c.db).Collection(c.name).FindOne(ctx, bson.D{{Key: "_id", Value: "k"}}).Decode(&doc); err != nil || doc["v"] != v {
			t.Errorf("%s through the server: %v, %v; want v %d", c, doc, err, v)
		}
		if n, err := c.Count(ctx, bson.D{}); err != nil || n != 1 {
			t.Errorf("%s holds %d documents, %v; want 1", c, n, err)
		}
	}
	put(1, true)
	want(a, 1)
	want(b, 10)
	put(2, true) // stored already although said new: replaced
	want(a, 2)
	want(b, 20)
	put(3, false)
	want(a, 3)
	want(b, 30)
	if st, direct := s.DirectStats(); direct && st.Writes-st0.Writes != 3 {
		t.Errorf("%d direct writes for 3 UpsertAll calls in one database, want 3", st.Writes-st0.Writes)
	}

	err := UpsertAll(ctx,
		Put{Coll: a, ID: "k", Doc: bson.D{{Key: "_id", Value: "k"}, {Key: "v", Value: 4}}},
		Put{Coll: other, ID: "k", Doc: bson.D{{Key: "_id", Value: "k"}, {Key: "v", Value: 40}}, New: true})
	if err != nil {
		t.Fatalf("UpsertAll across databases: %v", err)
	}
	want(a, 4)
	want(other, 40)
}
