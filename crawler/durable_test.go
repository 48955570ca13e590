package crawler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
)

// durableProbe is the network below the crawler's politeness: it counts the
// responses requested and not yet durable (a request counts from the moment
// it is sent until its body is closed, and at that close its response must
// already be in the cache).
type durableProbe struct {
	up        http.RoundTripper
	responses *store.Collection
	full      func() // called once when open first reaches limit
	limit     int

	mu        sync.Mutex
	open      int
	maxOpen   int
	requests  int
	fullOnce  sync.Once
	notStored []string
}

func (p *durableProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.open++
	p.requests++
	p.maxOpen = max(p.maxOpen, p.open)
	full := p.open >= p.limit
	p.mu.Unlock()
	if full {
		p.fullOnce.Do(p.full)
	}
	resp, err := p.up.RoundTrip(req)
	if err != nil {
		p.closed(req.URL.String(), false)
		return nil, err
	}
	resp.Body = &probeBody{ReadCloser: resp.Body, p: p, url: req.URL.String(), status: resp.StatusCode}
	return resp, nil
}

func (p *durableProbe) closed(u string, check bool) {
	if check {
		key, err := cache.KeyForURL(http.MethodGet, u, cache.Policy{})
		n, cerr := int64(0), err
		if err == nil {
			n, cerr = p.responses.Count(context.Background(), bson.D{{Key: "_id", Value: key}})
		}
		if cerr != nil || n == 0 {
			p.mu.Lock()
			p.notStored = append(p.notStored, fmt.Sprintf("%s (err %v)", u, cerr))
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

type probeBody struct {
	io.ReadCloser
	p      *durableProbe
	url    string
	status int
	once   sync.Once
}

func (b *probeBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.p.closed(b.url, b.status == http.StatusOK) })
	return err
}

// TestReceivedNotDurableAtMostParallelism: a kill -9 may
// cost at most Parallelism downloads, because a response holds its request
// slot until the cache has stored it. The origin holds every page until all
// slots are taken, so the crawl runs at full concurrency from then on.
func TestReceivedNotDurableAtMostParallelism(t *testing.T) {
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism %d", par), func(t *testing.T) {
			e := newEnv(t)
			gate := make(chan struct{})
			const pages = 24
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				if r.URL.Path == "/" {
					var b strings.Builder
					for i := range pages {
						fmt.Fprintf(&b, `<a href="/p%d">p</a>`, i)
					}
					io.WriteString(w, b.String())
					return
				}
				<-gate
				fmt.Fprintf(w, "<html><body><h1>%s</h1>%s</body></html>", r.URL.Path, strings.Repeat("x", 20<<10))
			}))
			t.Cleanup(srv.Close)
			probe := &durableProbe{
				up: http.DefaultTransport, responses: e.st.Collection(envDatabase, cache.ResponsesCollection),
				limit: par, full: func() { close(gate) },
			}
			rec := newRecorder(t)
			opts := e.options("durable", srv.URL+"/", rec)
			opts.Robots, opts.Parallelism, opts.Upstream = false, par, probe
			if par == 1 {
				close(gate)
				probe.fullOnce.Do(func() {})
			}
			_, p := run(t, opts)
			if p.Pages != pages+1 {
				t.Errorf("pages = %d, want %d", p.Pages, pages+1)
			}
			probe.mu.Lock()
			defer probe.mu.Unlock()
			if probe.maxOpen > par {
				t.Errorf("at most %d responses requested and not yet durable at one instant, want ≤ parallelism %d", probe.maxOpen, par)
			}
			if len(probe.notStored) > 0 {
				t.Errorf("%d responses gave their slot back before the cache stored them: %v", len(probe.notStored), probe.notStored)
			}
			if probe.requests != pages+1 {
				t.Errorf("origin requests = %d, want %d", probe.requests, pages+1)
			}
		})
	}
}
