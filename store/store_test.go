package store_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

func TestEmbeddedRoundTripAndCapabilities(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	coll := s.Database("t").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	var got struct{ V int }
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil || got.V != 1 {
		t.Fatalf("find = %+v, %v; want v=1", got, err)
	}
	if caps := s.Capabilities(); caps.TTLIndexes || caps.FilterPushdown {
		t.Errorf("embedded capabilities = %+v, want no TTL indexes and no pushdown", caps)
	}
	if !strings.HasPrefix(s.URI, "mongodb://127.0.0.1:") {
		t.Errorf("URI = %s, want a loopback address", s.URI)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := storetest.OpenDir(t, dir)
	n, err := s2.Database("t").Collection("c").CountDocuments(ctx, bson.D{{Key: "_id", Value: "kept"}})
	if err != nil || n != 1 {
		t.Fatalf("count after reopen = %d, %v; want 1", n, err)
	}
}

func TestSecondProcessOnBusyDir(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A `run` owning the directory: a second opener is refused with advice.
	owner, err := store.StartServer(ctx, store.ServerOptions{DataDir: dir, Command: "run", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "db serve") {
		t.Fatalf("open busy dir = %v; want a refusal that suggests db serve", err)
	}
	owner.Close()

	// A `db serve` owning it: the second opener connects to it.
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: dir, Command: "db serve", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open dir served by db serve: %v", err)
	}
	defer s.Close(ctx)
	if s.URI != srv.URI() {
		t.Errorf("URI = %s, want the serving process's %s", s.URI, srv.URI())
	}
}

func TestListenMustBeLoopback(t *testing.T) {
	_, err := store.StartServer(context.Background(), store.ServerOptions{DataDir: t.TempDir(), Listen: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("StartServer(0.0.0.0) = %v; want a loopback-only error", err)
	}
}

func TestUnreachableURI(t *testing.T) {
	_, err := store.Open(context.Background(), store.Options{URI: "mongodb://user:secret@127.0.0.1:1/", ConnectTimeout: 500 * time.Millisecond})
	if !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("err = %v; want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q should name the address and hide the password", err)
	}
}

// TestConcurrentStarts: servers on different directories may start at the
// same time in one process (tests do); run with -race.
func TestConcurrentStarts(t *testing.T) {
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			srv, err := store.StartServer(context.Background(), store.ServerOptions{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				srv.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
