package store_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// Options.OnCommand tells, without the driver's event package, which
// commands a store sends through the wire and whether each selects by _id:
// the tests that keep a hit or a run's scans off the server rely on it.
func TestOnCommandDescribesWireCommands(t *testing.T) {
	ctx := context.Background()
	served := storetest.Open(t)
	var (
		mu   sync.Mutex
		seen []store.Command
	)
	s, err := store.Open(ctx, store.Options{URI: served.URI, Logger: slog.New(slog.DiscardHandler),
		OnCommand: func(c store.Command) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, c)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	coll := s.Collection("obs", "c")
	if err := coll.Insert(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		op       func() error
		wantName string
		wantKind store.FilterKind
	}{
		{"get by _id", func() error { _, err := coll.Get(ctx, "a"); return err }, "find", store.FilterID},
		{"find by _id range", func() error {
			_, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "a"}}}}, store.FindOptions{})
			return err
		}, "find", store.FilterID},
		{"find by another field", func() error {
			_, err := coll.FindOne(ctx, bson.D{{Key: "v", Value: 1}}, store.FindOptions{})
			return err
		}, "find", store.FilterOther},
		{"find by _id and another field", func() error {
			_, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: 1}}, store.FindOptions{})
			return err
		}, "find", store.FilterOther},
		{"scan everything", func() error {
			return coll.Scan(ctx, bson.D{}, store.FindOptions{}, func(bson.Raw) error { return nil })
		}, "find", store.FilterNone},
		{"delete by _id", func() error { return coll.Delete(ctx, "gone") }, "delete", store.FilterID},
		{"count by another field", func() error { _, err := coll.Count(ctx, bson.D{{Key: "v", Value: 1}}); return err }, "aggregate", store.FilterOther},
		{"update by another field", func() error {
			_, err := coll.UpdateOne(ctx, bson.D{{Key: "v", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "w", Value: 2}}}}, false)
			return err
		}, "update", store.FilterOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			if err := tc.op(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			i := slices.IndexFunc(seen, func(c store.Command) bool { return c.Collection == "c" })
			if i < 0 {
				t.Fatalf("commands on obs.c: none in %+v; want a %s", seen, tc.wantName)
			}
			got := seen[i]
			if got.Name != tc.wantName || got.Database != "obs" || got.FilterKind != tc.wantKind {
				t.Errorf("command: got %s %s.%s filter %s (%v); want %s obs.c filter %s",
					got.Name, got.Database, got.Collection, got.FilterKind, got.Filter, tc.wantName, tc.wantKind)
			}
		})
	}
}
