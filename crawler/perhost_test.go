package crawler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// concurrencyOrigin serves, on two hosts of one server (127.0.0.1:port and
// localhost:port), a home page linking to pages on both, and counts the
// requests in flight per host. A request waits until its host has target
// requests in flight (or a moment has passed, for the last pages), so the
// crawl is pushed to use all the concurrency it is allowed.
type concurrencyOrigin struct {
	srv    *httptest.Server
	target int
	mu     sync.Mutex
	cond   *sync.Cond
	now    map[string]int
	peak   map[string]int
	served map[string]int
	home   string
}

func newConcurrencyOrigin(t *testing.T, pagesPerHost, target int) (*concurrencyOrigin, []string) {
	t.Helper()
	o := &concurrencyOrigin{target: target, now: map[string]int{}, peak: map[string]int{}, served: map[string]int{}}
	o.cond = sync.NewCond(&o.mu)
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	u, _ := url.Parse(o.srv.URL)
	hosts := []string{u.Host, "localhost:" + u.Port()}
	var b strings.Builder
	for i := range pagesPerHost {
		for _, h := range hosts {
			fmt.Fprintf(&b, `<a href="http://%s/p/%d">p</a>`, h, i)
		}
	}
	o.home = b.String()
	return o, hosts
}

func (o *concurrencyOrigin) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.URL.Path == "/" {
		fmt.Fprintf(w, "<html><body><h1>home</h1>%s</body></html>", o.home)
		return
	}
	o.mu.Lock()
	o.now[r.Host]++
	o.served[r.Host]++
	o.peak[r.Host] = max(o.peak[r.Host], o.now[r.Host])
	o.cond.Broadcast()
	// Hold the request until its host has more than target requests in
	// flight (the limit is broken: no need to wait longer), or has had
	// target for a moment (a crawl without the limit would have sent one
	// more by then), or for longer (the last pages cannot saturate it).
	tick := time.NewTicker(2 * time.Millisecond)
	stopTick := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				o.mu.Lock()
				o.cond.Broadcast()
				o.mu.Unlock()
			case <-stopTick:
				return
			}
		}
	}()
	arrived := time.Now()
	var saturated time.Time
	for r.Context().Err() == nil && o.now[r.Host] <= o.target && time.Since(arrived) < 300*time.Millisecond {
		if o.now[r.Host] < o.target {
			saturated = time.Time{}
		} else if saturated.IsZero() {
			saturated = time.Now()
		} else if time.Since(saturated) > 20*time.Millisecond {
			break
		}
		o.cond.Wait()
	}
	tick.Stop()
	close(stopTick)
	o.now[r.Host]--
	o.mu.Unlock()
	fmt.Fprintf(w, "<html><body><h1>%s</h1></body></html>", r.URL.Path)
}

// TestCrawlPerHostParallelism checks rate.per_host_parallelism against
// an origin that counts, per host, the requests it is answering at once:
// no host ever has more than the limit in flight, and the limit is
// reached (the global parallelism, larger, does not hide it).
func TestCrawlPerHostParallelism(t *testing.T) {
	tests := []struct {
		name    string
		perHost int
	}{
		{name: "one request per host", perHost: 1},
		{name: "three requests per host", perHost: 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const pages = 12
			origin, hosts := newConcurrencyOrigin(t, pages, tt.perHost)
			e := newEnv(t)
			o := e.options(fmt.Sprintf("perhost-%d", i), origin.srv.URL+"/", newRecorder(t))
			o.AllowedDomains = hosts
			o.Robots = false
			o.Parallelism = 8
			o.PerHostParallelism = tt.perHost
			_, p := run(t, o)
			if want := int64(2*pages + 1); p.Pages != want {
				t.Errorf("pages = %d, want %d", p.Pages, want)
			}
			origin.mu.Lock()
			defer origin.mu.Unlock()
			t.Logf("peaks %v", origin.peak)
			for _, h := range hosts {
				if got := origin.peak[h]; got != tt.perHost {
					t.Errorf("host %s: at most %d requests in flight at once, want exactly %d (per_host_parallelism)", h, got, tt.perHost)
				}
				if got := origin.served[h]; got != pages {
					t.Errorf("host %s: %d pages served, want %d", h, got, pages)
				}
			}
		})
	}
}

// TestPolitenessHostSlotReleased checks that a host slot is given back
// after a response, after a retried failure and when a waiting request is
// cancelled, and that another host is not held up by a busy one.
func TestPolitenessHostSlotReleased(t *testing.T) {
	var fails atomic.Int64
	fails.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky" && fails.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	other := "http://localhost:" + u.Port()
	p := &Politeness{PerHostParallelism: 1, RetryMax: 2, RetryBackoff: time.Millisecond}
	for i := range 3 { // would block on the second if the slot leaked
		get(t, p, srv.URL+"/"+strconv.Itoa(i))
	}
	if got := get(t, p, srv.URL+"/flaky"); got.StatusCode != http.StatusOK {
		t.Fatalf("flaky page after a retry: status %d, want 200", got.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/held", nil)
	held, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	get(t, p, other+"/") // another host has its own slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req2, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/waits", nil)
	if _, err := p.RoundTrip(req2); !errors.Is(err, context.Canceled) {
		t.Errorf("round trip with cancelled context while the host's slot is held: err = %v, want context.Canceled", err)
	}
	held.Body.Close()
	get(t, p, srv.URL+"/after") // the cancelled wait did not keep a slot
}
