package testsite

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// discard is a ResponseWriter that drops the body, so the benchmark
// measures the handler alone.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServeHTTP serves cached content pages in-process: the site's own
// cost per response when a crawler benchmark runs against it.
func BenchmarkServeHTTP(b *testing.B) {
	s := New(Options{Pages: 100})
	reqs := make([]*http.Request, 100)
	for i := range reqs {
		reqs[i], _ = http.NewRequest(http.MethodGet, "http://shop.test/products/"+strconv.Itoa(i+1), nil)
		s.ServeHTTP(&discard{h: http.Header{}}, reqs[i]) // warm the cache
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		for i := 0; pb.Next(); i++ {
			clear(w.h)
			s.ServeHTTP(w, reqs[i%len(reqs)])
		}
	})
}

// BenchmarkGenerate renders a content page without the cache (the cost of a
// first request, or of every request with CacheBytes < 0).
func BenchmarkGenerate(b *testing.B) {
	s := New(Options{Pages: 1000})
	b.ReportAllocs()
	var n int64
	for i := 0; b.Loop(); i++ {
		n += int64(len(s.renderProduct(i%1000+1, 0)))
	}
	b.SetBytes(n / int64(b.N))
}

// BenchmarkLoopback fetches cached pages over a keep-alive loopback
// connection with net/http's client, the floor for any crawler benchmark.
func BenchmarkLoopback(b *testing.B) {
	srv := New(Options{Pages: 100}).Start()
	defer srv.Close()
	client := srv.Client()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		resp, err := client.Get(srv.URL + "/products/" + strconv.Itoa(i%100+1))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
