package crawler

import (
	"slices"
	"sort"
	"testing"

	"crawlcache/cache"
	"crawlcache/pipeline"
	"crawlcache/render"
	"crawlcache/render/rendertest"
	"crawlcache/testsite"
)

// appPages is the size of the script-built shop the render tests crawl:
// /app/, one listing page and appPages product pages.
const appPages = 6

// newAppRecorder extracts the script-built shop's items.
func newAppRecorder(t *testing.T) *recorder {
	t.Helper()
	ex, err := pipeline.NewExtractor(pipeline.ExtractSpec{Item: "article.product", Fields: []pipeline.Field{
		{Name: "title", CSS: "h2", Text: true}, {Name: "price", CSS: ".price", Text: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t)
	r.pipe.Extractor = ex
	return r
}

// appOptions crawls base's script-built shop, rendering its pages when
// renderOpts is not nil.
func (e *env) appOptions(runID, base string, rec *recorder, renderOpts *RenderOptions) Options {
	o := e.options(runID, base+testsite.AppPrefix, rec)
	o.Include = []*regexpT{mustRE(e.t, "^"+base+"/app/")}
	o.Render = renderOpts
	return o
}

// appRender renders with the browser found for the test.
func appRender(t *testing.T) *RenderOptions {
	return &RenderOptions{
		Chromium: rendertest.Chromium(t), Wait: render.Wait{Kind: render.WaitSelector, Selector: testsite.AppReadySelector},
		Parallelism: 3,
	}
}

// itemTitles are the items' titles, sorted.
func itemTitles(rec *recorder) []string {
	rec.sink.mu.Lock()
	defer rec.sink.mu.Unlock()
	var out []string
	for _, it := range rec.sink.items {
		for _, f := range it.Fields {
			if f.Key == "title" {
				out = append(out, f.Value.(string))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestRenderScriptedShop: a page whose items exist only after its script
// runs yields them all with render and none without; a second crawl
// (expire_after: never) gets every page, script, stylesheet and API answer
// from the store, the origin receiving no request; with only_if_cached
// and the origin stopped, the browser renders the same items from the
// store alone.
func TestRenderScriptedShop(t *testing.T) {
	e := newEnv(t)
	site := testsite.New(testsite.Options{Pages: appPages, Seed: 9})
	srv := site.Start()
	t.Cleanup(srv.Close)
	base := srv.URL
	wantItems := appPages + appPages*(appPages-1) // the listing, then each product's related ones

	plain := newAppRecorder(t)
	run(t, e.appOptions("plain", base, plain, nil))
	if got := plain.urls(); len(got) != 1 || len(itemTitles(plain)) != 0 {
		t.Errorf("without render: pages %q and %d items, want only the entry page and no item", got, len(itemTitles(plain)))
	}

	first := newAppRecorder(t)
	c1, _ := run(t, e.appOptions("r1", base, first, appRender(t)))
	if got, want := first.urls(), site.AppURLs(base); !slices.Equal(got, want) {
		t.Errorf("with render: pages\n got %q\nwant %q", got, want)
	}
	titles := itemTitles(first)
	if len(titles) != wantItems {
		t.Errorf("with render: %d items, want %d", len(titles), wantItems)
	}
	if st := c1.render.pool.Stats(); st.Pages != int64(len(site.AppURLs(base))) || st.Escaped != 0 {
		t.Errorf("first crawl render stats %+v, want every page rendered and no request past the cache", st)
	}

	site.ResetCounts()
	second := newAppRecorder(t)
	c2, _ := run(t, e.appOptions("r2", base, second, appRender(t)))
	if n := site.Counts().Total; n != 0 {
		t.Errorf("second crawl (expire_after: never): origin got %d requests, want 0; paths %q", n, site.Counts().Paths())
	}
	if got := itemTitles(second); !slices.Equal(got, titles) {
		t.Errorf("second crawl: %d items, want the first crawl's %d", len(got), len(titles))
	}
	if st := c2.render.pool.Stats(); st.Launches != 0 || c2.render.stored.Reused() != int64(len(site.AppURLs(base))) {
		t.Errorf("second crawl: %d browsers started, %d stored renders reused; want 0 and every page", st.Launches, c2.render.stored.Reused())
	}

	srv.Close()
	for _, noReuse := range []bool{false, true} {
		offline := newAppRecorder(t)
		ro := appRender(t)
		ro.NoReuse = noReuse
		o := e.appOptions("offline", base, offline, ro)
		o.RunID += map[bool]string{false: "-stored", true: "-rendered"}[noReuse]
		o.CachePolicy = cache.Policy{OnlyIfCached: true}
		c, _ := run(t, o)
		if got := itemTitles(offline); !slices.Equal(got, titles) {
			t.Errorf("only_if_cached, origin stopped (rendered again: %v): %d items, want %d", noReuse, len(got), len(titles))
		}
		if noReuse && c.render.pool.Stats().Pages != int64(len(site.AppURLs(base))) {
			t.Errorf("only_if_cached without stored renders: %d pages rendered, want every page", c.render.pool.Stats().Pages)
		}
	}
}

// TestRenderRevalidatesAfterExpiry: with expire_after: 0s a re-crawl
// meets only 304s — the pages, and every script, stylesheet and API call
// the browser makes (RFC 9111 §4.3) — whether the browser renders the
// pages again or their stored renders are reused; a changed API answer
// makes its page render again.
func TestRenderRevalidatesAfterExpiry(t *testing.T) {
	e := newEnv(t)
	site := testsite.New(testsite.Options{Pages: appPages, Seed: 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	base := srv.URL
	expired := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}}
	crawl := func(runID string, noReuse bool) (*crawl, *recorder) {
		rec := newAppRecorder(t)
		ro := appRender(t)
		ro.NoReuse = noReuse
		o := e.appOptions(runID, base, rec, ro)
		o.CachePolicy = expired
		c, _ := run(t, o)
		return c, rec
	}
	_, first := crawl("e1", false)
	want := itemTitles(first)

	for _, tc := range []struct {
		name    string
		noReuse bool
	}{{"rendered-again", true}, {"stored-renders", false}} {
		t.Run(tc.name, func(t *testing.T) {
			site.ResetCounts()
			c, rec := crawl("e-"+tc.name, tc.noReuse)
			oc := site.Counts()
			if oc.Total == 0 {
				t.Fatalf("no request reached the origin: nothing was revalidated")
			}
			for _, path := range oc.Paths() {
				if path == "/robots.txt" {
					continue
				}
				if n, n304 := oc.Requests(path), oc.Status(path, 304); n != n304 {
					t.Errorf("%s: %d requests, %d answered 304; want every one a 304", path, n, n304)
				}
			}
			if got := itemTitles(rec); !slices.Equal(got, want) {
				t.Errorf("%d items, want %d", len(got), len(want))
			}
			if launched := c.render.pool.Stats().Launches; tc.noReuse != (launched > 0) {
				t.Errorf("browsers started: %d (rendered again: %v)", launched, tc.noReuse)
			}
		})
	}

	changed := site.Change(0.5) // new /api/products/N answers for half of the products
	site.ResetCounts()
	c, rec := crawl("e-changed", false)
	if got, want := c.render.pool.Stats().Pages, int64(len(changed)); got != want {
		t.Errorf("after %d products changed: %d pages rendered, want %d (the others reused)", len(changed), got, want)
	}
	if got := itemTitles(rec); !slices.Equal(got, want) {
		t.Errorf("after the change: %d items, want %d", len(got), len(want))
	}
}
