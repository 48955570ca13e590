package parses

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// sweepBatch is how many cache keys one call of Sweep's live asks about.
const sweepBatch = 256

// Sweep deletes the records that are no use any more: made before cutoff
// (the cache's TTL ago) for a cache entry that is gone. A record is reused
// only for the body it was made from, which a page whose entry the TTL
// deleted gets again only by chance; a page still cached keeps its record
// however old (a page that never changes is parsed once). live reports
// which of a batch of cache keys still have an entry. A document that is
// not a record (no cache key, no date) counts as old and gone. It returns
// how many records it deleted.
//
// It reads the whole collection, so it runs beside the runs (the
// scheduler's sweeper, `cache purge --expired`), never in a run's path. A
// record saved again while Sweep runs (its page parsed anew) may be
// deleted; it costs that page one parse.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time, live func(ctx context.Context, keys []string) (map[string]bool, error)) (int64, error) {
	type old struct{ id, key string }
	var olds []old
	err := s.coll.ScanIDPrefix(ctx, "", func(raw bson.Raw) error {
		id, ok := raw.Lookup("_id").StringValueOK()
		if !ok {
			return nil
		}
		if at, ok := raw.Lookup("parsed_at").TimeOK(); ok && !at.Before(cutoff) {
			return nil
		}
		key, _ := raw.Lookup("cache_key").StringValueOK()
		olds = append(olds, old{id, key})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep parse records: %w", err)
	}
	var deleted int64
	for start := 0; start < len(olds); start += sweepBatch {
		batch := olds[start:min(start+sweepBatch, len(olds))]
		keys := make([]string, 0, len(batch))
		for _, o := range batch {
			if o.key != "" {
				keys = append(keys, o.key)
			}
		}
		alive, err := live(ctx, keys)
		if err != nil {
			return deleted, fmt.Errorf("sweep parse records: %w", err)
		}
		for _, o := range batch {
			if o.key != "" && alive[o.key] {
				continue
			}
			if err := s.coll.Delete(ctx, o.id); err != nil {
				return deleted, fmt.Errorf("sweep parse records: %w", err)
			}
			deleted++
		}
	}
	return deleted, nil
}
