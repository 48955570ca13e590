package pipeline

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
func ItemCount(ctx context.Context, counters *mongo.Collection, runID, coll string, workers []string) (int64, bool, error) {
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
func readCount(ctx context.Context, counters *mongo.Collection, id string) (int64, bool, error) {
	var doc struct {
		Items int64 `bson:"items"`
	}
	err := counters.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read item count %s: %w", id, err)
	}
	return doc.Items, true, nil
}

// MongoSinkOptions configures NewCountedMongoSink. The zero value is
// NewMongoSink's: no counter, no index.
type MongoSinkOptions struct {
	// Counters is the collection that counts the items each run stored
	// (see ItemCount). If nil, nothing is counted.
	Counters *mongo.Collection

	// Worker names whose total the counter keeps (one per process).
	Worker string

	// IndexRunID makes Open create the index {run_id: 1} (run_id_1) on the
	// items collection; without it Open drops that index if it is there.
	// Set it where the server uses secondary indexes
	// (store.Capabilities.FilterPushdown: MongoDB), for queries by run in
	// Compass or mongosh and the one count of a resumed run of an earlier
	// release. The embedded store never uses it (it scans for every filter
	// but _id) and would parse every inserted item to maintain it.
	IndexRunID bool
}

// NewCountedMongoSink is NewMongoSink that also counts the items the run
// stored in coll, in documents of o.Counters: a base count written at the
// run's first Open (0 for a new run; resuming a run of an earlier release,
// which has none, counts its items in coll once, with a scan), and
// o.Worker's own total, which each Write raises by the items it inserted
// (duplicates of items already stored are not counted again). ItemCount
// adds them up.
//
// The count is exact unless the process dies between an insert and the
// counter's update: the items of that last batch are then stored but not
// counted (at most 500 per process killed).
func NewCountedMongoSink(coll *mongo.Collection, o MongoSinkOptions) Sink {
	return &mongoSink{coll: coll, counters: o.Counters, worker: o.Worker, indexRunID: o.IndexRunID}
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
			if n, err = s.coll.CountDocuments(ctx, bson.D{{Key: "run_id", Value: runID}}); err != nil {
				return fmt.Errorf("count items of run %s in %s: %w", runID, coll, err)
			}
		}
		_, err = s.counters.InsertOne(ctx, bson.D{{Key: "_id", Value: counterID(runID, coll)},
			{Key: "run_id", Value: runID}, {Key: "collection", Value: coll}, {Key: "items", Value: n}})
		if err != nil && !mongo.IsDuplicateKeyError(err) {
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
	_, err := s.counters.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "_id", Value: id}, {Key: "run_id", Value: s.runID}, {Key: "collection", Value: s.coll.Name()},
			{Key: "worker", Value: s.worker}, {Key: "items", Value: s.counted}},
		options.Replace().SetUpsert(true))
	if err != nil {
		s.counted -= n
		return fmt.Errorf("count %d items of run %s in %s: %w", n, s.runID, s.coll.Name(), err)
	}
	return nil
}
