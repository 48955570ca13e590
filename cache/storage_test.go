package cache_test

import (
	"context"
	"slices"
	"testing"

	"crawlcache/cache"
	"crawlcache/store/storetest"
)

// TestURLIndexOnlyWherePushedDown: the url index serves inspection
// commands on servers that use secondary indexes; on the embedded server it
// would only slow every insert down, so New does not create it (and drops
// one an earlier version created: store.Collection.EnsureIndex, tested in
// store/).
func TestURLIndexOnlyWherePushedDown(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	tr, err := cache.New(ctx, s, cache.Options{})
	if err != nil {
		t.Fatalf("new transport: %v", err)
	}
	defer tr.Close()
	want := s.Capabilities().FilterPushdown
	for _, name := range []string{cache.ResponsesCollection, cache.RedirectsCollection} {
		names, err := s.Collection(cache.DefaultDatabase, name).Indexes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(names, "url"); got != want {
			t.Errorf("%s has a url index: %v, want %v", name, got, want)
		}
	}
}
