package commands

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/testsite"
)

// TestRunLeavesSweepToSchedule: a run never sweeps expired cache entries
// (a sweep scans the whole cache, and the start of every run paid for it);
// `schedule --once` does.
func TestRunLeavesSweepToSchedule(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 3, Seed: 1, MinSize: 1 << 10, MaxSize: 2 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfgs := filepath.Join(dir, "configs")
	if err := os.Mkdir(cfgs, 0o755); err != nil {
		t.Fatal(err)
	}
	job := writeConfig(t, cfgs, "sweepy", srv.URL, "schedule: '@every 6h'\n")
	data := filepath.Join(dir, "data")
	if _, err := runApp(t, "cache", "ttl", "set", "--data-dir", data, "1h"); err != nil {
		t.Fatal(err)
	}
	expired := func() int64 {
		t.Helper()
		ctx := context.Background()
		s, err := store.Open(ctx, store.Options{DataDir: data, Logger: slog.New(slog.DiscardHandler), Migrations: migrations()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		n, err := s.Collection(cache.DefaultDatabase, cache.ResponsesCollection).Count(ctx, bson.D{{Key: "_id", Value: "old-entry"}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	{ // an entry validated two hours ago: past the 1h TTL
		ctx := context.Background()
		s, err := store.Open(ctx, store.Options{DataDir: data, Logger: slog.New(slog.DiscardHandler), Migrations: migrations()})
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * time.Hour)
		entry := cache.Entry{ID: "old-entry", URL: "http://example.invalid/", Method: "GET", Status: 200, Proto: "HTTP/1.1",
			Body: "x", CreatedAt: old, ValidatedAt: old, Request: cache.RequestInfo{Method: "GET", URL: "http://example.invalid/"}}
		if err := s.Collection(cache.DefaultDatabase, cache.ResponsesCollection).Insert(ctx, entry); err != nil {
			t.Fatal(err)
		}
		s.Close(ctx)
	}
	if _, err := runApp(t, "run", "--data-dir", data, job); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := expired(); n != 1 {
		t.Fatalf("after run: expired entry count = %d, want 1 (a run must not sweep)", n)
	}
	if _, err := runApp(t, "schedule", "--once", "--metrics-addr", "", "--configs", cfgs, "--data-dir", data); err != nil {
		t.Fatalf("schedule --once: %v", err)
	}
	if n := expired(); n != 0 {
		t.Errorf("after schedule --once: expired entry count = %d, want 0 (swept)", n)
	}
}
