package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/proxy"
	"crawlcache/store/storetest"
)

// origin is an httptest server that counts requests and answers
// conditional requests by ETag.
type origin struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int // "METHOD path" → count
	notMod   atomic.Int64
	version  atomic.Int64
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{requests: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		etag := fmt.Sprintf(`"v%d"`, o.version.Load())
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Header.Get("If-None-Match") == etag {
			o.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "<h1>page %s</h1>", etag)
	})
	mux.HandleFunc("/lang", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "hello in %s", r.Header.Get("Accept-Language"))
	})
	mux.HandleFunc("/item", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprintf(w, "item v%d", o.version.Load())
	})
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/page", http.StatusMovedPermanently)
	})
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.requests[r.Method+" "+r.URL.Path]++
		o.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[key]
}

// fixture is a proxy over a cache transport on the embedded store.
type fixture struct {
	origin *origin
	proxy  *httptest.Server
	client *http.Client
	now    atomic.Int64 // unix seconds of the cache's clock
	target string       // base URL the client asks for
}

func newFixture(t *testing.T, forward bool, pol cache.Policy, allow ...string) *fixture {
	t.Helper()
	f := &fixture{origin: newOrigin(t)}
	f.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	s := storetest.Open(t)
	if allow == nil {
		// The origin is on loopback, which a forward proxy reaches only
		// when named.
		allow = []string{strings.TrimPrefix(f.origin.URL, "http://")}
	}
	g := &proxy.Guard{Allow: allow}
	tr, err := cache.New(context.Background(), s, cache.Options{
		Policy:   pol,
		Now:      func() time.Time { return time.Unix(f.now.Load(), 0) },
		Upstream: proxy.NewUpstream(g),
		Stream:   true, // as crawlcache proxy runs it
		Shared:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	h := &proxy.Handler{Transport: tr, Guard: g}
	if !forward {
		u, _ := url.Parse(f.origin.URL)
		h.Upstream = u
	}
	f.proxy = httptest.NewServer(h)
	t.Cleanup(f.proxy.Close)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if forward {
		pu, _ := url.Parse(f.proxy.URL)
		f.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, CheckRedirect: noRedirect}
		f.target = f.origin.URL
	} else {
		f.client = &http.Client{Transport: &http.Transport{}, CheckRedirect: noRedirect}
		f.target = f.proxy.URL
	}
	return f
}

func (f *fixture) do(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.target+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func modes(t *testing.T, fn func(t *testing.T, forward bool)) {
	t.Run("reverse", func(t *testing.T) { fn(t, false) })
	t.Run("forward", func(t *testing.T) { fn(t, true) })
}

func TestMissThenHit(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}})
		for i, want := range []string{"miss", "hit"} {
			resp, body := f.do(t, "GET", "/page", nil)
			if got := resp.Header.Get(cache.HeaderServed); got != want || resp.StatusCode != 200 || body != `<h1>page "v0"</h1>` {
				t.Errorf("request %d: status %d, %s=%q, body %q; want 200, %q", i, resp.StatusCode, cache.HeaderServed, got, body, want)
			}
		}
		if n := f.origin.count("GET /page"); n != 1 {
			t.Errorf("origin saw %d GETs, want 1", n)
		}
	})
}

func TestExpiredEntryRevalidatedAs200(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Minute}})
		f.do(t, "GET", "/page", nil)
		f.now.Add(3600)
		resp, body := f.do(t, "GET", "/page", nil)
		if resp.StatusCode != 200 || resp.Header.Get(cache.HeaderServed) != "revalidated" || body != `<h1>page "v0"</h1>` {
			t.Errorf("after expiry: status %d, served %q, body %q; want the stored 200, revalidated", resp.StatusCode, resp.Header.Get(cache.HeaderServed), body)
		}
		if n := f.origin.notMod.Load(); n != 1 {
			t.Errorf("origin answered %d 304s, want 1", n)
		}
	})
}

func TestPostInvalidates(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{CacheControl: true})
		f.do(t, "GET", "/item", nil)
		if resp, _ := f.do(t, "GET", "/item", nil); resp.Header.Get(cache.HeaderServed) != "hit" {
			t.Fatalf("second GET served %q, want hit", resp.Header.Get(cache.HeaderServed))
		}
		f.origin.version.Add(1)
		if resp, _ := f.do(t, "POST", "/item", nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST status %d, want 204 from the origin", resp.StatusCode)
		}
		if n := f.origin.count("POST /item"); n != 1 {
			t.Errorf("origin saw %d POSTs, want 1 (forwarded)", n)
		}
		resp, body := f.do(t, "GET", "/item", nil)
		if resp.Header.Get(cache.HeaderServed) != "miss" || body != "item v1" {
			t.Errorf("GET after POST: served %q body %q; want a miss with the new body", resp.Header.Get(cache.HeaderServed), body)
		}
	})
}

func TestRedirectPassedToClient(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{})
		resp, _ := f.do(t, "GET", "/old", nil)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/page" {
			t.Errorf("status %d Location %q; want 301 to /page, not followed", resp.StatusCode, resp.Header.Get("Location"))
		}
		if n := f.origin.count("GET /page"); n != 0 {
			t.Errorf("the proxy followed the redirect: origin saw %d GET /page", n)
		}
	})
}

func TestAllowRefusesOtherHosts(t *testing.T) {
	f := newFixture(t, true, cache.Policy{}, "allowed.example")
	resp, body := f.do(t, "GET", "/page", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "--allow") {
		t.Errorf("status %d body %q; want 403 naming --allow", resp.StatusCode, body)
	}
	if n := f.origin.count("GET /page"); n != 0 {
		t.Errorf("origin saw %d requests through a refused proxy", n)
	}
}

func TestForwardProxyRejectsRelativeURL(t *testing.T) {
	f := newFixture(t, true, cache.Policy{})
	resp, err := http.Get(f.proxy.URL + "/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400 for a non-proxy request", resp.StatusCode)
	}
}

func TestHopByHopHeadersDropped(t *testing.T) {
	var got http.Header
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("X-Origin", "kept")
	}))
	defer o.Close()
	u, _ := url.Parse(o.URL)
	p := httptest.NewServer(&proxy.Handler{Upstream: u})
	defer p.Close()
	req, _ := http.NewRequest("GET", p.URL+"/x?b=2&a=1", nil)
	req.Header.Set("Connection", "X-Private")
	req.Header.Set("X-Private", "secret")
	req.Header.Set("X-Custom", "passed")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Get("X-Private") != "" || got.Get("X-Custom") != "passed" {
		t.Errorf("origin got X-Private=%q X-Custom=%q; want hop-by-hop dropped, others passed", got.Get("X-Private"), got.Get("X-Custom"))
	}
	if resp.Header.Get("X-Origin") != "kept" {
		t.Errorf("response header X-Origin lost")
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr    string
		public  bool
		wantErr bool
	}{
		{"127.0.0.1:8081", false, false},
		{"localhost:8081", false, false},
		{"[::1]:8081", false, false},
		{"0.0.0.0:8081", false, true},
		{"0.0.0.0:8081", true, false},
		{"nonsense", false, true},
	}
	for _, tt := range tests {
		err := proxy.CheckListen(tt.addr, tt.public)
		if (err != nil) != tt.wantErr {
			t.Errorf("CheckListen(%q, %v) = %v, want error %v", tt.addr, tt.public, err, tt.wantErr)
		}
	}
}

func TestCounterSinkAddsDeltas(t *testing.T) {
	s := storetest.Open(t)
	var st cache.Stats
	sink := proxy.NewCounterSink(s, "http_cache", "proxy", func() cache.Stats { return st })
	ctx := context.Background()
	st.Hits, st.Misses = 3, 2
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Hits = 5
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var doc struct{ Hits, Misses int64 }
	raw, err := s.Collection("http_cache", proxy.CountersCollection).Get(ctx, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	if err := bson.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Hits != 5 || doc.Misses != 2 {
		t.Errorf("stored counters = %+v, want hits 5 misses 2", doc)
	}
}
func TestVaryVariants(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{CacheControl: true})
		en := http.Header{"Accept-Language": {"en"}}
		fr := http.Header{"Accept-Language": {"fr"}}
		steps := []struct {
			h          http.Header
			want, body string
		}{
			{en, "miss", "hello in en"},
			{fr, "miss", "hello in fr"},
			{en, "hit", "hello in en"},
			{fr, "hit", "hello in fr"},
		}
		for i, s := range steps {
			resp, body := f.do(t, "GET", "/lang", s.h)
			if got := resp.Header.Get(cache.HeaderServed); got != s.want || body != s.body {
				t.Errorf("step %d (%s): served %q body %q; want %q %q", i, s.h.Get("Accept-Language"), got, body, s.want, s.body)
			}
		}
	})
}
