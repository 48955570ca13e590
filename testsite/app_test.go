package testsite

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestAppShellsHoldNoProducts: a crawler that does not run scripts finds
// no item, price or product link on the script-built pages, only the
// stylesheet, the script and the link to /app/.
func TestAppShellsHoldNoProducts(t *testing.T) {
	s := New(Options{Pages: 45, Seed: 3})
	for _, u := range s.AppURLs(testBase) {
		path := strings.TrimPrefix(u, testBase)
		w := get(t, s, http.MethodGet, path)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d, want 200", path, w.Code)
		}
		body := w.Body.String()
		if strings.Contains(body, "article") || strings.Contains(body, "price") {
			t.Errorf("GET %s: the shell holds product markup:\n%s", path, body)
		}
		if got, want := hrefs(body), []string{AppStylesheet, "/app/"}; !slices.Equal(got, want) {
			t.Errorf("GET %s: links %q, want %q", path, got, want)
		}
		if !strings.Contains(body, `<script src="`+AppScript+`">`) {
			t.Errorf("GET %s: no script tag for %s", path, AppScript)
		}
	}
}

// TestAppAPIReachesEveryPage walks the JSON API the way the script does
// (categories, listing pages with their next links, products and their
// related products) and finds exactly AppURLs.
func TestAppAPIReachesEveryPage(t *testing.T) {
	s := New(Options{Pages: 130, Seed: 5})
	getJSON := func(path string, v any) {
		t.Helper()
		w := get(t, s, http.MethodGet, path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: status %d, type %q; want 200 application/json", path, w.Code, w.Header().Get("Content-Type"))
		}
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	type item struct {
		ID    int    `json:"id"`
		Title string `json:"title"`
		Price string `json:"price"`
	}
	seen := map[string]bool{testBase + AppPrefix: true}
	var cats struct {
		Categories []struct{ ID int } `json:"categories"`
	}
	getJSON("/api/categories", &cats)
	products := map[int]bool{}
	for _, c := range cats.Categories {
		for p := 1; ; p++ {
			var l struct {
				Page, Pages int
				Products    []item
			}
			getJSON("/api/category/"+strconv.Itoa(c.ID)+"?page="+strconv.Itoa(p), &l)
			seen[testBase+appListingPath(c.ID, p)] = true
			for _, it := range l.Products {
				products[it.ID] = true
			}
			if l.Page >= l.Pages {
				break
			}
		}
	}
	byID := map[int]Product{}
	for _, p := range s.Products() {
		byID[p.ID] = p
	}
	for id := range products {
		var d struct {
			item
			Related []item `json:"related"`
		}
		getJSON("/api/products/"+strconv.Itoa(id), &d)
		if want := byID[id]; d.Title != want.Title || d.Price != want.Price {
			t.Errorf("/api/products/%d: %q %q, want the static page's %q %q", id, d.Title, d.Price, want.Title, want.Price)
		}
		seen[testBase+"/app/products/"+strconv.Itoa(id)] = true
		for _, r := range d.Related {
			if !products[r.ID] {
				t.Errorf("/api/products/%d relates to %d, which no listing shows", id, r.ID)
			}
		}
	}
	var got []string
	for u := range seen {
		got = append(got, u)
	}
	sort.Strings(got)
	if want := s.AppURLs(testBase); !slices.Equal(got, want) {
		t.Errorf("reached %d pages, AppURLs lists %d:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
}

// TestAppConditional: every resource of the script-built shop has a
// strong ETag and answers If-None-Match with 304 (RFC 9110 §13.1.2);
// Change gives a changed product's API answer a new ETag and leaves the
// shells, script, stylesheet and listings alone.
func TestAppConditional(t *testing.T) {
	s := New(Options{Pages: 20, Seed: 1})
	paths := []string{AppPrefix, "/app/category/1", "/app/products/7", AppScript, AppStylesheet,
		"/api/categories", "/api/category/1?page=1", "/api/products/7"}
	etags := map[string]string{}
	for _, p := range paths {
		w := get(t, s, http.MethodGet, p)
		etag := w.Header().Get("ETag")
		if w.Code != http.StatusOK || etag == "" || w.Header().Get("Last-Modified") == "" {
			t.Fatalf("GET %s: status %d, ETag %q, Last-Modified %q", p, w.Code, etag, w.Header().Get("Last-Modified"))
		}
		etags[p] = etag
		if w := get(t, s, http.MethodGet, p, "If-None-Match", etag); w.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: status %d, want 304", p, etag, w.Code)
		}
	}
	s.Change(1)
	for _, p := range paths {
		changed := get(t, s, http.MethodGet, p).Header().Get("ETag") != etags[p]
		if want := p == "/api/products/7"; changed != want {
			t.Errorf("after Change(1), %s changed = %v, want %v", p, changed, want)
		}
	}
	for _, p := range []string{"/app/products/0", "/app/products/21", "/api/products/x", "/app/category/1?page=9", "/static/other.js", "/app/nope"} {
		if w := get(t, s, http.MethodGet, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, w.Code)
		}
	}
}
