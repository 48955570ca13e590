package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func openForWrites(t *testing.T) (*Store, *Direct) {
	t.Helper()
	s := openDir(t, t.TempDir())
	d := DirectOf(s)
	if d == nil {
		t.Fatal("no direct access to an in-process embedded store")
	}
	return s, d
}

func mustRaw(t testing.TB, v any) bson.Raw {
	t.Helper()
	raw, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDirectWritesReadBackThroughTheServer: what Direct writes, the server
// reads as the document written (and as its own insert would store it).
func TestDirectWritesReadBackThroughTheServer(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("w")
	if err := ensureCollections(ctx, db, "direct", "server"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range sjsonCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustRaw(t, tc.doc)
			if err := d.InsertOne(ctx, "w", "direct", raw); err != nil {
				t.Fatalf("direct insert: %v", err)
			}
			if _, err := db.Collection("server").InsertOne(ctx, raw); err != nil {
				t.Fatal(err)
			}
			id, _ := raw.Lookup("_id").StringValueOK()
			want, err := db.Collection("server").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.Collection("direct").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil {
				t.Fatalf("find what Direct inserted: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("direct insert reads back as\n%s\nwant\n%s", got, want)
			}
			if got, err := d.FindRaw(ctx, "w", "direct", id); err != nil || !bytes.Equal(got, want) {
				t.Errorf("FindRaw of the direct insert = %s, %v; want %s", got, err, want)
			}
		})
	}
}

func TestDirectWriteSemantics(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("w")
	coll := db.Collection("c")
	find := func(t *testing.T, id string) (bson.M, error) {
		t.Helper()
		var m bson.M
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&m)
		return m, err
	}

	t.Run("missing collection is not written directly", func(t *testing.T) {
		err := d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "a"}}))
		if !errors.Is(err, ErrDirectUnsupported) {
			t.Fatalf("insert into a missing collection = %v, want ErrDirectUnsupported", err)
		}
		if err := ensureCollections(ctx, db, "c"); err != nil {
			t.Fatal(err)
		}
		if err := d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: int32(1)}})); err != nil {
			t.Fatalf("insert once the collection exists: %v", err)
		}
	})
	t.Run("duplicate _id", func(t *testing.T) {
		err := d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: int32(2)}}))
		if !mongo.IsDuplicateKeyError(err) {
			t.Errorf("direct insert of an existing _id = %v, want a duplicate key error", err)
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); !mongo.IsDuplicateKeyError(err) {
			t.Errorf("server insert of an _id Direct inserted = %v, want a duplicate key error", err)
		}
		if m, err := find(t, "a"); err != nil || m["v"] != int32(1) {
			t.Errorf("after duplicates: %v, %v; want the first document", m, err)
		}
	})
	t.Run("insert many skips duplicates", func(t *testing.T) {
		docs := []bson.Raw{
			mustRaw(t, bson.D{{Key: "_id", Value: "b"}}),
			mustRaw(t, bson.D{{Key: "_id", Value: "a"}}),
			mustRaw(t, bson.D{{Key: "_id", Value: "c"}}),
			mustRaw(t, bson.D{{Key: "_id", Value: "b"}}),
		}
		dups, err := d.InsertMany(ctx, "w", "c", docs)
		if err != nil || fmt.Sprint(dups) != "[1 3]" {
			t.Errorf("InsertMany = %v, %v; want duplicates [1 3]", dups, err)
		}
		for _, id := range []string{"b", "c"} {
			if _, err := find(t, id); err != nil {
				t.Errorf("find %s: %v", id, err)
			}
		}
	})
	t.Run("upsert replaces and inserts", func(t *testing.T) {
		if err := d.Upsert(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: "new"}})); err != nil {
			t.Fatal(err)
		}
		if m, err := find(t, "a"); err != nil || m["v"] != "new" {
			t.Errorf("after upsert of a: %v, %v", m, err)
		}
		if err := d.Upsert(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "z"}, {Key: "v", Value: "z"}})); err != nil {
			t.Fatal(err)
		}
		if m, err := find(t, "z"); err != nil || m["v"] != "z" {
			t.Errorf("after upsert of z: %v, %v", m, err)
		}
		if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 4 {
			t.Errorf("documents = %d, %v; want 4 (a, b, c, z)", n, err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := d.DeleteOne(ctx, "w", "c", "z"); err != nil {
			t.Fatal(err)
		}
		if _, err := find(t, "z"); !errors.Is(err, mongo.ErrNoDocuments) {
			t.Errorf("find after delete = %v, want no document", err)
		}
		if err := d.DeleteOne(ctx, "w", "nosuch", "z"); err != nil {
			t.Errorf("delete from a missing collection = %v, want nil", err)
		}
	})
	t.Run("unsupported documents", func(t *testing.T) {
		for name, doc := range map[string]bson.D{
			"no _id":       {{Key: "v", Value: 1}},
			"objectid _id": {{Key: "_id", Value: bson.NewObjectID()}},
			"decimal":      {{Key: "_id", Value: "d"}, {Key: "v", Value: bson.NewDecimal128(1, 1)}},
		} {
			if err := d.InsertOne(ctx, "w", "c", mustRaw(t, doc)); !errors.Is(err, ErrDirectUnsupported) {
				t.Errorf("%s: insert = %v, want ErrDirectUnsupported", name, err)
			}
		}
	})
	t.Run("dropped and created again", func(t *testing.T) {
		if err := coll.Drop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ensureCollections(ctx, db, "c"); err != nil {
			t.Fatal(err)
		}
		if err := d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "a"}})); err != nil {
			t.Fatalf("insert after the collection was recreated: %v", err)
		}
		if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
			t.Errorf("documents = %d, %v; want 1", n, err)
		}
	})
}

// TestDirectAndServerWritersTogether: direct writers and the server's
// writers share the file without losing a document.
func TestDirectAndServerWritersTogether(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("w")
	if err := ensureCollections(ctx, db, "c"); err != nil {
		t.Fatal(err)
	}
	const perWriter = 40
	var wg sync.WaitGroup
	errs := make(chan error, 8*perWriter)
	for w := range 8 {
		wg.Go(func() {
			for i := range perWriter {
				doc := bson.D{{Key: "_id", Value: fmt.Sprintf("w%d-%d", w, i)}, {Key: "body", Value: "<p>x</p>"}}
				var err error
				if w%2 == 0 {
					err = d.InsertOne(ctx, "w", "c", mustRaw(t, doc))
				} else {
					_, err = db.Collection("c").InsertOne(ctx, doc)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := db.Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 8*perWriter {
		t.Errorf("documents = %d, %v; want %d", n, err, 8*perWriter)
	}
}
