package crawler

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/testsite"
)

// sitemapOrigin serves robots.txt with a Sitemap: line, a sitemap index
// listing a gzipped sitemap, a plain one, a malformed one and a missing
// one, and pages that answer If-None-Match with a 304. lastmodA is the
// <lastmod> of /a; conditional counts conditional requests per path.
type sitemapOrigin struct {
	*httptest.Server
	mu          sync.Mutex
	lastmodA    time.Time
	requests    map[string]int
	conditional map[string]int
}

func newSitemapOrigin(t *testing.T, lastmodA time.Time) *sitemapOrigin {
	t.Helper()
	o := &sitemapOrigin{lastmodA: lastmodA, requests: map[string]int{}, conditional: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

func (o *sitemapOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.requests[r.URL.Path]++
	if r.Header.Get("If-None-Match") != "" {
		o.conditional[r.URL.Path]++
	}
	lastmodA := o.lastmodA
	o.mu.Unlock()
	base := "http://" + r.Host
	switch r.URL.Path {
	case "/robots.txt":
		fmt.Fprintf(w, "User-agent: *\nDisallow: /private/\nSitemap: %s/index.xml\n", base)
	case "/index.xml":
		fmt.Fprintf(w, `<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>%[1]s/s1.xml.gz</loc></sitemap><sitemap><loc>%[1]s/s2.xml</loc></sitemap>
<sitemap><loc>%[1]s/broken.xml</loc></sitemap><sitemap><loc>%[1]s/gone.xml</loc></sitemap>
<sitemap><loc>https://elsewhere.example/s.xml</loc></sitemap><sitemap><loc>%[1]s/index.xml</loc></sitemap></sitemapindex>`, base)
	case "/s1.xml.gz":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		fmt.Fprintf(zw, `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>%[1]s/a</loc><lastmod>%[2]s</lastmod></url>
<url><loc>%[1]s/private/x</loc></url>
<url><loc>https://elsewhere.example/y</loc></url>
<url><loc>%[1]s/excluded/z</loc></url></urlset>`, base, lastmodA.Format(time.RFC3339))
		zw.Close()
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(buf.Bytes())
	case "/s2.xml":
		fmt.Fprintf(w, `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>%s/b</loc><lastmod>2026-01-01</lastmod></url><url><loc>/c</loc></url></urlset>`, base)
	case "/broken.xml":
		fmt.Fprint(w, `<urlset><url><loc>`+base+`/d</loc></url><url><loc>`)
	case "/a", "/b", "/c", "/d", "/", "/excluded/z", "/private/x":
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><h1>%s</h1></html>", r.URL.Path)
	default:
		http.NotFound(w, r)
	}
}

func (o *sitemapOrigin) counts(path string) (requests, conditional int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[path], o.conditional[path]
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestSitemaps crawls a site through its sitemaps: robots.txt's Sitemap:
// line leads to an index, whose gzipped and plain sitemaps add pages
// (filtered by allowed_domains, exclude and robots.txt), whose broken and
// missing sitemaps are warnings, and whose <lastmod>s make cached pages
// due (a newer one) or fresh (an older one, with TrustLastMod).
func TestSitemaps(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	start := clock.Now()
	o := newSitemapOrigin(t, start.Add(-time.Hour))
	logs := &logBuffer{}
	opts := func(runID string, policy cache.Policy, trust bool) Options {
		op := e.options(runID, o.URL+"/", newRecorder(t))
		op.Follow = []string{"a.none"} // only the seed and the sitemaps
		op.Exclude = []*regexpT{mustRE(t, `/excluded/`)}
		op.CachePolicy = policy
		op.Now = clock.Now
		op.Logger = slog.New(slog.NewTextHandler(logs, nil))
		op.Sitemaps = SitemapOptions{Discover: true, TrustLastMod: trust}
		return op
	}

	_, p := run(t, opts("first", cache.Policy{}, false))
	var got []string
	for _, u := range []string{"/", "/a", "/b", "/c", "/d", "/private/x", "/excluded/z"} {
		if n, _ := o.counts(u); n > 0 {
			got = append(got, u)
		}
	}
	if want := []string{"/", "/a", "/b", "/c", "/d"}; !slices.Equal(got, want) {
		t.Errorf("pages fetched = %v, want %v (robots.txt, exclude and allowed_domains filter sitemap URLs; the broken sitemap's first URL is used)", got, want)
	}
	if p.Pages != 5 || p.Errors != 0 {
		t.Errorf("progress = %+v, want 5 pages, no errors", p)
	}
	out := logs.String()
	for _, want := range []string{"broken.xml", "gone.xml", "status 404", "elsewhere.example", "relative <loc>"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q:\n%s", want, out)
		}
	}
	if n, _ := o.counts("/index.xml"); n != 1 {
		t.Errorf("requests for /index.xml = %d, want 1 (it lists itself: read once)", n)
	}
	if strings.Contains(out, "sitemap.xml") {
		t.Errorf("a missing /sitemap.xml (guessed) must not be a warning:\n%s", out)
	}

	// A newer <lastmod> makes /a due although expire_after is never.
	clock.mu.Lock()
	clock.t = start.Add(2 * time.Hour)
	clock.mu.Unlock()
	o.mu.Lock()
	o.lastmodA = start.Add(time.Hour)
	o.mu.Unlock()
	_, p = run(t, opts("second", cache.Policy{}, false))
	if _, cond := o.counts("/a"); cond != 1 {
		t.Errorf("conditional requests for /a = %d, want 1 (its lastmod is newer than the cached copy)", cond)
	}
	if n, _ := o.counts("/b"); n != 1 {
		t.Errorf("requests for /b = %d, want 1 (fresh, lastmod older)", n)
	}
	if p.Revalidated != 1 || p.Hits != 4 {
		t.Errorf("progress = %+v, want 1 revalidated and 4 hits", p)
	}
	if n, _ := o.counts("/s2.xml"); n != 2 {
		t.Errorf("requests for /s2.xml = %d, want 2 (sitemaps are revalidated at every run)", n)
	}

	// Expired entries: with trust, an older <lastmod> is fresh (no
	// request); without a <lastmod> (/, /c, /d) they are revalidated.
	clock.mu.Lock()
	clock.t = start.Add(100 * time.Hour)
	clock.mu.Unlock()
	hour := cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}}
	beforeA, _ := o.counts("/a")
	beforeB, _ := o.counts("/b")
	_, p = run(t, opts("third", hour, true))
	afterA, _ := o.counts("/a")
	afterB, _ := o.counts("/b")
	if afterA != beforeA || afterB != beforeB {
		t.Errorf("requests for /a, /b went from %d, %d to %d, %d; want none (trusted lastmod)", beforeA, beforeB, afterA, afterB)
	}
	if p.Hits != 2 || p.Revalidated != 3 {
		t.Errorf("progress = %+v, want 2 hits (/a, /b) and 3 revalidated (/, /c, /d)", p)
	}
}

// TestTestsiteSitemapIsAbsolute checks that the demo shop's sitemap lists
// absolute URLs, as the protocol requires, and that a crawl reads it.
func TestTestsiteSitemapIsAbsolute(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 12, Seed: 3})
	logs := &logBuffer{}
	op := e.options("shop", base+"/", newRecorder(t))
	op.Follow = []string{"a.none"} // only the seed and the sitemaps
	op.Logger = slog.New(slog.NewTextHandler(logs, nil))
	op.Sitemaps = SitemapOptions{Discover: true}
	_, p := run(t, op)
	if p.Pages != 13 {
		t.Errorf("pages = %d, want 13 (the seed and the 12 products of the sitemap): %v", p.Pages, site.Counts().Paths())
	}
	if strings.Contains(logs.String(), "relative") {
		t.Errorf("the demo shop's sitemap has relative URLs:\n%s", logs.String())
	}
	if n := site.Counts().Requests("/sitemap.xml"); n != 1 {
		t.Errorf("sitemap requests = %d, want 1", n)
	}
}

// TestFollowEmptyCrawlsOnlySeeds is the regression test of `follow: []`,
// which the job reference documents as crawling only the seeds and which
// followed every a[href] (an empty list was taken for "use the default").
func TestFollowEmptyCrawlsOnlySeeds(t *testing.T) {
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 12, Seed: 4})
	op := e.options("seeds-only", base+"/", newRecorder(t))
	op.Follow = []string{}
	if _, p := run(t, op); p.Pages != 1 {
		t.Errorf("pages = %d, want 1 (the seed only)", p.Pages)
	}
}
