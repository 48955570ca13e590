package testsite

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testBase = "http://shop.test"

// get serves one in-process request; headers are name, value pairs.
func get(tb testing.TB, h http.Handler, method, target string, headers ...string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, testBase+target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// hrefs returns the value of every href="..." attribute in body.
func hrefs(body string) []string {
	var out []string
	for {
		i := strings.Index(body, `href="`)
		if i < 0 {
			return out
		}
		body = body[i+len(`href="`):]
		j := strings.IndexByte(body, '"')
		if j < 0 {
			return out
		}
		out = append(out, body[:j])
		body = body[j:]
	}
}

// normalize resolves ref against base, drops the fragment and sorts the
// query parameters: the normalization ReachableURLs documents.
func normalize(tb testing.TB, base *url.URL, ref string) *url.URL {
	tb.Helper()
	u, err := base.Parse(ref)
	if err != nil {
		tb.Fatalf("parse link %q on %s: %v", ref, base, err)
	}
	u.Fragment = ""
	u.RawQuery = u.Query().Encode()
	return u
}

// crawl follows every link from "/" in-process, skipping /private/, and
// returns the normalized URLs fetched and the raw hrefs seen.
func crawl(tb testing.TB, s *Site) (fetched []string, private, raw map[string]bool) {
	tb.Helper()
	start, _ := url.Parse(testBase + "/")
	seen := map[string]bool{start.String(): true}
	private, raw = map[string]bool{}, map[string]bool{}
	queue := []*url.URL{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		w := get(tb, s, http.MethodGet, u.RequestURI())
		if w.Code != http.StatusOK {
			tb.Fatalf("GET %s: status %d, want 200", u, w.Code)
		}
		fetched = append(fetched, u.String())
		for _, href := range hrefs(w.Body.String()) {
			raw[href] = true
			n := normalize(tb, u, href)
			if n.Host != start.Host {
				tb.Fatalf("link %q on %s leaves the site", href, u)
			}
			if strings.HasPrefix(n.Path, "/private/") {
				private[n.String()] = true
				continue
			}
			if !seen[n.String()] {
				seen[n.String()] = true
				queue = append(queue, n)
			}
		}
	}
	sort.Strings(fetched)
	return fetched, private, raw
}

func TestEveryPageReachable(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"one page", Options{Pages: 1, MinSize: 1000, MaxSize: 2000}},
		{"seven pages", Options{Pages: 7, Seed: 3, MinSize: 1000, MaxSize: 2000}},
		{"no cross links", Options{Pages: 250, LinksPerPage: -1, MinSize: 1000, MaxSize: 2000}},
		{"400 small pages", Options{Pages: 400, Seed: 9, MinSize: 1000, MaxSize: 3000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			got, private, _ := crawl(t, s)
			want := s.ReachableURLs(testBase)
			if !slices.Equal(got, want) {
				t.Errorf("crawl found %d URLs, ReachableURLs has %d\ngot  %.5q…\nwant %.5q…", len(got), len(want), got, want)
			}
			for _, u := range s.URLs(testBase) {
				if _, ok := slices.BinarySearch(got, u); !ok {
					t.Errorf("content page %s not reached", u)
				}
			}
			if len(private) == 0 {
				t.Errorf("no /private/ links found; want some for robots tests")
			}
			c := s.Counts()
			for _, p := range c.Paths() {
				if n := c.Requests(p); n != 1 {
					t.Errorf("%s requested %d times, want 1", p, n)
				}
			}
			if c.Total != len(want) || c.Bodies != len(want) {
				t.Errorf("counts total %d bodies %d, want %d", c.Total, c.Bodies, len(want))
			}
		})
	}
}

// TestSortedQueries: with SortedQueries, a crawler that only resolves
// references and drops fragments (as colly does) fetches each page once.
func TestSortedQueries(t *testing.T) {
	s := New(Options{Pages: 300, MinSize: 1000, MaxSize: 2000, SortedQueries: true})
	_, _, raw := crawl(t, s)
	for h := range raw {
		if strings.HasPrefix(h, "?per=") {
			t.Errorf("link %q has unsorted query parameters", h)
		}
	}
}

func TestLinksExerciseNormalization(t *testing.T) {
	_, _, raw := crawl(t, New(Options{Pages: 200, MinSize: 1000, MaxSize: 2000}))
	kinds := map[string]func(string) bool{
		"fragment":           func(h string) bool { return strings.Contains(h, "#") },
		"relative path":      func(h string) bool { return !strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "?") },
		"dot-dot path":       func(h string) bool { return strings.HasPrefix(h, "../") },
		"query-only":         func(h string) bool { return strings.HasPrefix(h, "?page=") },
		"swapped query":      func(h string) bool { return strings.HasPrefix(h, "?per=") },
		"absolute path only": func(h string) bool { return strings.HasPrefix(h, "/products/") && !strings.Contains(h, "#") },
	}
	for name, match := range kinds {
		found := false
		for h := range raw {
			found = found || match(h)
		}
		if !found {
			t.Errorf("no %s link on the site", name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := New(Options{Seed: 42}), New(Options{Seed: 42})
	paths := []string{"/robots.txt", "/sitemap.xml", "/private/1", "/nope"}
	for _, u := range a.ReachableURLs("") {
		paths = append(paths, u)
	}
	for _, p := range paths {
		wa, wb := get(t, a, http.MethodGet, p), get(t, b, http.MethodGet, p)
		if wa.Code != wb.Code || !bytes.Equal(wa.Body.Bytes(), wb.Body.Bytes()) {
			t.Fatalf("%s: sites with the same seed differ (status %d vs %d, %d vs %d bytes)", p, wa.Code, wb.Code, wa.Body.Len(), wb.Body.Len())
		}
		for _, h := range []string{"ETag", "Last-Modified", "Date", "Content-Type", "Content-Length", "Cache-Control"} {
			if wa.Header().Get(h) != wb.Header().Get(h) {
				t.Fatalf("%s: header %s differs: %q vs %q", p, h, wa.Header().Get(h), wb.Header().Get(h))
			}
		}
	}
	other := New(Options{Seed: 43})
	if bytes.Equal(get(t, a, "GET", "/products/1").Body.Bytes(), get(t, other, "GET", "/products/1").Body.Bytes()) {
		t.Errorf("seeds 42 and 43 serve the same /products/1")
	}
	uncached := New(Options{Seed: 42, CacheBytes: -1})
	for _, p := range []string{"/", "/products/7", "/category/2"} {
		if !bytes.Equal(get(t, a, "GET", p).Body.Bytes(), get(t, uncached, "GET", p).Body.Bytes()) {
			t.Errorf("%s: cached and uncached bodies differ", p)
		}
	}
}

func TestPageStructure(t *testing.T) {
	s := New(Options{Seed: 5})
	prods := s.Products()
	body := get(t, s, "GET", "/products/12").Body.String()
	for _, want := range []string{
		"<!DOCTYPE html>", "<title>" + prods[11].Title + " — Demo Shop</title>",
		"<h1>" + prods[11].Title + "</h1>", `<p class="price">` + prods[11].Price + "</p>",
		`<article class="product" data-id="`, "<h2><a href=", `<nav class="main">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/products/12 lacks %q", want)
		}
	}
	if n := strings.Count(body, `<article class="product"`); n != 8 {
		t.Errorf("/products/12 has %d related items, want 8", n)
	}
	listing := get(t, s, "GET", "/category/1").Body.String()
	if n := strings.Count(listing, `<article class="product"`); n != ItemsPerListing {
		t.Errorf("/category/1 has %d items, want %d", n, ItemsPerListing)
	}
	w := get(t, s, "GET", "/products/1")
	if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/html; charset=utf-8", got)
	}
	if got := w.Header().Get("Cache-Control"); got != "max-age=0" {
		t.Errorf("Cache-Control %q, want max-age=0", got)
	}
	for _, tt := range []struct{ path string }{{"/products/0"}, {"/products/101"}, {"/products/01"}, {"/category/1?page=9"}, {"/private/4"}, {"/x"}} {
		if got := get(t, s, "GET", tt.path).Code; got != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", tt.path, got)
		}
	}
	if got := get(t, s, "POST", "/").Code; got != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", got)
	}
}

func TestSizeDistribution(t *testing.T) {
	tests := []struct {
		name             string
		opts             Options
		midLo, midHi     int     // the "most pages" band
		minMidFraction   float64 // fraction of pages in [midLo, midHi]
		wantMedianInBand bool
	}{
		{"defaults", Options{Pages: 300}, 20 << 10, 60 << 10, 0.6, true},
		{"small pages", Options{Pages: 400, MinSize: 2000, MaxSize: 8000, LinksPerPage: 2}, 2000, 8000, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			var sizes []int
			for _, u := range s.URLs("") {
				sizes = append(sizes, get(t, s, "GET", u).Body.Len())
			}
			sort.Ints(sizes)
			mid := 0
			for _, n := range sizes {
				if n < s.opts.MinSize || n > s.opts.MaxSize {
					t.Errorf("page of %d bytes outside [%d, %d]", n, s.opts.MinSize, s.opts.MaxSize)
				}
				if n >= tt.midLo && n <= tt.midHi {
					mid++
				}
			}
			if f := float64(mid) / float64(len(sizes)); f < tt.minMidFraction {
				t.Errorf("%.2f of pages in [%d, %d], want ≥ %.2f", f, tt.midLo, tt.midHi, tt.minMidFraction)
			}
			if med := sizes[len(sizes)/2]; med < tt.midLo || med > tt.midHi {
				t.Errorf("median %d outside [%d, %d]", med, tt.midLo, tt.midHi)
			}
			if sizes[0] == sizes[len(sizes)-1] {
				t.Errorf("every page has %d bytes, want a spread", sizes[0])
			}
		})
	}
}

func TestConditionalRequests(t *testing.T) {
	s := New(Options{})
	w := get(t, s, "GET", "/products/5")
	etag, lm := w.Header().Get("ETag"), w.Header().Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("ETag %q, want a strong quoted tag", etag)
	}
	mod, err := http.ParseTime(lm)
	if err != nil {
		t.Fatalf("Last-Modified %q: %v", lm, err)
	}
	before, after := mod.Add(-time.Second).Format(http.TimeFormat), mod.Add(time.Hour).Format(http.TimeFormat)
	tests := []struct {
		name    string
		method  string
		headers []string
		want    int
	}{
		{"no validators", "GET", nil, 200},
		{"matching etag", "GET", []string{"If-None-Match", etag}, 304},
		{"weak form of etag", "GET", []string{"If-None-Match", "W/" + etag}, 304},
		{"etag in a list", "GET", []string{"If-None-Match", `"x", ` + etag}, 304},
		{"star", "GET", []string{"If-None-Match", "*"}, 304},
		{"other etag", "GET", []string{"If-None-Match", `"v0-0000"`}, 200},
		{"same date", "GET", []string{"If-Modified-Since", lm}, 304},
		{"later date", "GET", []string{"If-Modified-Since", after}, 304},
		{"earlier date", "GET", []string{"If-Modified-Since", before}, 200},
		{"bad date", "GET", []string{"If-Modified-Since", "yesterday"}, 200},
		{"etag mismatch wins over date", "GET", []string{"If-None-Match", `"nope"`, "If-Modified-Since", after}, 200},
		{"etag match wins over old date", "GET", []string{"If-None-Match", etag, "If-Modified-Since", before}, 304},
		{"HEAD matching etag", "HEAD", []string{"If-None-Match", etag}, 304},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(t, s, tt.method, "/products/5", tt.headers...)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if got := w.Header().Get("ETag"); got != etag {
				t.Errorf("ETag %q, want %q", got, etag)
			}
			if got := w.Header().Get("Last-Modified"); got != lm {
				t.Errorf("Last-Modified %q, want %q", got, lm)
			}
			if tt.want == 304 && w.Body.Len() != 0 {
				t.Errorf("304 with a %d-byte body", w.Body.Len())
			}
		})
	}
	head := get(t, s, "HEAD", "/products/5")
	if head.Code != 200 || head.Header().Get("Content-Length") != w.Header().Get("Content-Length") {
		t.Errorf("HEAD: status %d Content-Length %q, want 200 and %q", head.Code, head.Header().Get("Content-Length"), w.Header().Get("Content-Length"))
	}
	c := s.Counts()
	if c.NotModified != 8 || c.Bodies != 6 {
		t.Errorf("counts: %d not modified, %d bodies; want 8 and 6", c.NotModified, c.Bodies)
	}
}

func TestChange(t *testing.T) {
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		clock func() time.Time
	}{
		{"fixed date", nil},
		{"clock", func() time.Time { return clock }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Pages: 200, MinSize: 2000, MaxSize: 4000, Clock: tt.clock})
			type val struct{ etag, lm string }
			old := map[string]val{}
			for _, u := range s.URLs("") {
				w := get(t, s, "GET", u)
				old[u] = val{w.Header().Get("ETag"), w.Header().Get("Last-Modified")}
			}
			listing := s.ETag("/category/1")
			changed := s.Change(0.1)
			if len(changed) != 20 {
				t.Fatalf("Change(0.1) changed %d pages, want 20", len(changed))
			}
			if again := New(Options{Pages: 200, MinSize: 2000, MaxSize: 4000, Clock: tt.clock}).Change(0.1); !slices.Equal(again, changed) {
				t.Errorf("Change is not deterministic: %v vs %v", again, changed)
			}
			if next := s.Change(0); len(next) != 0 {
				t.Errorf("Change(0) changed %v", next)
			}
			for _, u := range s.URLs("") {
				w := get(t, s, "GET", u, "If-None-Match", old[u].etag)
				isChanged := slices.Contains(changed, u)
				wantCode := map[bool]int{false: 304, true: 200}[isChanged]
				if w.Code != wantCode {
					t.Errorf("%s (changed %v) with old ETag: status %d, want %d", u, isChanged, w.Code, wantCode)
				}
				if isChanged {
					o, _ := http.ParseTime(old[u].lm)
					n, _ := http.ParseTime(w.Header().Get("Last-Modified"))
					if !n.After(o) || w.Header().Get("ETag") == old[u].etag {
						t.Errorf("%s: Last-Modified %v → %v, ETag %s → %s; want newer and different", u, o, n, old[u].etag, w.Header().Get("ETag"))
					}
					if code := get(t, s, "GET", u, "If-Modified-Since", old[u].lm).Code; code != 200 {
						t.Errorf("%s: If-Modified-Since old date: status %d, want 200", u, code)
					}
				}
			}
			if got := s.ETag("/category/1"); got != listing {
				t.Errorf("listing ETag changed from %s to %s", listing, got)
			}
			if second := s.Change(0.1); slices.Equal(second, changed) {
				t.Errorf("a second Change(0.1) picked the same pages")
			}
		})
	}
}

func TestCounts(t *testing.T) {
	s := New(Options{Pages: 20, MinSize: 1000, MaxSize: 1000})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, s, "GET", "/products/1")
			get(t, s, "GET", "/nope")
			get(t, s, "HEAD", "/products/2")
			s.Counts()
		}()
	}
	wg.Wait()
	etag := s.ETag("/products/1")
	get(t, s, "GET", "/products/1", "If-None-Match", etag)
	c := s.Counts()
	checks := []struct {
		name      string
		got, want int
	}{
		{"Total", c.Total, 25},
		{"Bodies", c.Bodies, 8},
		{"NotModified", c.NotModified, 1},
		{"Requests(/products/1)", c.Requests("/products/1"), 9},
		{"Status(/products/1, 200)", c.Status("/products/1", 200), 8},
		{"Status(/products/1, 304)", c.Status("/products/1", 304), 1},
		{"Status(/nope, 404)", c.Status("/nope", 404), 8},
		{"Status(/products/2, 200)", c.Status("/products/2", 200), 8},
		{"ByStatus(200)", c.ByStatus(200), 16},
		{"BodyBytes", int(c.BodyBytes), 8*len(s.renderProduct(1, 0)) + 8*len("not found\n")},
		{"log length", len(s.RequestLog()), 25},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %d, want %d", ck.name, ck.got, ck.want)
		}
	}
	if got := s.RequestLog()[24]; got.Path != "/products/1" || got.Status != 304 || got.Time.IsZero() || got.Remote == "" {
		t.Errorf("last log entry %+v, want /products/1 304 with time and remote", got)
	}
	s.ResetCounts()
	if c := s.Counts(); c.Total != 0 || len(c.Paths()) != 0 || len(s.RequestLog()) != 0 {
		t.Errorf("after ResetCounts: %+v, log %d", c, len(s.RequestLog()))
	}
}

func TestRobots(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"default", Options{}, "User-agent: *\nDisallow: /private/\n"},
		{"crawl delay", Options{CrawlDelay: 1500 * time.Millisecond}, "User-agent: *\nDisallow: /private/\nCrawl-delay: 1.5\n"},
		{"custom", Options{Robots: "User-agent: *\nDisallow: /\n"}, "User-agent: *\nDisallow: /\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(t, New(tt.opts), "GET", "/robots.txt")
			if w.Code != 200 || w.Body.String() != tt.want || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Errorf("robots.txt: %d %q %q, want 200 text/plain %q", w.Code, w.Header().Get("Content-Type"), w.Body.String(), tt.want)
			}
		})
	}
}

func TestOverNetwork(t *testing.T) {
	srv := New(Options{Pages: 10}).Start()
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/products/3")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Header.Values("Date")) != 0 || !bytes.Equal(body, get(t, srv.Site, "GET", "/products/3").Body.Bytes()) {
		t.Errorf("GET over loopback: %d, Date %q, %d bytes; want 200, no Date (no Clock), the same body", resp.StatusCode, resp.Header.Get("Date"), len(body))
	}
	clock := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	timed := New(Options{Clock: func() time.Time { return clock }})
	if got := get(t, timed, "GET", "/products/1").Header().Get("Date"); got != "Wed, 04 Mar 2026 05:06:07 GMT" {
		t.Errorf("Date with a Clock: %q, want Wed, 04 Mar 2026 05:06:07 GMT", got)
	}
	if got := srv.Site.Counts().Status("/products/3", 200); got != 2 {
		t.Errorf("Status(/products/3, 200) = %d, want 2", got)
	}
}

// TestChangeWhileServing: pages served during Change carry a body and ETag
// of one version, never a mix.
func TestChangeWhileServing(t *testing.T) {
	s := New(Options{Pages: 30, MinSize: 2000, MaxSize: 3000})
	ref := New(Options{Pages: 30, MinSize: 2000, MaxSize: 3000})
	bodyOf := map[string]bool{} // etag+body seen on ref for versions 0..3
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	var seen []*httptest.ResponseRecorder
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w := get(t, s, "GET", "/products/"+strconv.Itoa(i%30+1))
				mu.Lock()
				seen = append(seen, w)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 3; i++ {
		s.Change(0.5)
	}
	close(stop)
	wg.Wait()
	for i := 0; i <= 3; i++ {
		for _, u := range ref.URLs("") {
			w := get(t, ref, "GET", u)
			bodyOf[w.Header().Get("ETag")+w.Body.String()] = true
		}
		ref.Change(0.5)
	}
	for _, w := range seen {
		if !bodyOf[w.Header().Get("ETag")+w.Body.String()] {
			t.Fatalf("served ETag %s with a body of another version", w.Header().Get("ETag"))
		}
	}
}

// TestBandwidthDelaysBodiesOnly: with Bandwidth a 200 waits the latency
// and then its body's transfer time; a 304 and a HEAD only the latency.
func TestBandwidthDelaysBodiesOnly(t *testing.T) {
	const latency, bandwidth = 20 * time.Millisecond, 1 << 20
	s := New(Options{Pages: 3, Seed: 4, Latency: latency, Bandwidth: bandwidth})
	var mu sync.Mutex
	var waits []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return true
	}
	take := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		w := waits
		waits = nil
		return w
	}
	path := s.URLs("")[0]
	full := get(t, s, "GET", path)
	if full.Code != http.StatusOK {
		t.Fatalf("GET %s = %d", path, full.Code)
	}
	n := full.Body.Len()
	want := []time.Duration{latency, time.Duration(n) * time.Second / bandwidth}
	if got := take(); !slices.Equal(got, want) {
		t.Errorf("GET of %d bytes waited %v, want %v", n, got, want)
	}
	if rec := get(t, s, "GET", path, "If-None-Match", full.Header().Get("ETag")); rec.Code != http.StatusNotModified {
		t.Fatalf("conditional GET = %d, want 304", rec.Code)
	}
	if got := take(); !slices.Equal(got, []time.Duration{latency}) {
		t.Errorf("304 waited %v, want only the latency", got)
	}
}
