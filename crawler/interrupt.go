package crawler

import (
	"context"
	"time"
)

// watchInterrupt waits for the end of the run's claiming (runCtx). When it
// ended because ctx was cancelled (an interrupt), it says at once how many
// pages are in flight (OnInterrupt), then lets them finish for
// ShutdownGrace, or until StopNow closes, before it cancels the fetches.
func (c *crawl) watchInterrupt(ctx context.Context, cancelFetch context.CancelFunc) {
	select {
	case <-c.runCtx.Done():
	case <-c.fetchCtx.Done():
		return
	}
	if ctx.Err() != nil {
		n := c.inFlight()
		c.log.Info("interrupted: finishing the pages in flight", "in_flight", n, "grace", c.opts.ShutdownGrace)
		if c.opts.OnInterrupt != nil {
			c.opts.OnInterrupt(n)
		}
	}
	t := time.NewTimer(c.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-t.C:
		if n := c.inFlight(); n > 0 {
			c.log.Warn("shutdown grace over: cancelling the fetches in flight; a resume fetches them again", "in_flight", n, "grace", c.opts.ShutdownGrace)
		}
		cancelFetch()
	case <-c.opts.StopNow:
		c.log.Info("stopping now: cancelling the fetches in flight; a resume fetches them again", "in_flight", c.inFlight())
		cancelFetch()
	case <-c.fetchCtx.Done():
	}
}

// inFlight counts the claimed pages being fetched or waiting to be
// written: those the crawl still finishes after an interrupt (the ones
// queued for a fetcher are released without a fetch).
func (c *crawl) inFlight() int {
	c.mu.Lock()
	n := len(c.inflight)
	c.mu.Unlock()
	if c.fetcher != nil {
		n -= len(c.fetcher.work)
	}
	return max(n, 0)
}
