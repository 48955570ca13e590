package proxy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/proxy"
	"crawlcache/store/storetest"
)

// TestProxyStreamsWithoutStoring: a body over the largest stored size, or
// past the buffering budget, streams to the client whole and is not stored;
// a body within both is stored.
func TestProxyStreamsWithoutStoring(t *testing.T) {
	var hits atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = io.Copy(w, io.LimitReader(zeros{}, int64(n)))
	}))
	defer o.Close()
	cases := []struct {
		name       string
		size       int
		wantSecond string
	}{
		{"within the limits: stored", 10000, cache.ServedHit},
		{"over MaxBodySize: streamed, not stored", 3 << 20, cache.ServedMiss},
		{"past the budget: streamed, not stored", 200000, cache.ServedMiss},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := storetest.Open(t)
			budget := cache.NewBudget(100000)
			tr, err := cache.New(context.Background(), s, cache.Options{
				Stream: true, Buffer: budget, MaxBodySize: 1 << 20,
				Policy: cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			p := httptest.NewServer(&proxy.Handler{Transport: tr, Upstream: mustURL(t, o.URL)})
			defer p.Close()
			hits.Store(0)
			for i, want := range []string{cache.ServedMiss, c.wantSecond} {
				resp, err := http.Get(p.URL + "/" + strconv.Itoa(c.size))
				if err != nil {
					t.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != int64(c.size) || resp.Header.Get(cache.HeaderServed) != want {
					t.Errorf("request %d: %d bytes (err %v), served %q; want %d bytes, %q", i+1, n, err, resp.Header.Get(cache.HeaderServed), c.size, want)
				}
			}
			stored, err := s.Collection("http_cache", cache.ResponsesCollection).Count(context.Background(), bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			wantStored := int64(0)
			if c.wantSecond == cache.ServedHit {
				wantStored = 1
			}
			if stored != wantStored {
				t.Errorf("%d responses stored, want %d", stored, wantStored)
			}
			if budget.InUse() != 0 || budget.Peak() > budget.Max() {
				t.Errorf("budget in use %d, peak %d of %d; want 0 after the requests, peak within", budget.InUse(), budget.Peak(), budget.Max())
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestVaryAcceptEncodingDefaultPolicy: under the proxy's default (crawler)
// policy a shared cache honours Vary: Accept-Encoding (RFC 9111 §4.1):
// after a client that accepts gzip, a client that does not never gets the
// gzip bytes.
func TestVaryAcceptEncodingDefaultPolicy(t *testing.T) {
	modes(t, func(t *testing.T, forward bool) {
		f := newFixture(t, forward, cache.Policy{})
		plain := "<p>" + strings.Repeat("hello ", 50) + "</p>"
		var zipped bytes.Buffer
		zw := gzip.NewWriter(&zipped)
		_, _ = io.WriteString(zw, plain)
		_ = zw.Close()
		mux := f.origin.Config.Handler
		f.origin.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/gz" {
				mux.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Vary", "Accept-Encoding")
			w.Header().Set("Content-Type", "text/html")
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
				_, _ = w.Write(zipped.Bytes())
				return
			}
			_, _ = io.WriteString(w, plain)
		})
		tr := f.client.Transport.(*http.Transport)
		tr.DisableCompression = true // the clients below say what they accept
		for i, c := range []struct{ ae, wantEnc, wantBody, served string }{
			{"gzip", "gzip", zipped.String(), cache.ServedMiss},
			{"", "", plain, cache.ServedMiss},
			{"gzip", "gzip", zipped.String(), cache.ServedHit},
			{"", "", plain, cache.ServedHit},
		} {
			h := http.Header{}
			if c.ae != "" {
				h.Set("Accept-Encoding", c.ae)
			}
			resp, body := f.do(t, "GET", "/gz", h)
			if got := resp.Header.Get("Content-Encoding"); got != c.wantEnc || body != c.wantBody || resp.Header.Get(cache.HeaderServed) != c.served {
				t.Errorf("request %d (Accept-Encoding %q): Content-Encoding %q, served %q, body %d bytes; want %q, %q, %d bytes",
					i+1, c.ae, got, resp.Header.Get(cache.HeaderServed), len(body), c.wantEnc, c.served, len(c.wantBody))
			}
		}
	})
}
