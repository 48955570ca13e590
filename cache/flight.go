package cache

import (
	"context"
	"errors"
	"sync"
)

var errFlightAborted = errors.New("coalesced fetch aborted")

// flightGroup makes identical concurrent network fetches one: the first
// caller for a key (the leader) runs fn, later callers wait for its result.
// It is golang.org/x/sync/singleflight plus what the transport needs: the
// caller learns whether it led (only the leader may take a streamed body),
// a waiter stops waiting when its own context ends, and a hook lets tests
// see a waiter join without sleeping.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flightCall
	// joined, if set, is called when a caller starts waiting on a leader.
	joined func(key string)
}

type flightCall struct {
	done chan struct{}
	val  *fetchedEntry
	err  error
}

// do runs fn for key unless a call for key is in flight, in which case it
// waits for that call's result. leader reports whether fn ran here.
func (g *flightGroup) do(ctx context.Context, key string, fn func() (*fetchedEntry, error)) (val *fetchedEntry, err error, leader bool) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*flightCall)
	}
	if c, ok := g.m[key]; ok {
		g.mu.Unlock()
		if g.joined != nil {
			g.joined(key)
		}
		select {
		case <-c.done:
			return c.val, c.err, false
		case <-ctx.Done():
			return nil, ctx.Err(), false
		}
	}
	c := &flightCall{done: make(chan struct{})}
	g.m[key] = c
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		delete(g.m, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.err = errFlightAborted // what waiters see if fn panics
	c.val, c.err = fn()
	return c.val, c.err, true
}

// busy reports whether a call for key is in flight.
func (g *flightGroup) busy(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[key]
	return ok
}
