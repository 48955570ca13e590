package crawler

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/store"
	"crawlcache/testsite"
)

// The answers a due head can get besides a 304 (head.go): a failure
// that stale_if_error serves from the stored page, and a new response
// handed to colly's request of the page.

// revalidateStaleIfError makes every stored page due and, as
// `stale_if_error: true` in a job's cache section (configs/example.yaml),
// serves a stored response without limit when its revalidation fails.
var revalidateStaleIfError = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0}, StaleIfError: -1}

// Under stale_if_error, a re-crawl whose pages are all due while their
// origin answers 500 or closes the connection finishes every page from
// its head as a stale page
// (RFC 5861 §4: a cache may serve a stale response when revalidation
// gets a 5xx or no answer): each page's conditional request, made from
// the cache's page summary, reaches the origin and fails, and the page
// is finished from its stored parse, its body unread, with the items and
// links of the first crawl. The failure replaces nothing: the stored
// responses still give those items with the origin down, and the
// origin's 304s confirm them once it recovers.
func TestHeadsServeStaleIfErrorWhenTheOriginFails(t *testing.T) {
	e := newEnv(t)
	o := newScriptedOrigin(t, testsite.Options{Pages: 20, Seed: 21})
	crawl := e.reuseCrawls(o.URL, revalidateStaleIfError)
	cold, cp := crawl("cold", true)
	if cp.Parsed == 0 || cp.Parsed != cp.Pages || cp.Errors != 0 {
		t.Fatalf("cold crawl: %d of %d pages parsed, %d errors; want every page parsed", cp.Parsed, cp.Pages, cp.Errors)
	}

	// Every other page gets no answer (its connection is closed), the
	// others a 500: the two failures stale_if_error covers.
	reset := map[string]bool{}
	for i, u := range cold.urls() {
		if i%2 == 1 {
			reset[normalURI(strings.TrimPrefix(u, o.URL))] = true
		}
	}
	o.answer(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/robots.txt":
			return false // the pages fail, not the rules
		case reset[normalURI(r.URL.RequestURI())]:
			closeConn(w)
		default:
			http.Error(w, "down", http.StatusInternalServerError)
		}
		return true
	})
	o.takeLog()
	down, p := crawl("down", true)
	if p.Pages != cp.Pages || p.Stale != p.Pages || p.Heads != p.Pages || p.Reused != p.Pages || p.Parsed != 0 {
		t.Errorf("origin down: %d of %d pages stale, %d from heads, %d reused, %d parsed; want all %d stale from heads, none parsed",
			p.Stale, p.Pages, p.Heads, p.Reused, p.Parsed, cp.Pages)
	}
	if p.Errors != 0 || p.Hits != 0 || p.Misses != 0 || p.Revalidated != 0 || p.Unchanged != p.Pages {
		t.Errorf("origin down: %d errors, %d hits, %d misses, %d revalidated, %d unchanged of %d; want only unchanged stale pages",
			p.Errors, p.Hits, p.Misses, p.Revalidated, p.Unchanged, p.Pages)
	}
	if fc := counts(t, e, "down"); fc.Failed != 0 {
		t.Errorf("origin down: %d pages failed in the frontier, want 0", fc.Failed)
	}
	if got, want := down.urls(), cold.urls(); !slices.Equal(got, want) {
		t.Errorf("origin down: pages %v, want those of the first crawl %v", got, want)
	}
	for _, pg := range down.pages {
		if pg.Served != cache.ServedStale || pg.Status != http.StatusOK {
			t.Errorf("origin down: %s served %q with status %d, want %q and 200", pg.URL, pg.Served, pg.Status, cache.ServedStale)
		}
	}
	sameItems(t, down, cold)
	asked := map[string]int{}
	for _, r := range o.takeLog() {
		if r.uri == "/robots.txt" {
			continue
		}
		if !r.conditional {
			t.Errorf("origin down: %s was requested without validators; want only the summary's conditional requests", r.uri)
		}
		asked[normalURI(r.uri)]++
	}
	// Each is retried as an ordinary request is before it is served
	// stale, until HostDownAfter of them have failed after their retries:
	// the host is then down, and each further page is asked once (net/http
	// may resend a request whose reused connection was closed: a reset
	// page may get more).
	attempts := e.options("", "", nil).RetryMax + 1
	retried := 0
	for _, u := range cold.urls() {
		uri := normalURI(strings.TrimPrefix(u, o.URL))
		n := asked[uri]
		switch {
		case n >= attempts:
			retried++
			if n != attempts && !reset[uri] {
				t.Errorf("origin down: %s got %d conditional requests, want %d (a request and its retries)", uri, n, attempts)
			}
		case n < 1 || (n != 1 && !reset[uri]):
			t.Errorf("origin down: %s got %d conditional requests, want %d (a request and its retries) or, once the host was down, 1", uri, n, attempts)
		}
	}
	if retried < HostDownAfter {
		t.Errorf("origin down: %d pages retried before the host counted as down, want at least %d", retried, HostDownAfter)
	}
	if len(asked) != len(cold.urls()) {
		t.Errorf("origin down: %d URLs requested, want the %d pages", len(asked), len(cold.urls()))
	}

	// The stored responses are those of the first crawl: fresh hits,
	// parsed again, give its items without a request.
	stored, p := e.reuseCrawls(o.URL, freshForever)("from-store", false)
	if n := len(o.takeLog()); n != 0 || p.Hits != p.Pages || p.Parsed != p.Pages {
		t.Errorf("from the store: %d requests, %d hits and %d parsed of %d pages; want every page a hit", n, p.Hits, p.Parsed, p.Pages)
	}
	sameItems(t, stored, cold)

	o.answer(nil)
	o.site.ResetCounts()
	back, p := crawl("recovered", true)
	if p.Revalidated != p.Pages || p.Heads != p.Pages || p.Parsed != 0 || p.Unchanged != p.Pages {
		t.Errorf("origin back: %d of %d revalidated, %d from heads, %d parsed, %d unchanged; want every page a 304 from its head",
			p.Revalidated, p.Pages, p.Heads, p.Parsed, p.Unchanged)
	}
	if c := o.site.Counts(); c.Bodies != 0 || c.NotModified != c.Total {
		t.Errorf("origin back: %d bodies and %d 304s in %d answers; want only 304s", c.Bodies, c.NotModified, c.Total)
	}
	sameItems(t, back, cold)
	if n := o.leaked.Load(); n != 0 {
		t.Errorf("%d requests reached the origin with the handoff header", n)
	}
}

// A due page whose origin now answers its conditional request with a
// redirect is followed as colly follows it without the page summary: the
// 301, fetched from the head, is handed to colly's request (the origin
// gets that URL once), colly follows it to the target, which is recorded
// under its own URL with its items, and whose links are followed. The
// handoff header reaches neither the origin nor anything stored or
// written.
func TestHeadsHandOffARedirect(t *testing.T) {
	const (
		from = "/products/3"
		to   = "/moved/3"    // the redirect's target, linked from nowhere
		next = "/arrivals/1" // linked from the target only
	)
	e := newEnv(t)
	o := newScriptedOrigin(t, testsite.Options{Pages: 10, Seed: 22})
	crawl := e.reuseCrawls(o.URL, revalidateAlways)
	cold, cp := crawl("cold", true)
	if !slices.Contains(cold.urls(), o.URL+from) || cp.Parsed != cp.Pages {
		t.Fatalf("cold crawl: %d of %d pages parsed, %s among %v", cp.Parsed, cp.Pages, from, cold.urls())
	}

	o.answer(func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case from:
			http.Redirect(w, r, to, http.StatusMovedPermanently)
		case to:
			serveTagged(w, r, `"moved-3"`, `<html><body><div class="product-detail"><h2><a href="`+next+`">Moved</a></h2>`+
				`<span class="price">€3.00</span><p>It moved.</p><span class="sku">MOVED-3</span></div></body></html>`)
		case next:
			serveTagged(w, r, `"arrival-1"`, `<html><body><div class="product-detail"><h2><a href="/">Arrival</a></h2>`+
				`<span class="sku">ARRIVAL-1</span></div></body></html>`)
		default:
			return false
		}
		return true
	})
	o.takeLog()
	moved, p := crawl("moved", true)
	asked := map[string][]bool{} // whether each request was conditional
	for _, r := range o.takeLog() {
		asked[r.uri] = append(asked[r.uri], r.conditional)
	}
	if got := asked[from]; !slices.Equal(got, []bool{true}) {
		t.Errorf("%s was requested %d times (conditional: %v); want once, the summary's conditional request, its answer handed to colly",
			from, len(got), got)
	}
	for _, path := range []string{to, next} {
		if n := len(asked[path]); n != 1 {
			t.Errorf("%s was requested %d times, want 1", path, n)
		}
	}
	want := slices.DeleteFunc(cold.urls(), func(u string) bool { return u == o.URL+from })
	want = append(want, o.URL+to, o.URL+next)
	sort.Strings(want)
	if got := moved.urls(); !slices.Equal(got, want) {
		t.Errorf("pages after the redirect:\n got  %v\n want %v", got, want)
	}
	if p.Errors != 0 || p.Pages != cp.Pages+1 || p.Heads != cp.Pages-1 || p.Parsed != 2 || p.Misses != 2 {
		t.Errorf("redirect run: %d errors, %d pages, %d from heads, %d parsed, %d misses; want 0, %d, %d, 2 and 2",
			p.Errors, p.Pages, p.Heads, p.Parsed, p.Misses, cp.Pages+1, cp.Pages-1)
	}
	if fc := counts(t, e, "moved"); fc.Failed != 0 {
		t.Errorf("redirect run: %d failed in the frontier, want 0", fc.Failed)
	}
	items := moved.byPage()
	if len(items[o.URL+from]) != 0 || !hasField(items[o.URL+to], "sku", "MOVED-3") || !hasField(items[o.URL+next], "sku", "ARRIVAL-1") {
		t.Errorf("items: %v under %s, %v under %s, %v under %s; want the target's and its link's, none under the redirecting URL",
			items[o.URL+from], from, items[o.URL+to], to, items[o.URL+next], next)
	}
	plain, _ := crawl("plain", false) // the same origin, every page requested by colly
	if got, want := moved.urls(), plain.urls(); !slices.Equal(got, want) {
		t.Errorf("pages from heads %v, without %v", got, want)
	}
	sameItems(t, moved, plain)

	if n := o.leaked.Load(); n != 0 {
		t.Errorf("%d requests reached the origin with the handoff header", n)
	}
	for _, pg := range moved.pages {
		if pg.Header.Get(handoffHeader) != "" {
			t.Errorf("page %s was written with the handoff header", pg.URL)
		}
	}
	for _, it := range moved.sink.items {
		if strings.Contains(strings.ToLower(it.URL+fmtFields(it.Fields)), strings.ToLower(handoffHeader)) {
			t.Errorf("item %s holds the handoff header", it.ID)
		}
	}
	if docs, n := storedWith(t, e, handoffHeader); n == 0 || len(docs) != 0 {
		t.Errorf("of %d stored documents, these hold the handoff header: %v", n, docs)
	}
}

// scriptedOrigin serves site, except for the requests its script
// answers; it logs every request (path and query, conditional or not)
// and counts those that carry the handoff header (none may: it never
// leaves the process).
type scriptedOrigin struct {
	*httptest.Server
	site   *testsite.Site
	leaked atomic.Int64
	mu     sync.Mutex
	script func(http.ResponseWriter, *http.Request) bool // answered: true
	log    []originRequest
}

// originRequest is a request a scriptedOrigin got.
type originRequest struct {
	uri         string // path and raw query
	conditional bool   // with If-None-Match or If-Modified-Since
}

func newScriptedOrigin(t *testing.T, opts testsite.Options) *scriptedOrigin {
	t.Helper()
	opts.MinSize, opts.MaxSize = 2<<10, 6<<10
	o := &scriptedOrigin{site: testsite.New(opts)}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(handoffHeader) != "" {
			o.leaked.Add(1)
		}
		o.mu.Lock()
		o.log = append(o.log, originRequest{
			uri:         r.URL.RequestURI(),
			conditional: r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "",
		})
		script := o.script
		o.mu.Unlock()
		if script == nil || !script(w, r) {
			o.site.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// closeConn answers with no response: the connection is closed.
func closeConn(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// answer makes script answer the requests it returns true for (nil: the
// site answers all).
func (o *scriptedOrigin) answer(script func(http.ResponseWriter, *http.Request) bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.script = script
}

// takeLog returns the requests logged since the last call.
func (o *scriptedOrigin) takeLog() []originRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.log
	o.log = nil
	return l
}

// serveTagged answers r with the HTML body under etag, or a 304 when r
// holds that validator.
func serveTagged(w http.ResponseWriter, r *http.Request, etag, body string) {
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, body)
}

// normalURI is uri (a path and query) with its query parameters sorted,
// to match a page URL with the request made for it.
func normalURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	if u.RawQuery == "" {
		return u.Path
	}
	return u.Path + "?" + u.Query().Encode()
}

// hasField reports whether one of items has field name with value v.
func hasField(items [][]pipeline.KV, name string, v any) bool {
	for _, fields := range items {
		for _, kv := range fields {
			if kv.Key == name && kv.Value == v {
				return true
			}
		}
	}
	return false
}

// fmtFields is the text of fields, for a search.
func fmtFields(fields []pipeline.KV) string {
	var b strings.Builder
	for _, kv := range fields {
		b.WriteString(kv.Key)
		b.WriteByte('=')
		if s, ok := kv.Value.(string); ok {
			b.WriteString(s)
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// storedWith returns the ids (collection/_id) of the documents of e's
// database, in the collections the cache, the parse records, the change
// tracker and the frontier write, that hold s in any case, and how many
// documents it read.
func storedWith(t *testing.T, e *env, s string) (found []string, n int) {
	t.Helper()
	needle := []byte(strings.ToLower(s))
	for _, name := range []string{
		cache.ResponsesCollection, cache.RedirectsCollection, cache.RevalidationsCollection, cache.VariantsCollection,
		cache.PagesCollection, parses.DefaultCollection, changes.PagesCollection, changes.RecordsCollection,
		frontier.EntriesCollection, frontier.LogCollection,
	} {
		err := e.st.Collection(envDatabase, name).Scan(context.Background(), bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
			n++
			if bytes.Contains(bytes.ToLower(raw), needle) {
				found = append(found, name+"/"+raw.Lookup("_id").String())
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", name, err)
		}
	}
	return found, n
}
