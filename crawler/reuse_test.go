package crawler

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"crawlcache/cache"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/testsite"
)

// shopSpec extracts several kinds of values from the test shop: items per
// listing card (text, resolved href, an all-array, a field that is null on
// most pages), and one item per product page otherwise.
var shopSpec = pipeline.ExtractSpec{
	Item: "article.product, div.product-detail",
	Fields: []pipeline.Field{
		{Name: "name", CSS: "h2 a", Text: true},
		{Name: "link", CSS: "a", Attr: "href"},
		{Name: "price", CSS: ".price", Text: true},
		{Name: "paras", CSS: "p", Text: true, All: true},
		{Name: "sku", CSS: ".sku", Text: true},
		{Name: "html", CSS: ".price", HTML: true},
		{Name: "none", CSS: ".no-such-class", Text: true, All: true},
	},
}

// itemRecorder is a pipeline with spec whose sink keeps every item.
func itemRecorder(t *testing.T, spec pipeline.ExtractSpec) *recorder {
	t.Helper()
	ex, err := pipeline.NewExtractor(spec)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{sink: &memSink{}}
	r.pipe = &pipeline.Pipeline{Extractor: ex, Sinks: []pipeline.Sink{r.sink}, Workers: 2}
	r.pipe.OnPageDone = func(p pipeline.Page, _ int) {
		r.mu.Lock()
		r.pages = append(r.pages, p)
		r.mu.Unlock()
	}
	return r
}

// byPage returns the recorded items as page URL → item fields in index
// order (run-specific metadata left out).
func (r *recorder) byPage() map[string][][]pipeline.KV {
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	items := make([]pipeline.Item, 0, len(r.sink.items))
	for _, it := range r.sink.items {
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].URL != items[j].URL {
			return items[i].URL < items[j].URL
		}
		return items[i].Index < items[j].Index
	})
	out := make(map[string][][]pipeline.KV)
	for _, it := range items {
		out[it.URL] = append(out[it.URL], it.Fields)
	}
	return out
}

func parseStore(e *env) *parses.Store {
	return parses.New(e.st.Collection("crawlcache", parses.DefaultCollection))
}

var revalidateAll = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}}

// A re-crawl that reuses stored parses writes the same items (fields,
// values, order per page) and follows the same links as one that parses
// every page, and parses nothing when every page answers 304; with follow
// selectors that need a parse tree as well as with the tokenizer's.
func TestReuseGivesIdenticalItems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		follow []string
	}{
		{"tokenizer follow", nil},
		{"parsed follow", []string{"body a[href]", "nav.pagination a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			site, base := newSite(t, testsite.Options{Pages: 30, Seed: 5})
			ps := parseStore(e)
			crawlWith := func(id string, reuse bool) (*recorder, Progress) {
				rec := itemRecorder(t, shopSpec)
				o := e.options(id, base+"/", rec)
				o.CachePolicy, o.Follow = revalidateAll, tc.follow
				if reuse {
					o.Parses = ps
				}
				_, p := run(t, o)
				return rec, p
			}
			_, cold := crawlWith("cold", true)
			if cold.Parsed == 0 || cold.Reused != 0 {
				t.Fatalf("cold crawl parsed %d, reused %d; want every page parsed", cold.Parsed, cold.Reused)
			}
			site.ResetCounts()
			reused, p := crawlWith("reuse", true)
			if p.Parsed != 0 || p.Reused != cold.Parsed {
				t.Errorf("all-304 re-crawl parsed %d, reused %d; want 0 and %d", p.Parsed, p.Reused, cold.Parsed)
			}
			if got := site.Counts().NotModified; int64(got) < p.Pages {
				t.Errorf("origin answered %d 304s for %d pages; want every page revalidated", got, p.Pages)
			}
			full, pf := crawlWith("full", false)
			if pf.Parsed != cold.Parsed {
				t.Errorf("re-crawl without reuse parsed %d pages, want %d", pf.Parsed, cold.Parsed)
			}
			if !slices.Equal(reused.urls(), full.urls()) {
				t.Errorf("pages crawled with reuse (%d) differ from without (%d)", len(reused.urls()), len(full.urls()))
			}
			got, want := reused.byPage(), full.byPage()
			if len(want) == 0 || len(got) != len(want) {
				t.Fatalf("items on %d pages with reuse, %d without", len(got), len(want))
			}
			for u, w := range want {
				if g := got[u]; !reflect.DeepEqual(g, w) {
					t.Errorf("items of %s with reuse:\n got  %v\n want %v", u, g, w)
				}
			}
		})
	}
}

// A changed extract rule or follow selector parses every page again; a
// changed filter (exclude) does not, and is applied to the stored links.
func TestReuseRulesAndFilters(t *testing.T) {
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 20, Seed: 7})
	ps := parseStore(e)
	crawl := func(id string, spec pipeline.ExtractSpec, mutate func(*Options)) (*recorder, Progress) {
		rec := itemRecorder(t, spec)
		o := e.options(id, base+"/", rec)
		o.CachePolicy, o.Parses = revalidateAll, ps
		if mutate != nil {
			mutate(&o)
		}
		_, p := run(t, o)
		return rec, p
	}
	_, cold := crawl("cold", shopSpec, nil)
	other := shopSpec
	other.Fields = append(slices.Clone(shopSpec.Fields), pipeline.Field{Name: "h1", CSS: "h1", Text: true})
	_, p := crawl("newfield", other, nil)
	if p.Parsed != cold.Parsed || p.Reused != 0 {
		t.Errorf("after an extract change: parsed %d, reused %d; want %d, 0", p.Parsed, p.Reused, cold.Parsed)
	}
	_, p = crawl("newfollow", shopSpec, func(o *Options) { o.Follow = []string{"a[href]", "link[href]"} })
	if p.Parsed != cold.Parsed || p.Reused != 0 {
		t.Errorf("after a follow change: parsed %d, reused %d; want %d, 0", p.Parsed, p.Reused, cold.Parsed)
	}
	rec, p := crawl("exclude", shopSpec, func(o *Options) { o.Exclude = []*regexpT{mustRE(t, `/products/`)} })
	if p.Parsed != 0 {
		t.Errorf("after an exclude change: parsed %d pages, want 0 (filters apply to stored links)", p.Parsed)
	}
	for _, u := range rec.urls() {
		if strings.Contains(u, "/products/") {
			t.Errorf("excluded page %s was crawled", u)
		}
	}
	if p.Pages >= cold.Pages {
		t.Errorf("exclude crawl fetched %d pages, cold %d: exclude not applied", p.Pages, cold.Pages)
	}
}

// After some pages change, a revalidating run parses exactly those.
func TestReuseParsesOnlyChangedPages(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 40, Seed: 9})
	ps := parseStore(e)
	crawl := func(id string) Progress {
		o := e.options(id, base+"/", itemRecorder(t, shopSpec))
		o.CachePolicy, o.Parses = revalidateAll, ps
		_, p := run(t, o)
		return p
	}
	crawl("cold")
	changed := site.Change(0.1)
	p := crawl("after")
	if p.Parsed != int64(len(changed)) {
		t.Errorf("after %d pages changed: parsed %d, want %d", len(changed), p.Parsed, len(changed))
	}
}

// On the previous release's data (a cache with no parse records): the
// first run parses what it reads from the cache and stores the parses, the
// next reuses them, and both give the items a run without reuse gives.
func TestReuseOnPreviousReleaseData(t *testing.T) {
	ctx := context.Background()
	s, f, ps := openPreviousRelease(t)
	spec := pipeline.ExtractSpec{Item: "article.product", Fields: []pipeline.Field{{Name: "title", CSS: "h2"}, {Name: "price", CSS: ".price"}}}
	offline := originFunc(func(r *http.Request) *http.Response {
		t.Errorf("offline run asked the network for %s", r.URL)
		return &http.Response{StatusCode: 503, Header: http.Header{}, Request: r, Body: io.NopCloser(strings.NewReader(""))}
	})
	crawl := func(id string, reuse bool) (*recorder, Progress) {
		rec := itemRecorder(t, spec)
		o := Options{
			RunID: id, Job: "fixture-public", Worker: "w", Seeds: []string{"http://127.0.0.1:18089/"}, MaxPages: 8,
			Store: s, Frontier: f, Pipeline: rec.pipe, Upstream: offline,
			CachePolicy: cache.Policy{OnlyIfCached: true}, Logger: quiet(),
		}
		if reuse {
			o.Parses = ps
		}
		p, err := Run(ctx, o)
		if err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
		return rec, p
	}
	_, first := crawl("first", true)
	second, p := crawl("second", true)
	full, _ := crawl("full", false)
	if first.Parsed != 8 || p.Parsed != 0 || p.Reused != 8 {
		t.Errorf("parsed %d then %d (reused %d); want 8 then 0 (8)", first.Parsed, p.Parsed, p.Reused)
	}
	got, want := second.byPage(), full.byPage()
	n := 0
	for _, items := range want {
		n += len(items)
	}
	if n != 76 || !reflect.DeepEqual(got, want) {
		t.Errorf("items with reuse differ from items without (%d items without, want 76):\n got  %v\n want %v", n, got, want)
	}
}
