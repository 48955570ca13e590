package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/configs"
	"crawlcache/jobs"
	"crawlcache/parses"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// TestCorruptCacheDocuments edits cached documents by hand into nonsense,
// as a user with Compass might, and crawls again. While the entries are
// fresh and their parses stored, a crawl finishes their pages from their
// page summaries without reading them (crawler/head.go): every item, no
// request. A revalidating crawl revalidates them from their summaries
// too: every page a 304, every item. Once the parses are gone (as after a
// change of the job's rules) a revalidating crawl reads every entry: each
// broken one is a miss (fetched from the origin once more and stored
// again, repaired), the others 304s, and the crawl completes with every
// item. A third crawl is all hits.
func TestCorruptCacheDocuments(t *testing.T) {
	s := storetest.OpenDirWith(t, t.TempDir(), cache.Migrations()...)
	ctx := context.Background()
	site := smallSite(20, testsite.Options{Seed: 3})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	job, err := configs.Load(writeJob(t, jobSpec{Name: "corrupt", Base: srv.URL, Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	r := &jobs.Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	first, err := r.Run(ctx, job, jobs.StartOptions{})
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	pages := first.Run.Counters.Pages

	responses := s.Collection(cache.DefaultDatabase, cache.ResponsesCollection)
	revalidations := s.Collection(cache.DefaultDatabase, cache.RevalidationsCollection)
	keyOf := func(path string) string {
		k, err := cache.KeyForURL(http.MethodGet, srv.URL+path, job.Cache)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	load := func(path string) bson.M {
		var doc bson.M
		raw, err := responses.Get(ctx, keyOf(path))
		if err == nil {
			err = bson.Unmarshal(raw, &doc)
		}
		if err != nil {
			t.Fatalf("cached document of %s: %v", path, err)
		}
		return doc
	}
	// Each case rewrites the cached document of its path.
	cases := []struct {
		name, path string
		edit       func(doc bson.M) bson.M
	}{
		{"only _id and url (home page: its links must still be followed)", "/", func(d bson.M) bson.M {
			return bson.M{"_id": d["_id"], "url": d["url"]}
		}},
		{"status as a string", "/products/1", func(d bson.M) bson.M { d["status"] = "200"; return d }},
		{"headers as an array", "/products/2", func(d bson.M) bson.M { d["headers"] = bson.A{"Content-Type", "text/html"}; return d }},
		{"body as a number", "/products/3", func(d bson.M) bson.M { d["body"] = 42; return d }},
		{"body as a sub-document", "/products/4", func(d bson.M) bson.M { d["body"] = bson.M{"html": "<p>"}; return d }},
		{"header value as a number", "/products/6", func(d bson.M) bson.M { d["headers"] = bson.M{"Content-Type": 7}; return d }},
		{"dates as strings", "/products/7", func(d bson.M) bson.M { d["created_at"] = "yesterday"; d["expires"] = "never"; return d }},
		{"body cut short", "/products/8", func(d bson.M) bson.M { d["body"] = d["body"].(string)[:100]; return d }},
		{"status missing", "/products/9", func(d bson.M) bson.M { delete(d, "status"); return d }},
		{"status out of range", "/products/10", func(d bson.M) bson.M { d["status"] = int32(-5); return d }},
		{"size as a string", "/category/1", func(d bson.M) bson.M { d["size"] = "big"; return d }},
	}
	for _, tc := range cases {
		doc := tc.edit(load(tc.path))
		if err := responses.Upsert(ctx, keyOf(tc.path), doc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// A nonsense revalidation record next to an intact response: ignored
	// (the page is served, and revalidated, as the others).
	if err := revalidations.Upsert(ctx, keyOf("/products/11"),
		bson.M{"_id": keyOf("/products/11"), "validated_at": "now", "headers": 3}); err != nil {
		t.Fatal(err)
	}

	before := site.Counts()
	fresh, err := r.Run(ctx, job, jobs.StartOptions{})
	if err != nil {
		t.Fatalf("run on fresh entries: %v", err)
	}
	if c := fresh.Run.Counters; c.Pages != pages || c.Hits != pages || c.Errors != 0 || site.Counts().Total != before.Total {
		t.Errorf("run on fresh entries: pages/hits/errors = %d/%d/%d, %d requests; want %d/%d/0, none",
			c.Pages, c.Hits, c.Errors, site.Counts().Total-before.Total, pages, pages)
	}
	checkItemsOnce(t, "run on fresh entries mongodb", mongoItems(t, s, fresh.Run.ID), site, srv.URL)

	// A revalidating run revalidates every page from its page summary:
	// the damaged responses are not read (their parses, made from the
	// bodies the summaries name, are stored), and every page is a 304.
	revalidated, err := r.Run(ctx, job, jobs.StartOptions{Revalidate: true})
	if err != nil {
		t.Fatalf("revalidating run: %v", err)
	}
	if c := revalidated.Run.Counters; c.Pages != pages || c.Revalidated != pages || c.Errors != 0 || site.Counts().Bodies != before.Bodies {
		t.Errorf("revalidating run pages/revalidated/errors = %d/%d/%d, %d bodies sent; want %d/%d/0, none",
			c.Pages, c.Revalidated, c.Errors, site.Counts().Bodies-before.Bodies, pages, pages)
	}
	checkItemsOnce(t, "revalidating run mongodb", mongoItems(t, s, revalidated.Run.ID), site, srv.URL)

	// Without the parses (as after a change of the job's rules) the
	// bodies are needed: the damaged responses are read, found corrupt
	// and fetched again, and only they.
	if err := s.Collection(jobs.Database, parses.DefaultCollection).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	before = site.Counts()
	second, err := r.Run(ctx, job, jobs.StartOptions{Revalidate: true})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	after := site.Counts()
	c := second.Run.Counters
	t.Logf("second run: %+v", c)
	if c.Pages != pages || c.Misses != int64(len(cases)) || c.Revalidated != pages-int64(len(cases)) || c.Errors != 0 {
		t.Errorf("second run pages/misses/revalidated/errors = %d/%d/%d/%d, want %d/%d/%d/0",
			c.Pages, c.Misses, c.Revalidated, c.Errors, pages, len(cases), pages-int64(len(cases)))
	}
	for _, tc := range cases {
		if got := after.Status(tc.path, http.StatusOK) - before.Status(tc.path, http.StatusOK); got != 1 {
			t.Errorf("%s: origin sent %s %d more times, want 1 (a miss)", tc.name, tc.path, got)
		}
	}
	if got := after.Bodies - before.Bodies; got != len(cases) {
		t.Errorf("origin sent %d bodies in the second run, want %d (only the broken entries)", got, len(cases))
	}
	checkItemsOnce(t, "second run mongodb", mongoItems(t, s, second.Run.ID), site, srv.URL)

	// The broken entries were stored again: a third run is all hits.
	third, err := r.Run(ctx, job, jobs.StartOptions{})
	if err != nil {
		t.Fatalf("third run: %v", err)
	}
	if c := third.Run.Counters; c.Hits != pages || c.Misses != 0 || site.Counts().Bodies != after.Bodies {
		t.Errorf("third run hits/misses = %d/%d, origin bodies +%d; want %d/0/+0", c.Hits, c.Misses, site.Counts().Bodies-after.Bodies, pages)
	}
	for _, tc := range cases {
		if doc := load(tc.path); doc["status"] != int32(200) {
			t.Errorf("%s: stored status after the crawl = %v (%T), want 200", tc.name, doc["status"], doc["status"])
		}
	}
}
