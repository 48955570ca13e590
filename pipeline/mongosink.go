package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// mongoBatch bounds the documents sent in one insertMany (the driver splits
// further by message size).
const mongoBatch = 500

// Collection is what the mongodb sink needs of a store collection: batch
// inserts that report duplicate _ids, documents by _id, one count and the
// run_id index. *store.Collection has it; its errors wrap
// store.ErrNotFound (Get) and store.ErrDuplicateID (Insert).
type Collection interface {
	Name() string
	InsertMany(ctx context.Context, docs []any) (dups map[int]bool, err error)
	Insert(ctx context.Context, doc any) error
	Get(ctx context.Context, id string) (bson.Raw, error)
	Upsert(ctx context.Context, id string, doc any) error
	Count(ctx context.Context, filter any) (int64, error)
	EnsureIndex(ctx context.Context, name string, keys bson.D) error
}

var _ Collection = (*store.Collection)(nil)

// mongoSink writes items to a MongoDB collection, one document per item.
type mongoSink struct {
	coll       Collection
	counters   Collection // nil: no item counter (see NewCountedMongoSink)
	worker     string     // whose total the counter keeps
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
// Items are inserted in batches, unordered; a duplicate _id (the item was
// already written by this run, before a resume) is ignored, any other
// error is returned. Open makes sure of the index on run_id where the
// server uses secondary indexes (MongoDB), for queries by run in Compass
// or mongosh, and drops it elsewhere: the embedded store never uses it and
// would parse every inserted item to maintain it (Collection.EnsureIndex).
// Commit and Close do nothing: the caller owns the store.
func NewMongoSink(coll Collection) Sink {
	return NewCountedMongoSink(coll, nil, "")
}

// runIDIndex is the name of the index on run_id (MongoDB's default name for
// {run_id: 1}, the one earlier releases created on every store).
const runIDIndex = "run_id_1"

func (s *mongoSink) Open(ctx context.Context, runID string, resume bool) error {
	if err := s.coll.EnsureIndex(ctx, runIDIndex, bson.D{{Key: "run_id", Value: 1}}); err != nil {
		return fmt.Errorf("index items of %s by run: %w", s.coll.Name(), err)
	}
	if s.counters != nil {
		if err := s.openCounter(ctx, runID, resume); err != nil {
			return err
		}
	}
	s.open.Store(true)
	return nil
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
		dups, err := s.coll.InsertMany(ctx, docs)
		if err != nil {
			return fmt.Errorf("insert %d items into %s: %w", len(batch), s.coll.Name(), err)
		}
		s.duplicates.Add(int64(len(dups)))
		s.written.Add(int64(len(batch) - len(dups)))
		if err := s.count(ctx, int64(len(batch)-len(dups))); err != nil {
			return err
		}
	}
	return nil
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
