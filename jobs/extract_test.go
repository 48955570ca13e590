package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/store/storetest"
)

// linkOrigin serves a home page with links of every kind a job judges, a
// robots.txt that disallows /private/, and pages with two items each. It
// counts the requests per path.
type linkOrigin struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs map[string]int  // by path
	uris map[string]bool // request URIs
}

func newLinkOrigin(t *testing.T) *linkOrigin {
	t.Helper()
	o := &linkOrigin{reqs: map[string]int{}, uris: map[string]bool{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.reqs[r.URL.Path]++
		o.uris[r.URL.RequestURI()] = true
		o.mu.Unlock()
		if r.URL.Path == "/robots.txt" {
			fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		links := `<a href="/deeper">deeper</a>`
		if r.URL.Path == "/" {
			u, _ := url.Parse(o.srv.URL)
			links = strings.Join([]string{
				`<a href="/a">a</a>`, `<a href="b?y=2&x=1">b</a>`, `<a href="/b?x=1&y=2#top">b again</a>`,
				`<a href="/private/p">private</a>`, `<a href="/skip/s">skipped</a>`,
				`<a href="mailto:shop@example.org">mail</a>`, `<a href="javascript:void(0)">js</a>`,
				`<a href="http://localhost:` + u.Port() + `/other">other host</a>`,
				`<a href="https://elsewhere.example/x">elsewhere</a>`, `<a href="/c">c</a>`,
			}, "")
		}
		fmt.Fprintf(w, `<html><body><h1>%s</h1>%s
<div class="p"><h2>%s one</h2><span class="price">1.00</span></div>
<div class="p"><h2>%s two</h2><span class="price">2.00</span></div></body></html>`, r.URL.Path, links, r.URL.Path, r.URL.Path)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *linkOrigin) requests(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[path]
}

// fetched returns the URLs requested other than the home page and
// robots.txt, sorted.
func (o *linkOrigin) fetched() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for p := range o.uris {
		if p != "/" && p != "/robots.txt" {
			out = append(out, o.srv.URL+p)
		}
	}
	slices.Sort(out)
	return out
}

// jsonlItems reads the title and price of the items of page from a JSONL
// output, in order.
func jsonlItems(t *testing.T, path, page string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var it struct {
			URL   string `json:"url"`
			Index int    `json:"index"`
			Title any    `json:"title"`
			Price any    `json:"price"`
		}
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			t.Fatal(err)
		}
		if it.URL == page {
			out = append(out, fmt.Sprintf("%d %v %v", it.Index, it.Title, it.Price))
		}
	}
	return out
}

// TestExtractMatchesARun crawls a page with a job, then runs Extract on
// the same page with the same job: the links it says are followed are
// exactly the URLs the crawl fetched from that page, its items are the
// crawl's items of the page, and every skipped link says why.
func TestExtractMatchesARun(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	o := newLinkOrigin(t)
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "x.jsonl")
	path := filepath.Join(dir, "x.yaml")
	yaml := fmt.Sprintf(`name: x
seeds: [%s/]
max_depth: 1
exclude: ['/skip/']
rate: {per_host: 1000, burst: 10}
cache: {expire_after: 0s}
extract:
  item: div.p
  fields:
    title: {css: h2}
    price: {css: .price}
outputs:
  - jsonl: {path: %s}
`, o.srv.URL, jsonl)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	if _, err := r.Run(ctx, job, StartOptions{}); err != nil {
		t.Fatalf("run: %v", err)
	}
	crawled := o.fetched()
	home := o.srv.URL + "/"
	homeRequests := o.requests("/")

	x, err := r.Extract(ctx, job, home, 0)
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	if x.Failure != nil {
		t.Fatalf("extract: failure %v", x.Failure)
	}
	var followed []string
	why := map[string]string{}
	for _, l := range x.Links {
		if l.Skip == "" {
			followed = append(followed, l.URL)
		} else {
			why[l.URL] = l.Skip
		}
	}
	slices.Sort(followed)
	if !slices.Equal(followed, crawled) {
		t.Errorf("extract follows\n  %q\nthe crawl fetched\n  %q", followed, crawled)
	}
	var items []string
	for _, it := range x.Items {
		title, _ := it.Get("title")
		price, _ := it.Get("price")
		items = append(items, fmt.Sprintf("%d %v %v", it.Index, title, price))
	}
	if want := jsonlItems(t, jsonl, home); !slices.Equal(items, want) || len(want) != 2 {
		t.Errorf("extract items %q, the crawl wrote %q (want 2)", items, want)
	}
	u, _ := url.Parse(o.srv.URL)
	wantWhy := map[string]string{
		o.srv.URL + "/b?x=1&y=2":                  crawler.SkipDuplicate,
		o.srv.URL + "/private/p":                  crawler.SkipRobots,
		o.srv.URL + "/skip/s":                     crawler.SkipExclude,
		"mailto:shop@example.org":                 crawler.SkipNotHTTP,
		"javascript:void(0)":                      crawler.SkipNotHTTP,
		"http://localhost:" + u.Port() + "/other": crawler.SkipDomain,
		"https://elsewhere.example/x":             crawler.SkipDomain,
	}
	for link, want := range wantWhy {
		if got := why[link]; got != want {
			t.Errorf("link %s: skipped for %q, want %q", link, got, want)
		}
	}
	if got := o.requests("/"); got != homeRequests {
		t.Errorf("extract of a cached page (expired: expire_after 0s) sent %d requests for it, want none (the cached copy)", got-homeRequests)
	}
	if x.Served != "stale" {
		t.Errorf("served = %q, want stale (the stored copy, not revalidated)", x.Served)
	}

	// A page at depth 1 of a max_depth 1 job: a run follows none of its
	// links, and extract says so.
	deep, err := r.Extract(ctx, job, o.srv.URL+"/a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(deep.Links) != 1 || deep.Links[0].Skip != crawler.SkipDepth || deep.Links[0].Rule != "max_depth 1" {
		t.Errorf("links of a page at max_depth: %+v, want one skipped for depth (max_depth 1)", deep.Links)
	}
	if n := o.requests("/deeper"); n != 0 {
		t.Errorf("the crawl fetched /deeper %d times, want 0 (beyond max_depth)", n)
	}

	// A page not in the cache is fetched once, then read from the cache.
	for i, want := range []string{"miss", "stale"} {
		nx, err := r.Extract(ctx, job, o.srv.URL+"/new", 0)
		if err != nil {
			t.Fatal(err)
		}
		if nx.Served != want || o.requests("/new") != 1 {
			t.Errorf("extract #%d of an uncached page: served %q, origin asked %d times; want %q, once", i+1, nx.Served, o.requests("/new"), want)
		}
	}
}
