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

// Counters is one document of the counters collection.
type Counters struct {
	Hits         int64     `bson:"hits" json:"hits"`
	Misses       int64     `bson:"misses" json:"misses"`
	Revalidated  int64     `bson:"revalidated" json:"revalidated"`
	Stale        int64     `bson:"stale" json:"stale"`
	NetworkBytes int64     `bson:"network_bytes" json:"network_bytes"`
	SavedBytes   int64     `bson:"saved_bytes" json:"saved_bytes"`
	StoreErrors  int64     `bson:"store_errors" json:"store_errors"`
	UpdatedAt    time.Time `bson:"updated_at,omitempty" json:"updated_at"`
}

func countersOf(s cache.Stats) Counters {
	return Counters{Hits: s.Hits, Misses: s.Misses, Revalidated: s.Revalidated, Stale: s.Stale,
		NetworkBytes: s.NetworkBytes, SavedBytes: s.SavedBytes, StoreErrors: s.StoreErrors}
}

func (c Counters) minus(o Counters) Counters {
	return Counters{Hits: c.Hits - o.Hits, Misses: c.Misses - o.Misses, Revalidated: c.Revalidated - o.Revalidated,
		Stale: c.Stale - o.Stale, NetworkBytes: c.NetworkBytes - o.NetworkBytes, SavedBytes: c.SavedBytes - o.SavedBytes,
		StoreErrors: c.StoreErrors - o.StoreErrors}
}

// ReadCounters returns every document of the counters collection of db, by
// name (a handful of documents).
func ReadCounters(ctx context.Context, db *mongo.Database) (map[string]Counters, error) {
	cur, err := db.Collection(CountersCollection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	var docs []struct {
		ID       string   `bson:"_id"`
		Counters Counters `bson:",inline"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := make(map[string]Counters, len(docs))
	for _, d := range docs {
		out[d.ID] = d.Counters
	}
	return out, nil
}

// CounterSink adds a Transport's counters to a document in the counters
// collection of the cache database. Flush writes only what changed since
// the last flush, so several proxies may share one document. It is safe for
// concurrent use.
type CounterSink struct {
	coll  *mongo.Collection
	id    string
	stats func() cache.Stats
	mu    sync.Mutex
	last  Counters
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
	now := countersOf(s.stats())
	if now == s.last {
		return nil
	}
	// UpdatedAt is zero in the delta, so omitempty leaves it out of $inc.
	_, err := s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: s.id}},
		bson.D{{Key: "$inc", Value: now.minus(s.last)}, {Key: "$set", Value: bson.D{{Key: "updated_at", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("save counters %s: %w", s.id, err)
	}
	s.last = now
	return nil
}
