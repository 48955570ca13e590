package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// BenchmarkInsertOne inserts 44 KB response documents with new _ids
// through the server and through Direct, one at a time.
func BenchmarkInsertOne(b *testing.B) {
	ctx := context.Background()
	page := htmlPage(44 << 10)
	doc := func(i int) bson.D {
		return bson.D{
			{Key: "_id", Value: fmt.Sprintf("GET https://example.com/page/%d", i)},
			{Key: "url", Value: fmt.Sprintf("https://example.com/page/%d", i)},
			{Key: "status", Value: int32(200)},
			{Key: "headers", Value: bson.D{{Key: "Content-Type", Value: "text/html; charset=utf-8"}, {Key: "Etag", Value: `"abc123"`}}},
			{Key: "body", Value: page},
			{Key: "size", Value: int64(len(page))},
		}
	}
	s := storetest.Open(b)
	db := s.Database("bench")
	if err := s.EnsureCollections(ctx, "bench", "wire", "direct"); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64 // _ids stay new however often a sub-benchmark runs
	b.Run("wire", func(b *testing.B) {
		coll := db.Collection("wire")
		for b.Loop() {
			if _, err := coll.InsertOne(ctx, doc(int(next.Add(1)))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		d := store.DirectOf(s)
		for b.Loop() {
			raw, err := bson.Marshal(doc(int(next.Add(1))))
			if err != nil {
				b.Fatal(err)
			}
			if err := d.InsertOne(ctx, "bench", "direct", raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
