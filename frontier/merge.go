package frontier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// errUnordered is streamMerged's answer when the store did not return a
// run's entries or log records in _id order.
var errUnordered = errors.New("the store returned _ids out of order")

// logBatch is how many log records the log reader hands over at once.
const logBatch = 512

// logCursor reads a run's log records, in _id order, from the goroutine
// that scans them.
type logCursor struct {
	ch   <-chan []logRec
	buf  []logRec
	i    int
	last string // Entry of the last record read, for the order check
}

// peek returns the next record, or nil at the end of the log.
func (c *logCursor) peek() *logRec {
	for c.i >= len(c.buf) {
		b, ok := <-c.ch
		if !ok {
			return nil
		}
		c.buf, c.i = b, 0
	}
	return &c.buf[c.i]
}

// latest consumes the records up to entry id and returns the latest of
// those of id (found false: none). Records of entries that do not exist
// are skipped, as readEntries does. It returns errUnordered when the log
// is not in _id order.
func (c *logCursor) latest(id string) (l logRec, found bool, err error) {
	for rec := c.peek(); rec != nil && rec.Entry <= id; rec = c.peek() {
		if rec.Entry < c.last {
			return l, false, errUnordered
		}
		c.last = rec.Entry
		if rec.Entry == id && (!found || rec.Seq > l.Seq) {
			l, found = *rec, true
		}
		c.i++
	}
	return l, found, nil
}

// readLog scans runID's log records into out, logBatch at a time, and
// closes out when done; it returns the scan's error.
func (f *Frontier) readLog(ctx context.Context, runID string, out chan<- []logRec) error {
	defer close(out)
	batch := make([]logRec, 0, logBatch)
	send := func() error {
		select {
		case out <- batch:
			batch = make([]logRec, 0, logBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := f.scanRun(ctx, f.log, runID, func(doc bson.Raw) error {
		var l logRec
		if err := bson.Unmarshal(doc, &l); err != nil {
			return fmt.Errorf("decode %s: %w", doc, err)
		}
		batch = append(batch, l)
		if len(batch) == logBatch {
			return send()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	if err != nil {
		return fmt.Errorf("scan log: %w", err)
	}
	return nil
}

// streamMerged is streamEntries without the whole log read first: it scans
// runID's entries and log side by side, both in _id order (an entry's log
// records follow it), and queues each claimable entry as soon as it is
// read, with its latest log record. It returns errUnordered, having queued
// nothing wrong (an entry claimed with a stale record loses its claim: see
// Claim), when the store does not return _ids in order.
func (f *Frontier) streamMerged(ctx context.Context, r *run, runID string, now time.Time, reclaim map[string]bool) (Counts, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs := make(chan []logRec, 4)
	logErr := make(chan error, 1)
	go func() { logErr <- f.readLog(ctx, runID, recs) }()
	cur := &logCursor{ch: recs}

	q := newLoadQueue(f, r)
	var c Counts
	prev := ""
	err := f.scanRun(ctx, f.entries, runID, func(doc bson.Raw) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var e entryDoc
		if err := bson.Unmarshal(doc, &e); err != nil {
			return fmt.Errorf("decode %s: %w", doc, err)
		}
		if e.ID < prev {
			return errUnordered
		}
		prev = e.ID
		l, found, err := cur.latest(e.ID)
		if err != nil {
			return err
		}
		_, h, ok := splitID(e.ID)
		if !ok {
			return nil // not made by ID; leave it alone
		}
		if !found {
			l.State = Pending
		}
		it := qitem{h: h, seq: l.Seq, attempts: l.Attempts, depth: e.Depth, url: e.URL}
		q.add(it, place(&c, l, reclaim, now), l.LeaseUntil)
		return nil
	})
	q.flush()
	if err != nil && !errors.Is(err, errUnordered) {
		err = fmt.Errorf("scan entries: %w", err)
	}
	cancel()
	for range recs { // let the reader end
	}
	if lerr := <-logErr; err == nil && !errors.Is(lerr, context.Canceled) {
		err = lerr
	}
	return c, err
}

// loadQueue hands a scan's entries to the run's queue, loadChunk at a
// time.
type loadQueue struct {
	f       *Frontier
	r       *run
	ready   []qitem
	watch   []watchItem
	scanned []hash16
	chunk   int // entries scanned before the next flush
}

// firstChunk is how many entries a scan reads before it queues the first
// ones: a few, so that the first claim need not wait for a whole chunk.
const firstChunk = 64

func newLoadQueue(f *Frontier, r *run) *loadQueue {
	return &loadQueue{f: f, r: r, chunk: firstChunk}
}

// add queues it as p says (until: when a watched lease ends).
func (q *loadQueue) add(it qitem, p placement, until time.Time) {
	q.scanned = append(q.scanned, it.h)
	switch p {
	case placeReady:
		q.ready = append(q.ready, it)
	case placeWatch:
		q.watch = append(q.watch, watchItem{it, until})
	}
	if len(q.scanned) >= q.chunk {
		q.flush()
		q.chunk = loadChunk
	}
}

// flush moves what add collected into the run's memory. An entry queued
// once (by Add meanwhile, or by this scan) is not queued again.
func (q *loadQueue) flush() {
	f, r := q.f, q.r
	f.mu.Lock()
	for _, h := range q.scanned {
		r.seen[h] = struct{}{}
	}
	for _, it := range q.ready {
		if _, added := r.addedWhileLoading[it.h]; !added {
			r.push(it)
			r.addedWhileLoading[it.h] = struct{}{}
		}
	}
	r.watch = append(r.watch, q.watch...)
	f.mu.Unlock()
	q.ready, q.watch, q.scanned = q.ready[:0], q.watch[:0], q.scanned[:0]
}
