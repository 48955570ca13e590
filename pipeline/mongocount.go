package pipeline

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// The item counter of a run's mongodb output is one small document, found by
// _id, so that the end of a run reads its count without counting the
// collection: a count by run_id scans every item of every run on a server
// that pushes down only _id equality (11.9 s at 100k items on the embedded
// store, growing with every run).

// counterID is the _id of the base count of run runID in coll: the items
// stored before any counter existed (a run of an earlier release resumed),
// else 0. It is written once and never updated.
func counterID(runID, coll string) string { return runID + "/" + coll }

// workerCounterID is the _id of the items worker stored for run runID in
// coll. Only that worker writes it, with its absolute total: increments of
// one shared document are lost when workers update it at once on a server
// whose updates read, then rewrite the document (FerretDB).
func workerCounterID(runID, coll, worker string) string {
	return runID + "/" + coll + "/" + worker
}

// ItemCount returns the number of items run runID wrote to the collection
// named coll, as counted in counters by the sinks made with
// NewCountedMongoSink by the run's workers, and false when counters has no
// count for the run (a run with no such sink). It reads one document by _id
// per worker: never the items.
func ItemCount(ctx context.Context, counters Collection, runID, coll string, workers []string) (int64, bool, error) {
	base, ok, err := readCount(ctx, counters, counterID(runID, coll))
	if err != nil || !ok {
		return 0, false, err
	}
	total := base
	for _, w := range workers {
		n, _, err := readCount(ctx, counters, workerCounterID(runID, coll, w))
		if err != nil {
			return 0, false, err
		}
		total += n
	}
	return total, true, nil
}

// readCount reads the items field of counter id.
func readCount(ctx context.Context, counters Collection, id string) (int64, bool, error) {
	var doc struct {
		Items int64 `bson:"items"`
	}
	raw, err := counters.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read item count %s: %w", id, err)
	}
	if err := bson.Unmarshal(raw, &doc); err != nil {
		return 0, false, fmt.Errorf("read item count %s: %w", id, err)
	}
	return doc.Items, true, nil
}

// NewCountedMongoSink is NewMongoSink that also counts the items the run
// stored in coll, in documents of counters: a base count written at the
// run's first Open (0 for a new run; resuming a run of an earlier release,
// which has none, counts its items in coll once, with a scan), and
// worker's own total, which each Write raises by the items it inserted
// (duplicates of items already stored are not counted again). ItemCount
// adds them up. With counters nil it is NewMongoSink.
//
// The count is exact unless the process dies between an insert and the
// counter's update: the items of that last batch are then stored but not
// counted (at most 500 per process killed).
func NewCountedMongoSink(coll, counters Collection, worker string) Sink {
	return &mongoSink{coll: coll, counters: counters, worker: worker}
}

// openCounter makes sure the run's base count exists and loads this
// worker's total, never resetting either: workers joining a run open their
// sinks while others already count. Two openers racing to create the base
// both succeed (the loser's insert is a duplicate key: the base is there).
func (s *mongoSink) openCounter(ctx context.Context, runID string, resume bool) error {
	s.runID = runID
	coll := s.coll.Name()
	_, ok, err := readCount(ctx, s.counters, counterID(runID, coll))
	if err != nil {
		return err
	}
	if !ok {
		var n int64
		if resume { // a run of an earlier release: count once
			if n, err = s.coll.Count(ctx, bson.D{{Key: "run_id", Value: runID}}); err != nil {
				return fmt.Errorf("count items of run %s in %s: %w", runID, coll, err)
			}
		}
		err = s.counters.Insert(ctx, bson.D{{Key: "_id", Value: counterID(runID, coll)},
			{Key: "run_id", Value: runID}, {Key: "collection", Value: coll}, {Key: "items", Value: n}})
		if err != nil && !errors.Is(err, store.ErrDuplicateID) {
			return fmt.Errorf("start item count of run %s in %s: %w", runID, coll, err)
		}
	}
	own, _, err := readCount(ctx, s.counters, workerCounterID(runID, coll, s.worker))
	if err != nil {
		return err
	}
	s.countMu.Lock()
	s.counted = own
	s.countMu.Unlock()
	return nil
}

// count adds n inserted items to this worker's total and writes the total.
func (s *mongoSink) count(ctx context.Context, n int64) error {
	if s.counters == nil || n == 0 {
		return nil
	}
	s.countMu.Lock() // totals are written in the order they are reached
	defer s.countMu.Unlock()
	s.counted += n
	id := workerCounterID(s.runID, s.coll.Name(), s.worker)
	err := s.counters.Upsert(ctx, id,
		bson.D{{Key: "_id", Value: id}, {Key: "run_id", Value: s.runID}, {Key: "collection", Value: s.coll.Name()},
			{Key: "worker", Value: s.worker}, {Key: "items", Value: s.counted}})
	if err != nil {
		s.counted -= n
		return fmt.Errorf("count %d items of run %s in %s: %w", n, s.runID, s.coll.Name(), err)
	}
	return nil
}
