package render

import (
	"net/http"
	"sync"
	"testing"

	"crawlcache/render/rendertest"
)

// newPool starts a pool for a test and closes it at the end.
func newPool(tb testing.TB, opts Options) *Pool {
	tb.Helper()
	opts.Chromium = rendertest.Chromium(tb)
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	p, err := NewPool(opts)
	if err != nil {
		tb.Fatalf("NewPool: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// countingTransport counts the requests it forwards, by path.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
	hdr  map[string]http.Header
}

func newCounting() *countingTransport {
	return &countingTransport{next: http.DefaultTransport, n: map[string]int{}, hdr: map[string]http.Header{}}
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[req.URL.RequestURI()]++
	c.hdr[req.URL.RequestURI()] = req.Header.Clone()
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

func (c *countingTransport) header(path string) http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hdr[path]
}

// originCounter wraps a handler and counts the requests it receives.
type originCounter struct {
	h  http.Handler
	mu sync.Mutex
	n  int
}

func (o *originCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.n++
	o.mu.Unlock()
	o.h.ServeHTTP(w, r)
}

func (o *originCounter) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}
