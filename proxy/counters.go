package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/cache"
)

// CountersCollection holds cumulative counters of long-running cache users
// (the proxy), one document per name, so `cache stats` can show them.
const CountersCollection = "counters"

// CounterSink adds a Transport's counters to a document in the counters
// collection of the cache database. Flush writes only what changed since
// the last flush, so several proxies may share one document. It is safe for
// concurrent use.
type CounterSink struct {
	coll  *mongo.Collection
	id    string
	stats func() cache.Stats
	mu    sync.Mutex
	last  cache.Stats
}

// NewCounterSink returns a sink for the document _id name in db.
func NewCounterSink(db *mongo.Database, name string, stats func() cache.Stats) *CounterSink {
	return &CounterSink{coll: db.Collection(CountersCollection), id: name, stats: stats}
}

// Flush adds the counters' growth since the previous Flush to the stored
// document.
func (s *CounterSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.stats()
	d := bson.D{
		{Key: "hits", Value: now.Hits - s.last.Hits},
		{Key: "misses", Value: now.Misses - s.last.Misses},
		{Key: "revalidated", Value: now.Revalidated - s.last.Revalidated},
		{Key: "stale", Value: now.Stale - s.last.Stale},
		{Key: "network_bytes", Value: now.NetworkBytes - s.last.NetworkBytes},
		{Key: "saved_bytes", Value: now.SavedBytes - s.last.SavedBytes},
		{Key: "store_errors", Value: now.StoreErrors - s.last.StoreErrors},
	}
	if now == s.last {
		return nil
	}
	_, err := s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: s.id}},
		bson.D{{Key: "$inc", Value: d}, {Key: "$set", Value: bson.D{{Key: "updated_at", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save counters %s: %w", s.id, err)
	}
	s.last = now
	return nil
}
