package parses

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// sweepBatch is how many cache keys one call of Sweep's live asks about.
const sweepBatch = 256

// Sweep deletes the records that are no use any more, of those made
// before cutoff (the cache's TTL ago): a record whose cache entry is gone
// (live reports which of a batch of cache keys still have an entry), and,
// when inUse is not nil, a record made under rules no run uses any more
// (inUse reports whether some run since cutoff used them). A record is
// reused only for the body it was made from and under its rules, which a
// page whose entry the TTL deleted gets again only by chance; a page still
// cached under rules in use keeps its record however old (a page that
// never changes is parsed once). A document that is not a record (no cache
// key, no date) counts as old and gone. It returns how many records it
// deleted.
//
// It reads the whole collection, so it runs beside the runs (the
// scheduler's sweeper, `cache purge --expired`), never in a run's path. A
// record saved again while Sweep runs (its page parsed anew) may be
// deleted; it costs that page one parse.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time, live func(ctx context.Context, keys []string) (map[string]bool, error), inUse func(rules string) bool) (int64, error) {
	// An old record, and the cache key whose entry keeps it (empty when
	// nothing does: not a record, or made under rules no longer used).
	// The old records are judged a batch at a time during the scan, so
	// that only those to delete are kept (live reads another collection,
	// which a scan allows; the deletes wait for its end).
	type old struct{ id, key string }
	var batch []old
	var drop []string
	judge := func() error {
		keys := make([]string, 0, len(batch))
		for _, o := range batch {
			if o.key != "" {
				keys = append(keys, o.key)
			}
		}
		alive, err := live(ctx, keys)
		if err != nil {
			return err
		}
		for _, o := range batch {
			if o.key == "" || !alive[o.key] {
				drop = append(drop, o.id)
			}
		}
		batch = batch[:0]
		return nil
	}
	err := s.coll.ScanIDPrefix(ctx, "", func(raw bson.Raw) error {
		id, ok := raw.Lookup("_id").StringValueOK()
		if !ok {
			return nil
		}
		if at, ok := raw.Lookup("parsed_at").TimeOK(); ok && !at.Before(cutoff) {
			return nil
		}
		key, _ := raw.Lookup("cache_key").StringValueOK()
		if rules, _ := raw.Lookup("rules").StringValueOK(); inUse != nil && !inUse(rules) {
			key = "" // its rules are gone, whatever its page
		}
		if batch = append(batch, old{id, key}); len(batch) == sweepBatch {
			return judge()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = judge()
	}
	if err != nil {
		return 0, fmt.Errorf("sweep parse records: %w", err)
	}
	var deleted int64
	for _, id := range drop {
		if err := s.coll.Delete(ctx, id); err != nil {
			return deleted, fmt.Errorf("sweep parse records: %w", err)
		}
		deleted++
	}
	return deleted, nil
}
