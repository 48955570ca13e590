package cache_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"crawlcache/cache"
	"crawlcache/store"
)

// TestHitStaysOnDirectPath: on the embedded store run by this process, a
// hit is served from the store's files (direct reads) without a single
// command to the server; that is what makes a hit about 17× cheaper than
// through the wire (docs/readme/store.md). A change that sent a hit through
// the server would still be correct, only slow: this test says so.
func TestHitStaysOnDirectPath(t *testing.T) {
	ctx := context.Background()
	var commands atomic.Int64
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Command: "test",
		OnCommand: func(store.Command) { commands.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, "<p>page</p>")
	}))
	t.Cleanup(origin.Close)
	tr, err := cache.New(ctx, s, cache.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	get := func(want string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, origin.URL+"/p", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := cache.Served(resp); got != want {
			t.Fatalf("served %q, want %q", got, want)
		}
	}
	get(cache.ServedMiss)
	if err := tr.Close(); err != nil { // waits for the miss's store write
		t.Fatal(err)
	}
	before, ok := s.DirectStats()
	if !ok {
		t.Fatal("the in-process embedded store has no direct access")
	}
	c0 := commands.Load()
	get(cache.ServedHit)
	after, _ := s.DirectStats()
	if n := commands.Load() - c0; n != 0 {
		t.Errorf("a hit sent %d commands to the server, want 0", n)
	}
	if after.Reads == before.Reads {
		t.Errorf("a hit read nothing directly (direct reads %d before and after)", before.Reads)
	}
}
