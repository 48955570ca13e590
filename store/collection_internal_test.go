package store

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestEnsureIndexDropsIndexLeftByEarlierVersion: a data directory indexed
// by an earlier version (a url index the embedded server never uses, and
// parses on every insert) loses the index at the next EnsureIndex.
func TestEnsureIndexDropsIndexLeftByEarlierVersion(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	c := s.Collection("http_cache", "responses")
	if _, err := c.wire.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "url", Value: 1}}, Options: options.Index().SetName("url")}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureIndex(ctx, "url", bson.D{{Key: "url", Value: 1}}); err != nil {
		t.Fatalf("EnsureIndex: %v", err)
	}
	names, err := c.Indexes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "url") {
		t.Errorf("indexes after EnsureIndex on the embedded store = %v, want no url index", names)
	}
}
