package store_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestReadOnlyDataDir: a data directory that cannot be written opens for
// reading (issue: cache stats, cache ls and runs ls refused it); writes
// fail; nothing is created in it.
func TestReadOnlyDataDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}, {Key: "v", Value: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, dir)
	ro := storetest.ReadOnlyDir(t, dir)

	if _, err := store.Open(ctx, store.Options{DataDir: ro, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("a writing Open of a read-only directory succeeded, want an error")
	}
	s, err = store.Open(ctx, store.Options{DataDir: ro, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("read-only Open of a read-only directory: %v", err)
	}
	defer s.Close(ctx)
	if !s.ReadOnly {
		t.Errorf("Store.ReadOnly = false, want true")
	}
	var got struct{ V int }
	if err := s.Database("t").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "kept"}}).Decode(&got); err != nil || got.V != 7 {
		t.Errorf("find in read-only store = %+v, %v; want v=7", got, err)
	}
	if _, err := s.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "new"}}); err == nil {
		t.Errorf("insert into a read-only store succeeded, want an error")
	}
	if after := listDir(t, dir); !slices.Equal(before, after) {
		t.Errorf("files after read-only use = %v, want %v", after, before)
	}
}

// TestReadOnlyOpenOfMissingDir: a command that only reads says the data
// directory does not exist and creates nothing (issue: cache stats made an
// empty store and reported 0 entries).
func TestReadOnlyOpenOfMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := store.Open(context.Background(), store.Options{DataDir: dir, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, store.ErrNoDataDir) {
		t.Fatalf("Open = %v, want an error wrapping ErrNoDataDir", err)
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("data directory exists after a read-only Open (stat: %v), want nothing created", serr)
	}
}

// TestReadOnlyDataDirWithWAL: a read-only copy of a directory whose writer
// was still running (its last commits only in the -wal file) shows them.
func TestReadOnlyDataDirWithWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "in-wal"}}); err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir()
	for _, name := range listDir(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(filepath.Join(cp, "crawlcache.lock"))
	if fi, err := os.Stat(filepath.Join(cp, "t.sqlite-wal")); err != nil || fi.Size() == 0 {
		t.Fatalf("copy has no WAL content (stat %v, %v): the test needs one", fi, err)
	}
	ro := storetest.ReadOnlyDir(t, cp)
	r, err := store.Open(ctx, store.Options{DataDir: ro, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("read-only Open of a copy with a WAL: %v", err)
	}
	defer r.Close(ctx)
	n, err := r.Database("t").Collection("c").CountDocuments(ctx, bson.D{{Key: "_id", Value: "in-wal"}})
	if err != nil || n != 1 {
		t.Errorf("count of the document in the WAL = %d, %v; want 1", n, err)
	}
}
