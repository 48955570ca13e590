package storetest_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

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
