package cache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"crawlcache/store/storetest"
)

// benchPage is a ~50 KB HTML page.
func benchPage() string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>bench</title></head><body>\n")
	for i := 0; b.Len() < 50_000; i++ {
		fmt.Fprintf(&b, "<p class=\"row\">Paragraph %d: the quick brown fox jumps over the lazy dog — <a href=\"/item/%d\">item %d</a></p>\n", i, i, i)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// BenchmarkTransport measures one GET of a 50 KB HTML page through the
// transport on the embedded store, against a plain upstream request to a
// loopback origin (no network latency: the ratios are the cache's own cost).
//
//	upstream:   http.Transport only
//	hit:        served from the store
//	hit_compressed: the same with Options.CompressBodies
//	hit_credential: a hit of a request with Authorization (HMAC of it, bound key)
//	hit_rfc:    a hit under cache_control (response, revalidation and variants looked up)
//	hit_vary:   a hit of a Vary variant under cache_control (then the variant's lookup)
//	miss:       a new URL each time: lookup, fetch, store
//	revalidate: expired entry with an ETag: lookup, conditional fetch (304), revalidation upsert
func BenchmarkTransport(b *testing.B) {
	page := benchPage()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"bench"`)
		if strings.HasPrefix(r.URL.Path, "/rfc") {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		if strings.HasPrefix(r.URL.Path, "/rfc/vary") {
			w.Header().Set("Vary", "Accept-Language")
		}
		if r.Header.Get("If-None-Match") == `"bench"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, page)
	}))
	defer srv.Close()
	upstream := &http.Transport{MaxIdleConnsPerHost: 16}
	defer upstream.CloseIdleConnections()
	s := storetest.Open(b)

	var runs atomic.Int64 // each run its own database, so -count works
	newTr := func(b *testing.B, db string, p Policy, compress ...bool) *Transport {
		db = fmt.Sprintf("%s_%d", db, runs.Add(1))
		tr, err := New(context.Background(), s, Options{
			Database: db, Upstream: upstream, Policy: p, Logger: slog.New(slog.DiscardHandler), CompressBodies: len(compress) > 0,
		})
		if err != nil {
			b.Fatal(err)
		}
		return tr
	}
	get := func(b *testing.B, rt http.RoundTripper, url, want string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(page)) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		if want != "" && Served(resp) != want {
			b.Fatalf("served %q, want %q", Served(resp), want)
		}
	}

	b.Run("upstream", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, upstream, srv.URL+"/plain", "")
		}
	})
	b.Run("hit", func(b *testing.B) {
		tr := newTr(b, "bench_hit", Policy{})
		get(b, tr, srv.URL+"/hit", ServedMiss)
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, tr, srv.URL+"/hit", ServedHit)
		}
	})
	b.Run("hit_compressed", func(b *testing.B) {
		tr := newTr(b, "bench_hitz", Policy{}, true)
		get(b, tr, srv.URL+"/hitz", ServedMiss)
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, tr, srv.URL+"/hitz", ServedHit)
		}
	})
	b.Run("hit_credential", func(b *testing.B) {
		tr := withAuth{newTr(b, "bench_hitc", Policy{})}
		get(b, tr, srv.URL+"/hitc", ServedMiss)
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, tr, srv.URL+"/hitc", ServedHit)
		}
	})
	for _, name := range []string{"hit_rfc", "hit_vary"} {
		b.Run(name, func(b *testing.B) {
			tr := newTr(b, "bench_"+name, Policy{CacheControl: true})
			url := srv.URL + "/rfc/" + strings.TrimPrefix(name, "hit_")
			get(b, tr, url, ServedMiss)
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				get(b, tr, url, ServedHit)
			}
		})
	}
	var seq atomic.Int64
	b.Run("miss", func(b *testing.B) {
		tr := newTr(b, "bench_miss", Policy{})
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, tr, fmt.Sprintf("%s/miss/%d", srv.URL, seq.Add(1)), ServedMiss)
		}
	})
	b.Run("revalidate", func(b *testing.B) {
		tr := newTr(b, "bench_revalidate", Policy{ExpireAfter: Expiry{Kind: ExpireAfter}})
		get(b, tr, srv.URL+"/reval", ServedMiss)
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			get(b, tr, srv.URL+"/reval", ServedRevalidated)
		}
	})
}

// withAuth sends every request (made by the benchmark itself) with a token.
type withAuth struct{ tr *Transport }

func (w withAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer bench-token")
	return w.tr.RoundTrip(req)
}
