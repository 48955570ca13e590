package cache_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/cache"
	"crawlcache/store/storetest"
)

// TestURLIndexOnlyWherePushedDown: the url index serves inspection
// commands on servers that use secondary indexes; on the embedded server it
// would only slow every insert down, and one an earlier version created is
// dropped.
func TestURLIndexOnlyWherePushedDown(t *testing.T) {
	ctx := context.Background()
	indexes := func(t *testing.T, coll *mongo.Collection) []string {
		t.Helper()
		specs, err := coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		return names
	}
	for _, tc := range []struct {
		name          string
		pushdown, old bool
		want          bool
	}{
		{name: "pushdown", pushdown: true, want: true},
		{name: "no pushdown", pushdown: false, want: false},
		{name: "no pushdown, index left by an earlier version", pushdown: false, old: true, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := storetest.Open(t).Database(cache.DefaultDatabase)
			if tc.old {
				for _, name := range []string{cache.ResponsesCollection, cache.RedirectsCollection} {
					_, err := db.Collection(name).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "url", Value: 1}}, Options: options.Index().SetName("url")})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			tr, err := cache.New(ctx, db, cache.Options{FilterPushdown: tc.pushdown})
			if err != nil {
				t.Fatalf("new transport: %v", err)
			}
			defer tr.Close()
			for _, name := range []string{cache.ResponsesCollection, cache.RedirectsCollection} {
				if got := slices.Contains(indexes(t, db.Collection(name)), "url"); got != tc.want {
					t.Errorf("%s has a url index: %v, want %v", name, got, tc.want)
				}
			}
		})
	}
}
