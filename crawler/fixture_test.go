package crawler

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// originFunc is an upstream that answers every request itself.
type originFunc func(*http.Request) *http.Response

func (f originFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

// openPreviousRelease opens a copy of the previous release's data
// directory (storetest.FixtureE6C68C8) with a frontier and a store of
// parse records on it, for the tests that crawl it again.
func openPreviousRelease(t *testing.T) (*store.Store, *frontier.Frontier, *parses.Store) {
	t.Helper()
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	f, err := frontier.New(context.Background(), s, "crawlcache", frontier.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, parses.New(s.Collection("crawlcache", parses.DefaultCollection))
}

// TestResumeOldFrontierWithSecretInClear: secret parameters on data of the
// previous release: its frontier holds a seed with its api_key in clear.
// Such a run still resumes (the entry is fetched as stored, with its key),
// and what this release writes for it (log records, items, log lines)
// shows the key redacted.
func TestResumeOldFrontierWithSecretInClear(t *testing.T) {
	const (
		runID = "fixture-private-20261203T125436Z-6b48"
		seed  = "http://127.0.0.1:18089/products/3?api_key=fixture-secret-key"
		key   = "fixture-secret-key"
	)
	ctx := context.Background()
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	id := frontier.ID(runID, seed)
	var old bson.M
	raw, err := s.Collection("crawlcache", frontier.EntriesCollection).Get(ctx, id)
	if err == nil {
		err = bson.Unmarshal(raw, &old)
	}
	if err != nil {
		t.Fatalf("the fixture's frontier has no entry for the seed in clear: %v", err)
	}
	// The old run is made interrupted, as the previous release's Release
	// would have left it: the seed back to pending.
	n, err := s.Collection("crawlcache", frontier.LogCollection).Count(ctx, bson.D{{Key: "entry", Value: id}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Collection("crawlcache", frontier.LogCollection).Insert(ctx, bson.D{
		{Key: "_id", Value: id + "#" + itoa(n+1)}, {Key: "run_id", Value: runID}, {Key: "entry", Value: id},
		{Key: "seq", Value: n + 1}, {Key: "state", Value: "pending"}, {Key: "url", Value: seed}, {Key: "attempts", Value: 0},
	}); err != nil {
		t.Fatal(err)
	}

	f, err := frontier.New(ctx, s, "crawlcache", frontier.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var requested []string
	origin := originFunc(func(r *http.Request) *http.Response {
		mu.Lock()
		requested = append(requested, r.URL.String())
		mu.Unlock()
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/html"}}, Request: r,
			Body: io.NopCloser(strings.NewReader("<h1>product 3</h1>"))}
	})
	rec := newRecorder(t)
	var logs lockedLog
	_, err = Run(ctx, Options{
		RunID: runID, Job: "fixture-private", Worker: "w", Seeds: []string{seed}, Resume: true,
		Store: s, Frontier: f, Pipeline: rec.pipe, Upstream: origin,
		CachePolicy: cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter}}, // revalidate: the origin sees the request
		Follow:      []string{"none"}, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatalf("resume of the old run: %v", err)
	}
	if got := rec.urls(); len(got) != 1 || got[0] != "http://127.0.0.1:18089/products/3?api_key=REDACTED" {
		t.Errorf("pages = %q, want the seed, its key redacted", got)
	}
	mu.Lock()
	if len(requested) == 0 || !strings.Contains(requested[0], "api_key="+key) {
		t.Errorf("origin requests = %q, want the seed with its key", requested)
	}
	mu.Unlock()
	var recs []bson.M
	filter := bson.D{{Key: "entry", Value: id}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: n + 1}}}}
	if err := s.Collection("crawlcache", frontier.LogCollection).All(ctx, filter, store.FindOptions{}, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("the resume wrote no log record for the seed")
	}
	for _, r := range recs {
		if u, _ := r["url"].(string); strings.Contains(u, key) {
			t.Errorf("log record %v written by this release holds the key in clear", r["_id"])
		}
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("log lines hold the key in clear:\n%s", logs.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// lockedLog collects the log lines of a crawl.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
