package frontier

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"crawlcache/store"
)

// Has reports whether normalizedURL is an entry of runID in the store, in
// any state. It is one lookup by _id.
func (f *Frontier) Has(ctx context.Context, runID, normalizedURL string) (bool, error) {
	_, err := f.entries.Get(ctx, ID(runID, normalizedURL))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up %s in run %s: %w", normalizedURL, runID, err)
}

// loadChunk is how many scanned entries StartLoadRun hands to the queue at
// once.
const loadChunk = 1000

// LoadResult is the outcome of a StartLoadRun scan.
type LoadResult struct {
	Counts Counts
	Err    error
}

// StartLoadRun is LoadRun for a large run: it returns at once and reads
// the run in the background, queuing the claimable entries as it reads
// them, so that Claim finds work within moments instead of after the whole
// scan (about 0.1 ms per entry on the embedded server: a minute and a half
// for a million URLs). The entries and the log are read side by side, both
// in _id order, in which an entry's log records follow it ("<entry>#<seq>"),
// so that each entry's state is known as it is read, without reading the
// whole log first (0.6–1 s for the 20,000 records of 10,000 pages done,
// more under load). Entries are queued in the order they are stored rather
// than by depth. Drained answers false until the scan ends; Add and Claim
// work meanwhile. The channel receives the run's counts (or the scan's
// error, after which the run should be stopped: what is queued is right,
// but not complete) once, when the scan ends. ctx bounds the background
// scan too.
func (f *Frontier) StartLoadRun(ctx context.Context, runID string, reclaim ...string) (<-chan LoadResult, error) {
	if err := f.register(ctx, runID); err != nil {
		return nil, err
	}
	now := f.now()
	f.mu.Lock()
	r := f.runLocked(runID)
	if r.reclaim == nil {
		r.reclaim = make(map[string]bool)
	}
	for _, w := range reclaim {
		r.reclaim[w] = true
	}
	if r.loading || r.scanning {
		f.mu.Unlock()
		return nil, fmt.Errorf("load frontier of run %s: a scan of the run is already running", runID)
	}
	r.loading, r.scanning = true, true
	r.addedWhileLoading = make(map[hash16]struct{})
	reclaimed := maps.Clone(r.reclaim)
	f.mu.Unlock()
	ch := make(chan LoadResult, 1)
	go func() {
		start := time.Now()
		c, err := f.streamMerged(ctx, r, runID, now, reclaimed)
		if errors.Is(err, errUnordered) {
			// A server that does not return _ids in order: the log first,
			// then the entries.
			var latest map[string]logRec
			if latest, err = f.scanLog(ctx, runID); err == nil {
				f.queueFromLog(r, runID, latest, now, reclaimed)
				c, err = f.streamEntries(ctx, r, runID, latest, now, reclaimed)
			}
		}
		if err != nil {
			err = fmt.Errorf("load frontier of run %s: %w", runID, err)
		}
		f.mu.Lock()
		r.loading, r.scanning = false, false
		r.addedWhileLoading = nil
		r.lastScan = now
		if err != nil {
			r.uncertain = true
		}
		r.lastScanCost = time.Since(start)
		f.mu.Unlock()
		ch <- LoadResult{Counts: c, Err: err}
	}()
	return ch, nil
}

// queueFromLog queues at once the entries whose latest log record leaves
// them claimable (released on an interrupt, a dead worker's leases) and
// says their URL and depth: they are the work a resume should take up
// first, and need not wait for the entries scan, which skips them.
func (f *Frontier) queueFromLog(r *run, runID string, latest map[string]logRec, now time.Time, reclaim map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, l := range latest {
		claimable := l.State == Pending || (l.State == Leased && (reclaim[l.Worker] || !l.LeaseUntil.After(now)))
		if !claimable || l.Depth == nil || l.URL == "" {
			continue
		}
		rid, h, ok := splitID(id)
		if !ok || rid != runID {
			continue
		}
		r.seen[h] = struct{}{}
		r.addedWhileLoading[h] = struct{}{}
		r.push(qitem{h: h, seq: l.Seq, attempts: l.Attempts, depth: *l.Depth, url: l.URL})
	}
}

// streamEntries scans runID's entries and queues the claimable ones chunk
// by chunk; latest is the log as read before the scan. On the embedded
// store served here it reads the run's entries by _id range (scanRun): in
// _id order, which is random, so that pending entries come at once even
// when the run's first million were done; elsewhere in the server's order.
func (f *Frontier) streamEntries(ctx context.Context, r *run, runID string, latest map[string]logRec, now time.Time, reclaim map[string]bool) (Counts, error) {
	q := newLoadQueue(f, r)
	c, err := f.readEntries(ctx, runID, latest, reclaim, now, func(it qitem, p placement, until time.Time) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.add(it, p, until)
		return nil
	})
	q.flush()
	return c, err
}

// placement says where a loaded entry goes.
type placement int

const (
	placeNone  placement = iota // done or failed: not queued
	placeReady                  // claimable now
	placeWatch                  // leased: claimable when its lease ends
)

// place counts an entry in c by its latest log record l and says where it
// goes: a pending entry, or one leased by a worker in reclaim or whose lease
// has ended by now, is ready; one leased by a live worker is watched.
func place(c *Counts, l logRec, reclaim map[string]bool, now time.Time) placement {
	switch l.State {
	case Pending:
		c.Pending++
		return placeReady
	case Leased:
		c.Leased++
		if reclaim[l.Worker] || !l.LeaseUntil.After(now) {
			return placeReady
		}
		return placeWatch
	case Done:
		c.Done++
	case Failed:
		c.Failed++
	}
	return placeNone
}
