package proxy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
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

// counterStore is what the proxy's counters need of the counters
// collection (*store.Collection implements it).
type counterStore interface {
	// Inc adds inc's fields to the document with _id id and sets set's,
	// creating it when there is none; concurrent Incs in one process never
	// lose an increment.
	Inc(ctx context.Context, id string, inc, set any) (bson.Raw, error)
	// All decodes every document filter matches into out.
	All(ctx context.Context, filter any, opts store.FindOptions, out any) error
}

var _ counterStore = (*store.Collection)(nil)

// ReadCounters returns every document of the counters collection of
// database db of st, by name (a handful of documents).
func ReadCounters(ctx context.Context, st *store.Store, db string) (map[string]Counters, error) {
	return readCounters(ctx, st.Collection(db, CountersCollection))
}

func readCounters(ctx context.Context, coll counterStore) (map[string]Counters, error) {
	var docs []struct {
		ID       string   `bson:"_id"`
		Counters Counters `bson:",inline"`
	}
	if err := coll.All(ctx, bson.D{}, store.FindOptions{}, &docs); err != nil {
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
	coll  counterStore
	id    string
	stats func() cache.Stats
	mu    sync.Mutex
	last  Counters
}

// NewCounterSink returns a sink for the document _id name in the counters
// collection of database db of st.
func NewCounterSink(st *store.Store, db, name string, stats func() cache.Stats) *CounterSink {
	return &CounterSink{coll: st.Collection(db, CountersCollection), id: name, stats: stats}
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
	_, err := s.coll.Inc(ctx, s.id, now.minus(s.last), bson.D{{Key: "updated_at", Value: time.Now().UTC()}})
	if err != nil {
		return fmt.Errorf("save counters %s: %w", s.id, err)
	}
	s.last = now
	return nil
}
