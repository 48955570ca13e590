package render

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"crawlcache/testsite"
)

// fetchPage gets a page as the crawler would, for Page.
func fetchPage(tb testing.TB, rawURL string) Page {
	tb.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		tb.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", rawURL, err)
	}
	return Page{URL: rawURL, Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// TestRenderBuildsTheScriptedList: the items of a script-built page exist
// in the rendered HTML, its links are listed, and every request the page
// made (stylesheet, script, API) went through the Transport, the
// document excepted (it is given).
func TestRenderBuildsTheScriptedList(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 40, Seed: 2})
	srv := site.Start()
	t.Cleanup(srv.Close)
	ct := newCounting()
	for _, wait := range []string{"load", "networkidle", testsite.AppReadySelector} {
		t.Run(wait, func(t *testing.T) {
			p := newPool(t, Options{Transport: ct, Wait: ParseWait(wait)})
			pg := fetchPage(t, srv.URL+"/app/category/1")
			if n := strings.Count(string(pg.Body), `class="product"`); n != 0 {
				t.Fatalf("the shell holds %d items before rendering, want 0", n)
			}
			pg.Follow = []string{"article.product h2 a"}
			site.ResetCounts()
			res, err := p.Render(context.Background(), pg)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if n := strings.Count(string(res.HTML), `class="product"`); wait != "load" && n != testsite.ItemsPerListing {
				t.Errorf("rendered page holds %d items, want %d", n, testsite.ItemsPerListing)
			}
			if wait != "load" && (len(res.Links) != testsite.ItemsPerListing || res.Links[0] != srv.URL+"/app/products/1") {
				t.Errorf("links = %q, want %d links starting with %s/app/products/1", res.Links, testsite.ItemsPerListing, srv.URL)
			}
			types := map[string]string{}
			for _, r := range res.Resources {
				types[r.Type] = r.Served
			}
			// At the load event the script may not have called its API
			// yet (as with the items above): its request is checked only
			// where the wait covers it.
			for _, typ := range []string{"document", "stylesheet", "script", "xhr"} {
				if _, ok := types[typ]; !ok && (typ != "xhr" || wait != "load") {
					t.Errorf("no %s among the resources %+v", typ, res.Resources)
				}
			}
			if got := site.Counts().Requests("/app/category/1"); got != 0 {
				t.Errorf("the origin got %d requests for the document, want 0 (it is given)", got)
			}
			for _, path := range []string{testsite.AppScript, testsite.AppStylesheet, "/api/category/1?page=1"} {
				if strings.HasPrefix(path, "/api/") && wait == "load" {
					continue
				}
				if o, tr := site.Counts().Requests(path), ct.count(path); o != 1 || tr < 1 {
					t.Errorf("%s: origin got %d requests (want 1), transport %d", path, o, tr)
				}
			}
			if st := p.Stats(); st.Escaped != 0 || st.Pages != 1 {
				t.Errorf("stats %+v, want 1 page and 0 escaped connections", st)
			}
		})
	}
}

// hostileOrigin serves pages that try to leave the sandbox.
func hostileOrigin(t *testing.T, other string) *originCounter {
	mux := http.NewServeMux()
	html := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, body)
		}
	}
	mux.Handle("/img", html(`<!DOCTYPE html><img src="/a.png"><link rel="stylesheet" href="/s.css"><p id="done">ok</p>`))
	mux.HandleFunc("/a.png", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Type", "image/png") })
	mux.HandleFunc("/s.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, `@font-face { font-family: x; src: url(/f.woff2); } body { font-family: x; }`)
	})
	mux.Handle("/away", html(`<!DOCTYPE html><p>here</p><script>location.href = "`+other+`/elsewhere";</script>`))
	mux.Handle("/flood", html(`<!DOCTYPE html><script>for (let i = 0; i < 3000; i++) fetch("/n?" + i).catch(() => {});</script>`))
	mux.Handle("/worker", html(`<!DOCTYPE html><script>
new Worker(URL.createObjectURL(new Blob(['fetch("`+other+`/from-worker").catch(() => {})'], {type: "text/javascript"})));
</script>`))
	mux.HandleFunc("/n", func(w http.ResponseWriter, r *http.Request) {})
	return &originCounter{h: mux}
}

// TestHostilePages: blocked resource types are answered without a
// request, a script cannot navigate the page away, a page cannot make more
// than MaxRequests requests, and whatever the page does, every request
// that reaches an origin went through the Transport.
func TestHostilePages(t *testing.T) {
	other := &originCounter{h: http.NotFoundHandler()}
	otherSrv := httptest.NewServer(other)
	t.Cleanup(otherSrv.Close)
	origin := hostileOrigin(t, otherSrv.URL)
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	ct := newCounting()
	p := newPool(t, Options{Transport: ct, Wait: ParseWait("networkidle"), MaxRequests: 100})
	for _, path := range []string{"/img", "/away", "/flood", "/worker"} {
		pg := fetchPage(t, srv.URL+path)
		res, err := p.Render(context.Background(), pg)
		if err != nil {
			t.Fatalf("Render %s: %v", path, err)
		}
		served := map[string]int{}
		for _, r := range res.Resources {
			served[r.Served]++
		}
		switch path {
		case "/img":
			if ct.count("/a.png") != 0 || ct.count("/f.woff2") != 0 || served[ServedBlocked] < 1 {
				t.Errorf("/img: image requests %d, font %d, blocked %d; want 0, 0, >0", ct.count("/a.png"), ct.count("/f.woff2"), served[ServedBlocked])
			}
		case "/away":
			if !strings.Contains(string(res.HTML), "<p>here</p>") || other.total() != 0 {
				t.Errorf("/away: rendered %q with %d requests to the other origin; want the page itself and 0", res.HTML, other.total())
			}
		case "/flood":
			if n := len(res.Resources) - served[ServedRefused]; n > 100 || served[ServedRefused] == 0 {
				t.Errorf("/flood: %d requests answered, %d refused; want at most 100 answered and some refused", n, served[ServedRefused])
			}
		}
	}
	total := 0
	ct.mu.Lock()
	for path, n := range ct.n {
		if u, _ := url.Parse(path); u.Path != "" {
			total += n
		}
	}
	ct.mu.Unlock()
	// The documents were fetched by fetchPage, not by the transport.
	if got := origin.total() + other.total(); got != total+4 {
		t.Errorf("origins received %d requests, transport sent %d (+4 documents): something bypassed the transport", got, total)
	}
	if st := p.Stats(); st.Escaped == 0 {
		t.Logf("no connection escaped the Fetch domain (the worker's fetch was intercepted too)")
	}
}
