package storetest_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store/storetest"
)

// TestOpenFixture proves the release fixture unpacks and opens with today's
// store and still holds what its README says.
func TestOpenFixture(t *testing.T) {
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	n, err := s.Collection("http_cache", "responses").Count(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("responses in fixture: got %d, want 10", n)
	}
}

// TestOpenFixtureAFE97F7: the second release fixture holds what its README
// says: 13 responses, a summary for each without the body's hash, the 9
// revalidations of fixture-public's --revalidate run and 11 parse records.
func TestOpenFixtureAFE97F7(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, cache.Migrations()[:1]...) // what that release knew
	count := func(db, coll string, filter bson.D) int64 {
		t.Helper()
		n, err := s.Collection(db, coll).Count(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		db, coll string
		want     int64
	}{
		{"http_cache", "responses", 13},
		{"http_cache", "pages", 13},
		{"http_cache", "revalidations", 9},
		{"crawlcache", "parses", 11},
	} {
		if n := count(c.db, c.coll, bson.D{}); n != c.want {
			t.Errorf("%s.%s holds %d documents, want %d", c.db, c.coll, n, c.want)
		}
	}
	if n := count("http_cache", "pages", bson.D{{Key: "body_sha256", Value: bson.D{{Key: "$exists", Value: true}}}}); n != 0 {
		t.Errorf("%d pages name a body hash, want none (written before heads)", n)
	}
}
