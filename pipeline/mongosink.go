package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/store"
)

// mongoBatch bounds the documents sent in one insertMany (the driver splits
// further by message size).
const mongoBatch = 500

// duplicateKey is the server's error code for an _id that already exists.
const duplicateKey = 11000

// mongoSink writes items to a MongoDB collection, one document per item.
type mongoSink struct {
	coll       *mongo.Collection
	counters   *mongo.Collection // nil: no item counter (see NewCountedMongoSink)
	worker     string            // whose total the counter keeps
	indexRunID bool              // see MongoSinkOptions
	runID      string
	countMu    sync.Mutex
	counted    int64 // this worker's total for the run, as last written
	open       atomic.Bool
	written    atomic.Int64
	duplicates atomic.Int64
}

var _ Sink = (*mongoSink)(nil)

// NewMongoSink returns a Sink that inserts one document per item into coll,
// with _id = Item.ID and the fields flattened after the metadata:
// {_id, run_id, job, url, index, fetched_at (a date), served, <fields>...}.
// A field without a match is null; an All field is an array.
//
// Items are inserted in batches with insertMany{ordered: false}; a
// duplicate _id (code 11000: the item was already written by this run,
// before a resume) is ignored, any other error is returned. It creates no
// index (see MongoSinkOptions.IndexRunID). Commit and Close do nothing:
// the caller owns the client.
func NewMongoSink(coll *mongo.Collection) Sink {
	return NewCountedMongoSink(coll, MongoSinkOptions{})
}

// runIDIndex is the name of the index on run_id (MongoDB's default name for
// {run_id: 1}, the one earlier releases created everywhere).
const runIDIndex = "run_id_1"

func (s *mongoSink) Open(ctx context.Context, runID string, resume bool) error {
	if err := s.ensureIndex(ctx); err != nil {
		return err
	}
	if s.counters != nil {
		if err := s.openCounter(ctx, runID, resume); err != nil {
			return err
		}
	}
	s.open.Store(true)
	return nil
}

// ensureIndex creates the run_id index with IndexRunID and otherwise drops
// it if there (earlier releases created it on every store).
func (s *mongoSink) ensureIndex(ctx context.Context) error {
	if s.indexRunID {
		_, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "run_id", Value: 1}}, Options: options.Index().SetName(runIDIndex)})
		if err != nil {
			return fmt.Errorf("create index on %s.run_id: %w", s.coll.Name(), err)
		}
		return nil
	}
	return store.DropIndex(ctx, s.coll, runIDIndex)
}

func (s *mongoSink) Write(ctx context.Context, items []Item) error {
	if !s.open.Load() {
		return fmt.Errorf("write items to %s: %w", s.coll.Name(), ErrNotOpen)
	}
	for start := 0; start < len(items); start += mongoBatch {
		batch := items[start:min(start+mongoBatch, len(items))]
		docs := make([]any, len(batch))
		for i, it := range batch {
			docs[i] = itemDocument(it)
		}
		_, err := s.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		dups, err := onlyDuplicates(err)
		if err != nil {
			return fmt.Errorf("insert %d items into %s: %w", len(batch), s.coll.Name(), err)
		}
		s.duplicates.Add(int64(dups))
		s.written.Add(int64(len(batch) - dups))
		if err := s.count(ctx, int64(len(batch)-dups)); err != nil {
			return err
		}
	}
	return nil
}

// onlyDuplicates returns how many writes failed with a duplicate key, and
// err itself if anything else went wrong.
func onlyDuplicates(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return 0, err
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != duplicateKey {
			return 0, err
		}
	}
	return len(bwe.WriteErrors), nil
}

// itemDocument is the stored form of an item.
func itemDocument(it Item) bson.D {
	d := make(bson.D, 0, len(reservedKeys)+len(it.Fields))
	d = append(d,
		bson.E{Key: "_id", Value: it.ID},
		bson.E{Key: "run_id", Value: it.RunID},
		bson.E{Key: "job", Value: it.Job},
		bson.E{Key: "url", Value: it.URL},
		bson.E{Key: "index", Value: it.Index},
		bson.E{Key: "fetched_at", Value: it.FetchedAt},
		bson.E{Key: "served", Value: it.Served},
	)
	for _, kv := range it.Fields {
		d = append(d, bson.E{Key: kv.Key, Value: kv.Value})
	}
	return d
}

func (s *mongoSink) Commit(ctx context.Context) error {
	if !s.open.Load() {
		return fmt.Errorf("commit items to %s: %w", s.coll.Name(), ErrNotOpen)
	}
	s.open.Store(false)
	return nil
}

func (s *mongoSink) Close() error {
	s.open.Store(false)
	return nil
}
