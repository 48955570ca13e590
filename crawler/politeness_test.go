package crawler

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock whose Sleep advances Now instead of waiting, so
// limiter and Retry-After delays are asserted exactly and cost no time.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func get(t *testing.T, rt http.RoundTripper, rawURL string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip %s: %v", rawURL, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestPolitenessPerHostBuckets(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ok.Close()
	clock := newFakeClock()
	p := &Politeness{PerHost: 2, Burst: 1, Parallelism: 1, Now: clock.Now, Sleep: clock.Sleep}
	// Two hosts on one server: 127.0.0.1:port and localhost:port.
	u, _ := url.Parse(ok.URL)
	hostA, hostB := u.Host, "localhost:"+u.Port()
	for _, h := range []string{hostA, hostA, hostA, hostB, hostB, hostB} {
		get(t, p, "http://"+h+"/")
	}
	for _, h := range []string{hostA, hostB} {
		got := p.HostStats(h)
		want := HostStats{Requests: 3, Tokens: 3, Waits: 2, Waited: time.Second}
		if got != want {
			t.Errorf("HostStats(%s) = %+v, want %+v", h, got, want)
		}
	}
	if got, want := p.Stats().Waits, int64(4); got != want {
		t.Errorf("total waits = %d, want %d", got, want)
	}
}

func TestPolitenessCrawlDelay(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	clock := newFakeClock()
	p := &Politeness{PerHost: 0, Now: clock.Now, Sleep: clock.Sleep}
	host := ok.Listener.Addr().String()
	p.SetCrawlDelay(host, 10*time.Second)
	get(t, p, ok.URL)
	get(t, p, ok.URL)
	if got, want := clock.Sleeps(), []time.Duration{10 * time.Second}; !equalDurations(got, want) {
		t.Errorf("sleeps = %v, want %v", got, want)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// flaky answers the statuses in order (then 200) and counts requests.
func flaky(clock *fakeClock, statuses []int, retryAfter func(*fakeClock) string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) {
			if retryAfter != nil {
				w.Header().Set("Retry-After", retryAfter(clock))
			}
			w.WriteHeader(statuses[i])
			return
		}
		io.WriteString(w, "ok")
	}))
	return srv, &n
}

func TestPolitenessRetries(t *testing.T) {
	delta := func(*fakeClock) string { return "3" }
	date := func(c *fakeClock) string { return c.Now().Add(7 * time.Second).Format(http.TimeFormat) }
	tests := []struct {
		name         string
		statuses     []int
		retryAfter   func(*fakeClock) string
		retryMax     int
		wantStatus   int
		wantRequests int64
		wantSleeps   []time.Duration // nil: backoff with jitter, checked by count
		wantBackoffs int
	}{
		{name: "429 delta-seconds", statuses: []int{429}, retryAfter: delta, retryMax: 2, wantStatus: 200, wantRequests: 2, wantSleeps: []time.Duration{3 * time.Second}},
		{name: "503 http-date", statuses: []int{503}, retryAfter: date, retryMax: 2, wantStatus: 200, wantRequests: 2, wantSleeps: []time.Duration{7 * time.Second}},
		{name: "500 then ok", statuses: []int{500, 502}, retryMax: 3, wantStatus: 200, wantRequests: 3, wantBackoffs: 2},
		{name: "500 exhausts retries", statuses: []int{500, 500, 500}, retryMax: 1, wantStatus: 500, wantRequests: 2, wantBackoffs: 1},
		{name: "404 is not retried", statuses: []int{404}, retryMax: 3, wantStatus: 404, wantRequests: 1},
		{name: "no retries configured", statuses: []int{503}, retryMax: 0, wantStatus: 503, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			srv, n := flaky(clock, tt.statuses, tt.retryAfter)
			defer srv.Close()
			p := &Politeness{RetryMax: tt.retryMax, RetryBackoff: time.Second, Now: clock.Now, Sleep: clock.Sleep}
			resp := get(t, p, srv.URL)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := n.Load(); got != tt.wantRequests {
				t.Errorf("origin requests = %d, want %d", got, tt.wantRequests)
			}
			if got := p.Stats().Retries; got != tt.wantRequests-1 {
				t.Errorf("retries = %d, want %d", got, tt.wantRequests-1)
			}
			sleeps := clock.Sleeps()
			if tt.wantSleeps != nil {
				if !equalDurations(sleeps, tt.wantSleeps) {
					t.Errorf("sleeps = %v, want %v", sleeps, tt.wantSleeps)
				}
				return
			}
			if len(sleeps) != tt.wantBackoffs {
				t.Fatalf("sleeps = %v, want %d backoffs", sleeps, tt.wantBackoffs)
			}
			for i, d := range sleeps {
				base := time.Second << i
				if d < base/2 || d > base*3/2 {
					t.Errorf("backoff %d = %v, want within [%v, %v]", i, d, base/2, base*3/2)
				}
			}
		})
	}
}

// failingTransport fails the first n round trips with a network error.
type failingTransport struct {
	n     atomic.Int64
	fails int64
}

func (f *failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.n.Add(1) <= f.fails {
		return nil, errors.New("connection reset by peer")
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(http.NoBody), Header: http.Header{}, Request: req}, nil
}

func TestPolitenessRetriesNetworkErrors(t *testing.T) {
	clock := newFakeClock()
	up := &failingTransport{fails: 2}
	p := &Politeness{Upstream: up, RetryMax: 2, Now: clock.Now, Sleep: clock.Sleep}
	get(t, p, "http://origin.test/")
	if got, want := up.n.Load(), int64(3); got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}

	up = &failingTransport{fails: 5}
	p = &Politeness{Upstream: up, RetryMax: 1, Now: clock.Now, Sleep: clock.Sleep}
	req, _ := http.NewRequest(http.MethodGet, "http://origin.test/", nil)
	if _, err := p.RoundTrip(req); err == nil {
		t.Errorf("round trip after exhausted retries: got nil error, want the network error")
	}
	if got, want := up.n.Load(), int64(2); got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
}

func TestPolitenessSlotReleasedAndCancel(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer ok.Close()
	p := &Politeness{Parallelism: 1}
	for i := range 3 { // would block on the second if the slot leaked
		get(t, p, ok.URL+"/"+strconv.Itoa(i))
	}
	// Hold the only slot, then a cancelled request must return, not block.
	req, _ := http.NewRequest(http.MethodGet, ok.URL, nil)
	held, err := p.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req2, _ := http.NewRequestWithContext(ctx, http.MethodGet, ok.URL, nil)
	if _, err := p.RoundTrip(req2); !errors.Is(err, context.Canceled) {
		t.Errorf("round trip with cancelled context while the slot is held: err = %v, want context.Canceled", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{"-1", 0, false},
		{"99999999", MaxRetryAfter, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// switchTransport answers with a network error while down is set, with an
// empty 200 otherwise, and counts the attempts per host.
type switchTransport struct {
	down  atomic.Bool
	mu    sync.Mutex
	tries map[string]int
}

func (s *switchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.tries[req.URL.Host]++
	s.mu.Unlock()
	if s.down.Load() {
		return nil, errors.New("connect: connection refused")
	}
	return &http.Response{StatusCode: 200, Body: io.NopCloser(http.NoBody), Header: http.Header{}, Request: req}, nil
}

func (s *switchTransport) attempts(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[host]
}

// TestPolitenessDeadHostIsNotRetried: once HostDownAfter requests in a row
// to a host have failed after all their retries, each further request to
// it is sent once; the first answer ends that, and another host keeps its
// retries throughout.
func TestPolitenessDeadHostIsNotRetried(t *testing.T) {
	clock := newFakeClock()
	up := &switchTransport{tries: map[string]int{}}
	up.down.Store(true)
	p := &Politeness{Upstream: up, RetryMax: 2, Now: clock.Now, Sleep: clock.Sleep}
	fetch := func(host string) error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		resp, err := p.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for range 10 {
		if err := fetch("dead.test"); err == nil {
			t.Fatal("request to a dead host succeeded")
		}
	}
	if got, want := up.attempts("dead.test"), HostDownAfter*3+(10-HostDownAfter); got != want {
		t.Errorf("10 requests to a dead host sent %d attempts, want %d (%d requests with 2 retries, then one each)", got, want, HostDownAfter)
	}
	if st := p.HostStats("dead.test"); st.Unretried != int64(10-HostDownAfter) {
		t.Errorf("unretried = %d, want %d", st.Unretried, 10-HostDownAfter)
	}
	_ = fetch("other.test")
	if got := up.attempts("other.test"); got != 3 {
		t.Errorf("another host's failing request sent %d attempts, want 3 (its retries)", got)
	}

	up.down.Store(false) // the host comes back: the next request, sent once, succeeds
	before := up.attempts("dead.test")
	if err := fetch("dead.test"); err != nil {
		t.Fatal(err)
	}
	up.down.Store(true)
	_ = fetch("dead.test")
	if got := up.attempts("dead.test") - before; got != 1+3 {
		t.Errorf("after the host answered, a failing request sent %d attempts, want 3 (retries back)", got-1)
	}
}
