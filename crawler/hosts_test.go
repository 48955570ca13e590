package crawler

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"crawlcache/frontier"
	"crawlcache/pipeline"
	"crawlcache/testsite"
)

// fleetProbe records which worker has network requests in flight, to check
// that two workers never talk to the host at the same time.
type fleetProbe struct {
	mu       sync.Mutex
	active   map[string]int
	requests map[string]int
	overlaps int
}

type probeTransport struct {
	probe  *fleetProbe
	worker string
	next   http.RoundTripper
}

func (p *probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f := p.probe
	f.mu.Lock()
	for w, n := range f.active {
		if w != p.worker && n > 0 {
			f.overlaps++
		}
	}
	f.active[p.worker]++
	f.requests[p.worker]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active[p.worker]--
		f.mu.Unlock()
	}()
	resp, err := p.next.RoundTrip(req)
	if err == nil {
		// Count the request as in flight until its body is read: that is
		// when the politeness slot goes back, too.
		data, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	return resp, err
}

func TestCrawlHostLeasesTwoWorkers(t *testing.T) {
	e := newEnv(t)
	site, base := newSite(t, testsite.Options{Pages: 40, Seed: 9})
	probe := &fleetProbe{active: map[string]int{}, requests: map[string]int{}}
	up := newUpstream(4, http.ProxyFromEnvironment)
	defer up.CloseIdleConnections()

	started := make(chan struct{})
	var once sync.Once
	recA := newRecorder(t)
	recA.after = func(pipeline.Page) { once.Do(func() { close(started) }) }
	a := e.options("fleet", base+"/", recA)
	a.Worker, a.HostLeases = "worker-a", true
	a.Upstream = &probeTransport{probe: probe, worker: "worker-a", next: up}

	// Worker B has its own Frontier on the same store, as a second process
	// would, and joins the run once it has started.
	fb, err := frontier.New(context.Background(), e.st, envDatabase, frontier.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	recB := newRecorder(t)
	b := e.options("fleet", "", recB)
	b.Seeds, b.Resume, b.Frontier = nil, true, fb
	b.Worker, b.HostLeases = "worker-b", true
	b.Upstream = &probeTransport{probe: probe, worker: "worker-b", next: up}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = Run(context.Background(), a) }()
	go func() {
		defer wg.Done()
		<-started
		_, errs[1] = Run(context.Background(), b)
	}()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if probe.overlaps != 0 {
		t.Errorf("requests from both workers in flight at once %d times, want 0 (host leases)", probe.overlaps)
	}
	oc := site.Counts()
	for _, path := range oc.Paths() {
		if path == "/robots.txt" {
			continue
		}
		if got := oc.Status(path, 200); got != 1 {
			t.Errorf("origin downloads of %s = %d, want 1 over the fleet", path, got)
		}
	}
	want := len(site.ReachableURLs(base))
	if c := counts(t, e, "fleet"); c.Done != want || c.Total() != want {
		t.Errorf("frontier = %+v, want all %d done", c, want)
	}
	t.Logf("network requests by worker: %v", probe.requests)
}
