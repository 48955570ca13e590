package crawler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"crawlcache/frontier"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// idlePoll is how long the claim loop waits when it has nothing to claim
// but the run is not drained (other workers hold leases).
const idlePoll = 500 * time.Millisecond

// maxStoreErrors is how many consecutive failed frontier reads the claim
// loop tolerates before it declares the store gone.
const maxStoreErrors = 3

// claimLoop claims entries and hands them to the fetchers until the run is
// drained, interrupted or failed. It keeps at most 2×Parallelism entries in
// the fetch stage; pages waiting in the pipeline do not count, the pipeline
// applies its own backpressure through its channel.
func (c *crawl) claimLoop() error {
	capacity := claimFactor * c.opts.Parallelism
	// Failures are counted per operation: a claim that succeeds must not
	// hide a drained check that keeps failing (the loop would spin forever).
	var claimErrs, drainedErrs int
	storeErr := func(op string, errs *int, err error) bool {
		if c.runCtx.Err() != nil {
			return true
		}
		*errs++
		c.log.Warn("frontier store error", "op", op, "err", err, "attempt", *errs)
		if *errs >= maxStoreErrors {
			c.setFatal(fmt.Errorf("%s in frontier store (run %s): %w", op, c.opts.RunID, err))
			return true
		}
		c.idle(time.Duration(*errs) * 200 * time.Millisecond)
		return false
	}
	for c.runCtx.Err() == nil {
		c.mu.Lock()
		want := capacity - c.fetching
		busy := len(c.inflight)
		c.mu.Unlock()
		if want <= 0 {
			c.idle(idlePoll)
			continue
		}
		// Not runCtx: a claim cut short by an interrupt could leave an
		// entry leased in the store without returning it to be released.
		entries, err := c.front.Claim(c.ackCtx, c.opts.RunID, c.worker, want)
		for _, e := range entries {
			c.dispatch(e)
		}
		if err != nil {
			if storeErr("claim urls", &claimErrs, err) {
				return nil
			}
			continue
		}
		claimErrs = 0
		if len(entries) > 0 {
			continue
		}
		if busy > 0 {
			c.idle(idlePoll) // woken early when a page finishes or adds links
			continue
		}
		drained, err := c.front.Drained(c.runCtx, c.opts.RunID)
		if err != nil {
			if storeErr("check whether the run is drained", &drainedErrs, err) {
				return nil
			}
			continue
		}
		drainedErrs = 0
		if drained {
			return nil
		}
		c.idle(idlePoll) // leases held by other (or crashed) workers
	}
	return nil
}

// idle waits for d, a state change, or the end of the run.
func (c *crawl) idle(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.changed:
	case <-c.runCtx.Done():
	}
}

// dispatch records e as in flight and queues it for a fetcher.
func (c *crawl) dispatch(e frontier.Entry) {
	c.learnLease(e)
	c.mu.Lock()
	c.inflight[e.ID] = e
	c.fetching++
	c.mu.Unlock()
	c.fetcher.work <- e // buffered to the claim capacity: never blocks
}

// fetchDone marks the end of e's fetch stage.
func (c *crawl) fetchDone() {
	c.mu.Lock()
	c.fetching--
	c.mu.Unlock()
	c.signal()
}

// forget drops ids from the in-flight set.
func (c *crawl) forget(ids ...string) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.inflight, id)
	}
	c.mu.Unlock()
	c.signal()
}

// markDone acknowledges e: its response is cached and its items written.
func (c *crawl) markDone(id string) {
	if err := c.front.Done(c.ackCtx, id); err != nil {
		c.setFatal(fmt.Errorf("acknowledge url in frontier store: %w", err))
		return // stays in flight: released (or its lease expires) at the end
	}
	c.forget(id)
}

// markFailed records a failed URL for good and counts it as an error. The
// transport already retried transient failures RetryMax times.
func (c *crawl) markFailed(e frontier.Entry, cause error) {
	c.errs.Add(1)
	c.breakdown.failed(cause)
	cause = c.scrubErr(e, cause)
	c.log.Warn("page failed", "url", c.redact(e.URL), "err", cause)
	c.observe(c.redact(e.URL), nil, nil, "", cause)
	if err := c.front.Fail(c.ackCtx, e.ID, cause, false); err != nil {
		c.setFatal(fmt.Errorf("record failed url in frontier store: %w", err))
		return
	}
	c.forget(e.ID)
}

// markSkipped records a URL that is not fetched (robots.txt) without
// counting an error.
func (c *crawl) markSkipped(e frontier.Entry, cause error) {
	cause = c.scrubErr(e, cause)
	c.log.Debug("page skipped", "url", c.redact(e.URL), "reason", cause)
	if errors.Is(cause, ErrRobots) {
		c.breakdown.blocked(e.URL)
	}
	if err := c.front.Fail(c.ackCtx, e.ID, cause, false); err != nil {
		c.setFatal(fmt.Errorf("record skipped url in frontier store: %w", err))
		return
	}
	c.forget(e.ID)
}

// inflightIDs lists the entries this worker holds.
func (c *crawl) inflightIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Keys(c.inflight))
}

// releaseAll gives every lease still held back to pending, for a resume.
func (c *crawl) releaseAll() {
	ids := c.inflightIDs()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := c.handBackCtx()
	defer cancel()
	if err := c.front.Release(ctx, ids); err != nil {
		c.log.Warn("could not release in-flight urls; they return when their leases expire", "count", len(ids), "err", err)
		return
	}
	c.log.Info("released in-flight urls", "count", len(ids))
	c.forget(ids...)
}

// handBackCtx bounds handing leases back at the end of a run: 30 s, or 2 s
// once the store is known to be gone (each call would otherwise wait the
// driver's server-selection timeout); unreturned leases expire anyway.
func (c *crawl) handBackCtx() (context.Context, context.CancelFunc) {
	d := 30 * time.Second
	if store.IsUnavailable(c.fatal()) || store.IsUnavailable(context.Cause(c.runCtx)) {
		d = 2 * time.Second
	}
	return context.WithTimeout(c.ackCtx, d)
}

// startPipeline runs the pipeline on its own context, which outlives an
// interrupt so pages already fetched can still be written and acknowledged.
func (c *crawl) startPipeline() {
	p := c.opts.Pipeline
	if p == nil {
		return
	}
	prev, prevParsed := p.OnPageDone, p.OnParsed
	c.restoreHook = func() { p.OnPageDone, p.OnParsed = prev, prevParsed }
	if c.opts.Parses != nil {
		p.OnParsed = func(pg pipeline.Page, items []pipeline.Item) {
			c.onParsed(pg, items)
			if prevParsed != nil {
				prevParsed(pg, items)
			}
		}
	}
	p.OnPageDone = func(pg pipeline.Page, n int) {
		c.ack(pg, n)
		if prev != nil {
			prev(pg, n)
		}
	}
	c.pagesCh = make(chan pipeline.Page)
	c.pipeDone = make(chan struct{})
	ctx, cancel := context.WithCancel(c.ackCtx)
	c.pipeCancel = cancel
	go func() {
		defer close(c.pipeDone)
		if err := p.Run(ctx, c.pagesCh); err != nil && !errors.Is(err, context.Canceled) {
			c.setFatal(fmt.Errorf("pipeline: %w", err))
		}
	}()
}

// stopPipeline closes the page channel and waits for the pipeline to write
// what it has; after an interrupt it waits at most ShutdownGrace.
func (c *crawl) stopPipeline() {
	if c.pagesCh == nil {
		return
	}
	close(c.pagesCh)
	defer c.restoreHook()
	defer c.acks.Wait()
	if c.runCtx.Err() == nil {
		<-c.pipeDone
		c.pipeCancel()
		return
	}
	t := time.NewTimer(c.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-c.pipeDone:
	case <-t.C:
		c.pipeCancel()
		<-c.pipeDone
	case <-c.opts.StopNow:
		c.pipeCancel() // the pages not written stay in the frontier
		<-c.pipeDone
	}
	c.pipeCancel()
}

// toPipeline hands pg to the pipeline, to be acknowledged in ack. It returns
// false if the pipeline has stopped.
func (c *crawl) toPipeline(e frontier.Entry, pg pipeline.Page) bool {
	c.mu.Lock()
	c.byPage[pg.URL] = append(c.byPage[pg.URL], e.ID)
	c.mu.Unlock()
	select {
	case c.pagesCh <- pg:
		return true
	case <-c.pipeDone:
		c.mu.Lock()
		ids := c.byPage[pg.URL]
		for i, id := range ids {
			if id == e.ID {
				c.byPage[pg.URL] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
		if len(c.byPage[pg.URL]) == 0 {
			delete(c.byPage, pg.URL)
		}
		c.mu.Unlock()
		return false
	}
}

// ack is the pipeline's OnPageDone: the page's n items are written.
func (c *crawl) ack(pg pipeline.Page, n int) {
	c.mu.Lock()
	ids := c.byPage[pg.URL]
	var id string
	if len(ids) > 0 {
		id = ids[0]
		if len(ids) == 1 {
			delete(c.byPage, pg.URL)
		} else {
			c.byPage[pg.URL] = ids[1:]
		}
	}
	c.mu.Unlock()
	c.items.Add(int64(n))
	if id == "" {
		c.log.Warn("pipeline acknowledged a page that is not in flight", "url", pg.URL)
		return
	}
	c.acks.Add(1)
	go func() { defer c.acks.Done(); c.markDone(id) }()
}
