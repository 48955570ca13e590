package crawler

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/testsite"
)

var freshForever = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}

// A warm re-crawl whose pages are fresh and whose parses are stored
// finishes every page from its head: no request reaches the origin, no
// page is parsed, and the items are those a run that parses every page
// writes. A page whose cached body another client replaced in between is
// parsed from the new body, and counted changed; the others are unchanged.
func TestHeadsFinishFreshPages(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 30, Seed: 11})
	crawl := e.reuseCrawls(base, freshForever)
	_, cold := crawl("cold", true)
	if cold.Parsed == 0 || cold.Heads != 0 {
		t.Fatalf("cold crawl parsed %d, %d from heads; want every page parsed", cold.Parsed, cold.Heads)
	}
	site.ResetCounts()
	warm, p := crawl("warm", true)
	if p.Heads != cold.Parsed || p.Parsed != 0 || p.Hits != p.Pages {
		t.Errorf("warm crawl: %d of %d pages from heads, %d parsed, %d hits; want every HTML page from its head",
			p.Heads, p.Pages, p.Parsed, p.Hits)
	}
	if n := site.Counts().Total; n != 0 {
		t.Errorf("warm crawl sent %d requests to the origin, want 0", n)
	}
	if p.Unchanged != p.Pages || p.Changed != 0 || p.New != 0 {
		t.Errorf("warm crawl: %d unchanged, %d changed, %d new of %d pages; want all unchanged", p.Unchanged, p.Changed, p.New, p.Pages)
	}
	full, _ := crawl("full", false)
	sameItems(t, warm, full)

	// Another client of the cache stores new bodies of some pages.
	changed := site.Change(0.2)
	other, err := cache.New(context.Background(), e.st, cache.Options{Database: envDatabase, Policy: freshForever, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, path := range changed {
		req, _ := http.NewRequestWithContext(cache.WithForceRefresh(context.Background()), http.MethodGet, base+path, nil)
		resp, err := other.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	after, p := crawl("after", true)
	if p.Parsed != int64(len(changed)) || p.Heads != cold.Parsed-int64(len(changed)) {
		t.Errorf("after %d bodies were replaced: parsed %d, %d from heads; want %d and %d",
			len(changed), p.Parsed, p.Heads, len(changed), cold.Parsed-int64(len(changed)))
	}
	if p.Changed != int64(len(changed)) || p.Unchanged != p.Pages-int64(len(changed)) {
		t.Errorf("after: %d changed, %d unchanged; want %d and %d", p.Changed, p.Unchanged, len(changed), p.Pages-int64(len(changed)))
	}
	full, _ = crawl("full-after", false)
	sameItems(t, after, full)
}

// reuseCrawls returns a crawl of the shop at base under pol, recording
// its items: with reuse, with parse reuse (one parse store for all of
// them) and change tracking; without, parsing every page.
func (e *env) reuseCrawls(base string, pol cache.Policy) func(id string, reuse bool) (*recorder, Progress) {
	ps := parseStore(e)
	return func(id string, reuse bool) (*recorder, Progress) {
		rec := itemRecorder(e.t, shopSpec)
		o := e.options(id, base+"/", rec)
		o.CachePolicy = pol
		if reuse {
			o.Parses = ps
			o.Changes = e.tracker("test", id, nil)
		}
		_, p := run(e.t, o)
		return rec, p
	}
}

// sameItems fails t unless got holds the items of want, page by page.
func sameItems(t *testing.T, got, want *recorder) {
	t.Helper()
	g, w := got.byPage(), want.byPage()
	if len(w) == 0 || len(g) != len(w) {
		t.Fatalf("items on %d pages, want %d", len(g), len(w))
	}
	for u, items := range w {
		if !reflect.DeepEqual(g[u], items) {
			t.Errorf("items of %s:\n got  %v\n want %v", u, g[u], items)
		}
	}
}

// Under ignore rules (changes.Options.Strip) a body the job has not seen
// needs its body to be compared: a page whose head names a body parsed by
// another job with the same rules is requested and compared, not
// finished from its head.
func TestHeadsNeedBodyForIgnoreRules(t *testing.T) {
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 10, Seed: 12})
	ps := parseStore(e)
	var strips atomic.Int64 // Strip runs on the fetch goroutines
	crawl := func(id, job string) Progress {
		o := e.options(id, base+"/", itemRecorder(t, shopSpec))
		o.Job, o.CachePolicy, o.Parses = job, freshForever, ps
		o.Changes = e.tracker(job, id, func(b []byte) []byte { strips.Add(1); return b })
		_, p := run(t, o)
		return p
	}
	crawl("a1", "a")
	strips.Store(0)
	p := crawl("b1", "b") // the same pages and rules, a job that never saw them
	if p.Heads != 0 || p.New != p.Pages || strips.Load() == 0 {
		t.Errorf("another job's first run: %d from heads, %d new of %d, %d bodies compared; want none from heads, all new and compared",
			p.Heads, p.New, p.Pages, strips.Load())
	}
	strips.Store(0)
	p = crawl("b2", "b")
	if p.Heads == 0 || p.Unchanged != p.Pages || strips.Load() != 0 {
		t.Errorf("its second run: %d from heads, %d unchanged of %d, %d bodies compared; want heads, all unchanged, none compared",
			p.Heads, p.Unchanged, p.Pages, strips.Load())
	}
}

// tracker is the change tracker of run id of job in e's store, comparing
// bodies through strip (nil: whole).
func (e *env) tracker(job, id string, strip func([]byte) []byte) *changes.Tracker {
	e.t.Helper()
	tr, err := changes.New(changes.Options{
		Pages: e.st.Collection(envDatabase, changes.PagesCollection), Records: e.st.Collection(envDatabase, changes.RecordsCollection),
		Job: job, Run: id, Strip: strip,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tr
}

// revalidateAlways makes every stored page due.
var revalidateAlways = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}}

// A re-crawl whose pages are all due revalidates each from its head: a
// conditional request made from the cache's page summary, a 304, and the
// page finished from its stored parse, its body never read. A page that
// changed gets its new body with one request, handed to colly, and is
// parsed; a page whose origin fails fails as an ordinary request does
// (a 503 with as many attempts). The items are those of runs that parse every
// page, and no request carries the handoff header.
func TestHeadsRevalidateDuePages(t *testing.T) {
	e := newEnv(t)
	o := newScriptedOrigin(t, testsite.Options{Pages: 30, Seed: 13})
	base := o.URL
	crawl := e.reuseCrawls(base, revalidateAlways)
	_, cold := crawl("cold", true)
	o.site.ResetCounts()
	all304, p := crawl("all304", true)
	if p.Heads != cold.Parsed || p.Parsed != 0 || p.Revalidated != p.Pages || p.Unchanged != p.Pages {
		t.Errorf("all-304 run: %d of %d pages from heads, %d parsed, %d revalidated, %d unchanged; want every page revalidated from its head",
			p.Heads, p.Pages, p.Parsed, p.Revalidated, p.Unchanged)
	}
	if c := o.site.Counts(); c.Bodies != 0 || c.NotModified != c.Total {
		t.Errorf("all-304 run: the origin sent %d bodies and %d 304s in %d answers; want only 304s", c.Bodies, c.NotModified, c.Total)
	}
	if p.SavedBytes == 0 || p.NetworkBytes != 0 {
		t.Errorf("all-304 run: %d bytes saved, %d downloaded", p.SavedBytes, p.NetworkBytes)
	}
	full, _ := crawl("full", false)
	sameItems(t, all304, full)

	changed := o.site.Change(0.2)
	o.site.ResetCounts()
	after, p := crawl("after", true)
	if p.Parsed != int64(len(changed)) || p.Changed != int64(len(changed)) || p.Heads != cold.Parsed-int64(len(changed)) ||
		p.Misses != int64(len(changed)) {
		t.Errorf("after %d pages changed: %d parsed, %d changed, %d from heads, %d misses", len(changed), p.Parsed, p.Changed, p.Heads, p.Misses)
	}
	c := o.site.Counts()
	for _, path := range changed {
		if n := c.Requests(path); n != 1 {
			t.Errorf("%s changed: %d requests, want 1 (its answer is handed to colly)", path, n)
		}
	}
	full, _ = crawl("full-after", false)
	sameItems(t, after, full)

	// Two pages fail: from their heads, then as ordinary requests.
	fail := map[string]string{changed[0]: "503", changed[1]: "reset"}
	o.answer(func(w http.ResponseWriter, r *http.Request) bool {
		switch fail[r.URL.Path] {
		case "503":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "reset":
			closeConn(w)
		default:
			return false
		}
		return true
	})
	o.takeLog()
	tries := func() map[string]int { // requests of the failing paths
		m := map[string]int{}
		for _, req := range o.takeLog() {
			if path, _, _ := strings.Cut(req.uri, "?"); fail[path] != "" {
				m[path]++
			}
		}
		return m
	}
	o.site.ResetCounts()
	_, p = crawl("failing", true)
	if fc := counts(t, e, "failing"); fc.Failed != 2 || p.Errors != 2 {
		t.Errorf("two failing pages: %d failed in the frontier, %d errors; want 2", fc.Failed, p.Errors)
	}
	c = o.site.Counts()
	for _, path := range c.Paths() {
		if n := c.Requests(path); n != 1 {
			t.Errorf("%s: %d requests in a run where two other pages fail", path, n)
		}
	}
	fromHeads := tries()
	_, p = crawl("failing-plain", false)
	// How often net/http retries a reset connection depends on whether
	// it was reused: only the 503's attempts are compared.
	if plain := tries(); fromHeads[changed[0]] != plain[changed[0]] || fromHeads[changed[1]] == 0 || plain[changed[1]] == 0 || p.Errors != 2 {
		t.Errorf("attempts of the failing pages: %v from heads, %v as ordinary requests", fromHeads, plain)
	}
	if o.leaked.Load() != 0 {
		t.Errorf("%d requests reached the origin with the handoff header", o.leaked.Load())
	}
}
