package crawler

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Host lease timing (Options.HostLeases).
const (
	// hostRetry is how long a fetcher waits before asking again for a host
	// another worker holds.
	hostRetry = time.Second
	// hostIdle is how long a held host may go without a fetch before it is
	// handed back, so other workers can take it.
	hostIdle = time.Second
)

// hostGate makes a worker fetch only hosts it holds a lease on in the
// frontier: per-host politeness then holds for a fleet of workers
// sharing one run, since only the holder sends requests to the host.
//
// A fetcher asks for the lease before each fetch; while another worker holds
// the host it waits (its entry stays leased and renewed). A held host is
// renewed every LeaseRenew while it is used and handed back once idle for
// hostIdle. On taking a host over, its token bucket starts empty, so the
// previous holder's last request and this worker's first are at least
// 1/per_host apart.
type hostGate struct {
	c     *crawl
	mu    sync.Mutex
	hosts map[string]*gateHost
}

type gateHost struct {
	mu      sync.Mutex // serializes this process's lease calls for the host
	held    bool
	active  int // fetches in progress
	last    time.Time
	renewed time.Time
}

func newHostGate(c *crawl) *hostGate {
	return &hostGate{c: c, hosts: make(map[string]*gateHost)}
}

func (g *hostGate) host(h string) *gateHost {
	g.mu.Lock()
	defer g.mu.Unlock()
	gh, ok := g.hosts[h]
	if !ok {
		gh = &gateHost{}
		g.hosts[h] = gh
	}
	return gh
}

// acquire waits until this worker holds host and counts a fetch on it. It
// returns false if the run stops first (or the store fails, which is then
// fatal). Call done after the fetch.
func (g *hostGate) acquire(host string) bool {
	gh := g.host(host)
	for {
		gh.mu.Lock()
		if !gh.held {
			ok, err := g.c.front.LeaseHost(g.c.ackCtx, host, g.c.worker, 0)
			if err != nil {
				gh.mu.Unlock()
				g.c.setFatal(fmt.Errorf("lease host %s in frontier store: %w", host, err))
				return false
			}
			if ok {
				gh.held, gh.renewed = true, time.Now()
				g.c.polite.restart(host)
				g.c.log.Debug("host leased", "host", host, "worker", g.c.worker)
			}
		}
		if gh.held {
			gh.active++
			gh.last = time.Now()
			gh.mu.Unlock()
			return true
		}
		gh.mu.Unlock()
		t := time.NewTimer(hostRetry)
		select {
		case <-t.C:
		case <-g.c.runCtx.Done():
			t.Stop()
			return false
		}
	}
}

// done ends a fetch counted by acquire.
func (g *hostGate) done(host string) {
	gh := g.host(host)
	gh.mu.Lock()
	gh.active--
	gh.last = time.Now()
	gh.mu.Unlock()
}

// tend renews the leases of busy hosts and hands back idle ones; all of
// them when final.
func (g *hostGate) tend(ctx context.Context, final bool) {
	g.mu.Lock()
	hosts := make(map[string]*gateHost, len(g.hosts))
	for h, gh := range g.hosts {
		hosts[h] = gh
	}
	g.mu.Unlock()
	now := time.Now()
	for h, gh := range hosts {
		gh.mu.Lock()
		switch {
		case !gh.held:
		case final || (gh.active == 0 && now.Sub(gh.last) >= hostIdle):
			gh.held = false
			if err := g.c.front.ReleaseHost(ctx, h, g.c.worker); err != nil {
				g.c.log.Warn("could not hand back host lease; it expires by itself", "host", h, "err", err)
			}
		case now.Sub(gh.renewed) >= g.c.renewInterval():
			ok, err := g.c.front.LeaseHost(ctx, h, g.c.worker, 0)
			switch {
			case err != nil:
				g.c.log.Warn("could not renew host lease", "host", h, "err", err)
			case !ok:
				gh.held = false
				g.c.log.Warn("host lease lost to another worker", "host", h)
			default:
				gh.renewed = now
			}
		}
		gh.mu.Unlock()
	}
}

// loop tends the host leases every hostIdle until ctx is done.
func (g *hostGate) loop(ctx context.Context) {
	t := time.NewTicker(hostIdle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.tend(ctx, false)
		}
	}
}
