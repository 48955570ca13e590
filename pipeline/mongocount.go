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

// counterID is the _id of the item counter of run runID in coll.
func counterID(runID, coll string) string { return runID + "/" + coll }

// ItemCount returns the number of items run runID wrote to the collection
// named coll, as counted in counters by a sink made with
// NewCountedMongoSink, and false when counters has no count for them (a run
// with no such sink). It reads one document by _id.
func ItemCount(ctx context.Context, counters *mongo.Collection, runID, coll string) (int64, bool, error) {
	var doc struct {
		Items int64 `bson:"items"`
	}
	err := counters.FindOne(ctx, bson.D{{Key: "_id", Value: counterID(runID, coll)}}).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read item count of run %s in %s: %w", runID, coll, err)
	}
	return doc.Items, true, nil
}

// NewCountedMongoSink is NewMongoSink that also keeps the number of items
// the run stored in coll in a document of counters (_id "<run>/<coll>"):
// Open creates it at 0 for a new run, and each Write adds the items it
// inserted (duplicates of items already stored are not counted again).
// Resuming a run that has no counter (one started by an earlier release)
// counts its items in coll once, with a scan, to start it.
//
// The count is exact unless the process dies between an insert and the
// counter's update: the items of that last batch are then stored but not
// counted (at most 500 per process killed).
func NewCountedMongoSink(coll, counters *mongo.Collection) Sink {
	return &mongoSink{coll: coll, counters: counters}
}

// openCounter creates or checks the counter at Open.
func (s *mongoSink) openCounter(ctx context.Context, runID string, resume bool) error {
	s.runID = runID
	id := counterID(runID, s.coll.Name())
	if resume {
		if _, ok, err := ItemCount(ctx, s.counters, runID, s.coll.Name()); err != nil || ok {
			return err
		}
	}
	var n int64
	if resume { // a run of an earlier release: count once
		var err error
		if n, err = s.coll.CountDocuments(ctx, bson.D{{Key: "run_id", Value: runID}}); err != nil {
			return fmt.Errorf("count items of run %s in %s: %w", runID, s.coll.Name(), err)
		}
	}
	_, err := s.counters.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "_id", Value: id}, {Key: "run_id", Value: runID}, {Key: "collection", Value: s.coll.Name()}, {Key: "items", Value: n}},
		options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("start item count of run %s in %s: %w", runID, s.coll.Name(), err)
	}
	return nil
}

// count adds n inserted items to the counter.
func (s *mongoSink) count(ctx context.Context, n int64) error {
	if s.counters == nil || n == 0 {
		return nil
	}
	_, err := s.counters.UpdateOne(ctx, bson.D{{Key: "_id", Value: counterID(s.runID, s.coll.Name())}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "items", Value: n}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("count %d items of run %s in %s: %w", n, s.runID, s.coll.Name(), err)
	}
	return nil
}
