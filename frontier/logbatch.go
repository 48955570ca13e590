package frontier

import (
	"context"
	"fmt"
	"time"

	"crawlcache/internal/batch"
	"crawlcache/store"
)

// logBatcher writes state changes (Done, Fail, Release...) to frontier_log
// by group commit: a change that arrives while another insert is in flight
// waits for it and then goes out with every change that queued meanwhile,
// in one unordered insertMany. Each caller still returns only once its own
// record is written (or failed), so acknowledgement semantics are those of
// one insertOne per change; an idle frontier adds no delay. On the embedded
// store, where SQLite serializes writes, one insert of n small records
// costs little more than one insert of one: measured with the bench (300
// pages, parallelism 8), single inserts waited ~16 ms each in the queue of
// writers.
type logBatcher struct {
	coll  Collection
	queue batch.Queue[*logReq]
}

// newLogBatcher returns the batcher of coll's records.
func newLogBatcher(coll Collection) *logBatcher {
	b := &logBatcher{coll: coll}
	b.queue.Max, b.queue.Flush = maxLogBatch, b.flush
	return b
}

type logReq struct {
	ctx  context.Context
	doc  any
	done chan error
}

// maxLogBatch bounds one insertMany (its message stays far below 48 MB).
const maxLogBatch = 256

// insert writes doc and returns its own outcome: nil, an error wrapping
// store.ErrDuplicateID or the error of the whole request. If
// ctx ends first it returns ctx.Err(); the record may still be written, as
// with a cancelled insertOne.
func (b *logBatcher) insert(ctx context.Context, doc any) error {
	r := &logReq{ctx: ctx, doc: doc, done: make(chan error, 1)}
	b.queue.Add(r)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes batch and answers each request.
func (b *logBatcher) flush(batch []*logReq) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	if len(batch) == 1 {
		batch[0].done <- b.coll.Insert(ctx, batch[0].doc)
		return
	}
	docs := make([]any, len(batch))
	for i, r := range batch {
		docs[i] = r.doc
	}
	dups, err := b.coll.InsertMany(ctx, docs)
	for i, r := range batch {
		switch {
		case err != nil:
			r.done <- err
		case dups[i]:
			r.done <- fmt.Errorf("insert into %s: %w", b.coll.Name(), store.ErrDuplicateID)
		default:
			r.done <- nil
		}
	}
}

// batchContext lives until the latest deadline of the batch's requests (no
// deadline if one has none) and is not cancelled by any one of them: a
// caller that gives up does not fail the others' writes.
func batchContext(batch []*logReq) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.WithoutCancel(r.ctx))
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}
