package frontier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// insertBatch is how many entries one insertMany carries.
const insertBatch = 500

// run is this process's memory of one run: every URL hash it has seen (so
// known URLs are not sent again), a FIFO of entries it believes claimable,
// and entries leased by others to look at again when their lease ends.
// About 60 bytes per URL.
type run struct {
	id      string
	seen    map[hash16]struct{}
	queue   []qitem // queue[head:] are waiting
	head    int
	watch   []watchItem
	reclaim map[string]bool // workers whose leases count as expired

	lastScan     time.Time
	lastScanCost time.Duration
	scanning     bool
}

// qitem is a claimable entry: its hash and the lease generation it had when
// this process learned about it.
type qitem struct {
	h   hash16
	gen int64
}

// watchItem is an entry to try again after until.
type watchItem struct {
	qitem
	until time.Time
}

func (r *run) push(it qitem) { r.queue = append(r.queue, it) }

func (r *run) pushFront(it qitem) {
	if r.head > 0 {
		r.head--
		r.queue[r.head] = it
		return
	}
	r.queue = slices.Insert(r.queue, 0, it)
}

func (r *run) pop() (qitem, bool) {
	if r.head >= len(r.queue) {
		return qitem{}, false
	}
	it := r.queue[r.head]
	r.head++
	if r.head == len(r.queue) {
		r.queue, r.head = r.queue[:0], 0
	} else if r.head > 1024 && r.head > len(r.queue)/2 {
		n := copy(r.queue, r.queue[r.head:])
		r.queue, r.head = r.queue[:n], 0
	}
	return it, true
}

func (r *run) queued() int { return len(r.queue) - r.head }

// popExpired removes and returns a watched entry whose wait is over.
func (r *run) popExpired(now time.Time) (qitem, bool) {
	for i, w := range r.watch {
		if !w.until.After(now) {
			r.watch = slices.Delete(r.watch, i, i+1)
			return w.qitem, true
		}
	}
	return qitem{}, false
}

// runLocked returns the state of runID, creating it. f.mu must be held.
func (f *Frontier) runLocked(runID string) *run {
	r := f.runs[runID]
	if r == nil {
		r = &run{id: runID, seen: make(map[hash16]struct{})}
		f.runs[runID] = r
	}
	return r
}

// Queued returns how many entries of runID wait in this process's local
// queue, for progress lines. It does no I/O.
func (f *Frontier) Queued(runID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.runs[runID]; r != nil {
		return r.queued() + len(r.watch)
	}
	return 0
}

// Add inserts links as pending entries of runID and returns how many were
// new. It is idempotent: a URL already in the run (in this process's memory
// or in the store) is skipped, and duplicate-key errors from the server are
// not errors. New entries join this process's local queue.
func (f *Frontier) Add(ctx context.Context, runID string, links []Link) (int, error) {
	now := f.now().UTC()
	type cand struct {
		h    hash16
		link Link
	}
	f.mu.Lock()
	r := f.runLocked(runID)
	var cands []cand
	batchSeen := make(map[hash16]struct{}, len(links))
	for _, l := range links {
		h := urlHash(l.URL)
		if _, ok := r.seen[h]; ok {
			continue
		}
		if _, ok := batchSeen[h]; ok {
			continue
		}
		batchSeen[h] = struct{}{}
		cands = append(cands, cand{h, l})
	}
	f.mu.Unlock()

	added := 0
	for start := 0; start < len(cands); start += insertBatch {
		batch := cands[start:min(start+insertBatch, len(cands))]
		docs := make([]any, len(batch))
		for i, c := range batch {
			docs[i] = bson.D{
				{Key: "_id", Value: entryID(runID, c.h)},
				{Key: "run_id", Value: runID},
				{Key: "url", Value: c.link.URL},
				{Key: "host", Value: c.link.Host},
				{Key: "depth", Value: c.link.Depth},
				{Key: "state", Value: Pending},
				{Key: "attempts", Value: 0},
				{Key: "lease_gen", Value: int64(0)},
				{Key: "parent", Value: c.link.Parent},
				{Key: "added_at", Value: now},
			}
		}
		_, err := f.entries.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		failed := make(map[int]bool)
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
				return added, fmt.Errorf("add %d links to run %s: %w", len(batch), runID, err)
			}
			for _, we := range bwe.WriteErrors {
				if we.Code != 11000 {
					return added, fmt.Errorf("add %d links to run %s: %w", len(batch), runID, err)
				}
				failed[we.Index] = true
			}
		}
		f.mu.Lock()
		for i, c := range batch {
			r.seen[c.h] = struct{}{}
			if !failed[i] {
				r.push(qitem{h: c.h})
				added++
			}
		}
		f.mu.Unlock()
	}
	return added, nil
}

// LoadRun reads every entry of runID once (a scan) to restore this process's
// memory of the run after a restart: the seen set, the queue of pending
// entries and of leased entries whose lease has expired, ordered by depth,
// and a watch list of entries still leased by others, claimed when their
// leases expire. Leases held by the workers named in reclaim count as
// expired at once: pass the worker names of a crashed process that is known
// to be dead (for example on resume on the same machine), so its in-flight
// pages need not wait for the lease. LoadRun returns the run's counts.
func (f *Frontier) LoadRun(ctx context.Context, runID string, reclaim ...string) (Counts, error) {
	var c Counts
	cur, err := f.entries.Find(ctx, bson.D{{Key: "run_id", Value: runID}},
		options.Find().SetProjection(bson.D{
			{Key: "_id", Value: 1}, {Key: "depth", Value: 1}, {Key: "state", Value: 1},
			{Key: "lease_gen", Value: 1}, {Key: "lease_until", Value: 1}, {Key: "worker", Value: 1},
		}).SetBatchSize(2000))
	if err != nil {
		return c, fmt.Errorf("load frontier of run %s: %w", runID, err)
	}
	defer cur.Close(ctx)
	type loaded struct {
		qitem
		depth int
	}
	var ready []loaded
	var watch []watchItem
	seen := make(map[hash16]struct{})
	rec := make(map[string]bool, len(reclaim))
	for _, w := range reclaim {
		rec[w] = true
	}
	now := f.now()
	for cur.Next(ctx) {
		var e struct {
			ID         string    `bson:"_id"`
			Depth      int       `bson:"depth"`
			State      State     `bson:"state"`
			LeaseGen   int64     `bson:"lease_gen"`
			LeaseUntil time.Time `bson:"lease_until"`
			Worker     string    `bson:"worker"`
		}
		if err := cur.Decode(&e); err != nil {
			return c, fmt.Errorf("load frontier of run %s: decode %s: %w", runID, cur.Current, err)
		}
		h, ok := splitID(runID, e.ID)
		if !ok {
			continue // not made by ID; leave it alone
		}
		seen[h] = struct{}{}
		it := qitem{h: h, gen: e.LeaseGen}
		switch e.State {
		case Pending:
			c.Pending++
			ready = append(ready, loaded{it, e.Depth})
		case Leased:
			c.Leased++
			if rec[e.Worker] || !e.LeaseUntil.After(now) {
				ready = append(ready, loaded{it, e.Depth})
			} else {
				watch = append(watch, watchItem{it, e.LeaseUntil})
			}
		case Done:
			c.Done++
		case Failed:
			c.Failed++
		}
	}
	if err := cur.Err(); err != nil {
		return c, fmt.Errorf("load frontier of run %s: %w", runID, err)
	}
	slices.SortStableFunc(ready, func(a, b loaded) int { return a.depth - b.depth })

	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runLocked(runID)
	for h := range seen {
		r.seen[h] = struct{}{}
	}
	r.queue, r.head = r.queue[:0], 0
	for _, l := range ready {
		if _, mine := f.held[entryID(runID, l.h)]; !mine {
			r.push(l.qitem)
		}
	}
	r.watch = watch
	r.reclaim = rec
	r.lastScan = now
	return c, nil
}

// Forget drops this process's memory of runID (seen set and queues), for a
// long-lived worker whose run has finished. Held leases are kept.
func (f *Frontier) Forget(runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.runs, runID)
}

// scan fetches up to ScanBatch claimable entries of r from the store into
// the local queue, unless a scan ran too recently. It returns whether it
// queued anything.
func (f *Frontier) scan(ctx context.Context, r *run) (bool, error) {
	now := f.now()
	f.mu.Lock()
	gap := max(f.scanInterval, 20*r.lastScanCost)
	if r.scanning || (!r.lastScan.IsZero() && now.Sub(r.lastScan) < gap) {
		f.mu.Unlock()
		return false, nil
	}
	r.scanning = true
	reclaim := make(bson.A, 0, len(r.reclaim))
	for w := range r.reclaim {
		reclaim = append(reclaim, w)
	}
	f.mu.Unlock()

	start := time.Now()
	or := bson.A{
		bson.D{{Key: "state", Value: Pending}},
		bson.D{{Key: "state", Value: Leased}, {Key: "lease_until", Value: bson.D{{Key: "$lt", Value: now}}}},
	}
	if len(reclaim) > 0 {
		or = append(or, bson.D{{Key: "state", Value: Leased}, {Key: "worker", Value: bson.D{{Key: "$in", Value: reclaim}}}})
	}
	cur, err := f.entries.Find(ctx, bson.D{{Key: "run_id", Value: r.id}, {Key: "$or", Value: or}},
		options.Find().SetLimit(int64(f.scanBatch)).SetProjection(bson.D{
			{Key: "_id", Value: 1}, {Key: "lease_gen", Value: 1},
		}))
	var rows []struct {
		ID       string `bson:"_id"`
		LeaseGen int64  `bson:"lease_gen"`
	}
	if err == nil {
		err = cur.All(ctx, &rows)
	}
	cost := time.Since(start)

	f.mu.Lock()
	defer f.mu.Unlock()
	r.scanning = false
	r.lastScan = now
	r.lastScanCost = cost
	if err != nil {
		return false, fmt.Errorf("scan frontier of run %s: %w", r.id, err)
	}
	n := 0
	for _, row := range rows {
		h, ok := splitID(r.id, row.ID)
		if !ok {
			continue
		}
		if _, mine := f.held[row.ID]; mine {
			continue
		}
		r.seen[h] = struct{}{}
		r.push(qitem{h: h, gen: row.LeaseGen})
		n++
	}
	return n > 0, nil
}
