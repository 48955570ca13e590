package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// deleteBatch is how many _ids one deleteMany names. The embedded server
// pushes neither `_id: {$in: …}` nor even a single-_id delete down to
// SQLite: every delete command scans the collection (measured: deleteOne
// by _id 134 ms per document at 1000 × 50 KB; deleteMany with $in of 480
// _ids 1.5 s), so fewer, larger batches are much cheaper than one delete
// per entry, while a bound keeps each command small.
var deleteBatch = 1000 // a var so tests can make batches small

// Sweep deletes the entries whose effective validated_at (the later of
// the response's and its revalidation's) is older than the TTL, with their
// revalidations and the redirects that lead to them. It does so only when
// the TTL is enforced by the sweeper (MechanismSweeper): with a TTL index,
// or with no TTL, it returns 0 and does nothing. `crawlcache schedule` calls
// it beside the runs (never in a run's path: it scans the whole cache). It
// returns the number of responses deleted.
//
// A sweep scans the responses collection, which on the embedded server
// decodes every document; it records when the oldest entry it kept will
// expire (TTLInfo.NextSweep), and until then Sweep returns at once.
//
// An entry revalidated while Sweep runs may still be deleted (it is then
// fetched again); an entry replaced by a new 200 in that window is kept.
func (a *Admin) Sweep(ctx context.Context) (int64, error) {
	info, err := a.TTL(ctx)
	if err != nil {
		return 0, err
	}
	if !info.Set || info.Mechanism != MechanismSweeper || a.now().Before(info.NextSweep) {
		return 0, nil
	}
	return a.deleteExpired(ctx, info)
}

// deleteExpired deletes everything older than the TTL in info, whatever
// the mechanism, and records the sweep when the sweeper is in force.
func (a *Admin) deleteExpired(ctx context.Context, info TTLInfo) (int64, error) {
	now := a.now()
	cutoff := now.Add(-info.TTL)
	revs, err := a.scanRevalidations(ctx)
	if err != nil {
		return 0, err
	}
	// Only responses whose own validated_at is before the cutoff can be
	// expired; with a TTL index the filter uses the index. The sweeper also
	// reads the entries that expire within the horizon, to learn when the
	// next sweep has work: the embedded server scans the collection for any
	// filter, but each document it returns costs more (measured at 400 × 50
	// KB: 0.7 s returning none, 1.2 s returning all).
	old := bson.D{{Key: "validated_at", Value: bson.D{{Key: "$lt", Value: cutoff}}}}
	filter, oldestKept := old, now
	if info.Mechanism == MechanismSweeper {
		// Entries not returned are newer than this; so is anything written
		// after the scan (horizon < TTL).
		oldestKept = cutoff.Add(sweepHorizon(info.TTL))
		filter = bson.D{{Key: "validated_at", Value: bson.D{{Key: "$lt", Value: oldestKept}}}}
	}
	var ids []string
	err = a.scanEntries(ctx, filter, revs, func(e EntrySummary) {
		switch {
		case e.ValidatedAt.Before(cutoff):
			ids = append(ids, e.Key)
		case e.ValidatedAt.Before(oldestKept):
			oldestKept = e.ValidatedAt
		}
	})
	if err != nil {
		return 0, err
	}
	if a.afterScan != nil {
		a.afterScan()
	}
	// The scans took a while (the embedded server reads every response):
	// a run may have confirmed some of these entries with a 304 since.
	if ids, err = a.stillExpired(ctx, ids, cutoff); err != nil {
		return 0, err
	}
	// The guard keeps a response that a new 200 replaced since the scan.
	n, err := a.deleteEntries(ctx, ids, old)
	if err != nil {
		return n, err
	}
	// Revalidations older than the cutoff say nothing a reader would use
	// (their response is gone or newer), and redirect hops expire from
	// when they were fetched.
	if _, err := a.revalidations.DeleteMany(ctx, old); err != nil {
		return n, fmt.Errorf("delete expired revalidations: %w", err)
	}
	if _, err := a.pages.DeleteMany(ctx, old); err != nil {
		return n, fmt.Errorf("delete expired page summaries: %w", err)
	}
	oldRedirects := bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: cutoff}}}}
	if _, err := a.redirects.DeleteMany(ctx, oldRedirects); err != nil {
		return n, fmt.Errorf("delete expired redirects: %w", err)
	}
	if info.Mechanism == MechanismSweeper {
		if err := a.recordSweep(ctx, info.TTL, now, oldestKept.Add(info.TTL), n); err != nil {
			return n, err
		}
	}
	return n, nil
}

// stillExpired returns the ids whose revalidation, read again now (by
// _id, a batch at a time), is still older than cutoff or absent: an entry
// a 304 confirmed after the sweep's scan is kept. What is left between
// this read and the delete is milliseconds instead of the scans' time.
func (a *Admin) stillExpired(ctx context.Context, ids []string, cutoff time.Time) ([]string, error) {
	kept := ids[:0]
	for start := 0; start < len(ids); start += deleteBatch {
		batch := ids[start:min(start+deleteBatch, len(ids))]
		ls := make([]store.Lookup, len(batch))
		for i, id := range batch {
			ls[i] = store.Lookup{Coll: a.revalidations, ID: id}
		}
		store.GetAll(ctx, ls)
		for i, l := range ls {
			var rev struct {
				ValidatedAt time.Time `bson:"validated_at"`
			}
			switch {
			case errors.Is(l.Err, store.ErrNotFound):
			case l.Err != nil:
				return nil, fmt.Errorf("read revalidation %s again before deleting it: %w", l.ID, l.Err)
			case bson.Unmarshal(l.Raw, &rev) == nil && !rev.ValidatedAt.Before(cutoff):
				continue // confirmed since the scan
			}
			kept = append(kept, batch[i])
		}
	}
	return kept, nil
}

// sweepHorizon is how far past the cutoff a sweep looks for the oldest
// entry it keeps: half the TTL, at most a day. Sweeps are then skipped for
// up to that long when nothing expires sooner.
func sweepHorizon(ttl time.Duration) time.Duration {
	return min(ttl/2, 24*time.Hour)
}

// deleteEntries deletes the responses with the given keys (that also
// match guard, if not nil), their revalidations and Pages and every
// redirect that leads to one of them, directly or through other redirects. It returns
// the number of responses deleted.
func (a *Admin) deleteEntries(ctx context.Context, ids []string, guard bson.D) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	for start := 0; start < len(ids); start += deleteBatch {
		batch := ids[start:min(start+deleteBatch, len(ids))]
		in := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}}
		// Pages first: a Page names its body's hash (head.go) and must
		// not outlive its response if the sweep stops here. A Page's
		// validated_at is effective: the guard keeps the Page of an entry
		// replaced or revalidated since the scan.
		if _, err := a.pages.DeleteMany(ctx, append(bson.D{in[0]}, guard...)); err != nil {
			return n, fmt.Errorf("delete page summaries: %w", err)
		}
		deleted, err := a.responses.DeleteMany(ctx, append(in, guard...))
		if err != nil {
			return n, fmt.Errorf("delete cached responses: %w", err)
		}
		n += deleted
		// The guard keeps a revalidation written since (it then
		// outlives its response until a later sweep, unused).
		if _, err := a.revalidations.DeleteMany(ctx, append(in, guard...)); err != nil {
			return n, fmt.Errorf("delete revalidations: %w", err)
		}
	}
	if err := a.deleteRedirectsTo(ctx, ids); err != nil {
		return n, err
	}
	if err := a.forgetVariants(ctx, ids); err != nil {
		return n, err
	}
	return n, nil
}

// forgetVariants removes the deleted keys from the variants documents
// that list them, and deletes variants documents left with none (their
// URL then has no variant stored). Variants documents are small, so one
// scan is cheap.
func (a *Admin) forgetVariants(ctx context.Context, deleted []string) error {
	var all []struct {
		ID   string   `bson:"_id"`
		Keys []string `bson:"keys"`
	}
	proj := store.FindOptions{Projection: bson.D{{Key: "_id", Value: 1}, {Key: "keys", Value: 1}}}
	if err := a.variants.All(ctx, bson.D{}, proj, &all); err != nil {
		return fmt.Errorf("scan variants: %w", err)
	}
	gone := make(map[string]bool, len(deleted))
	for _, id := range deleted {
		gone[id] = true
	}
	var empty []string
	for _, v := range all {
		var removed []string
		for _, k := range v.Keys {
			if gone[k] {
				removed = append(removed, k)
			}
		}
		switch {
		case len(removed) == 0:
		case len(removed) == len(v.Keys):
			empty = append(empty, v.ID)
		default:
			// $pullAll, not a replace: a variant listed meanwhile stays.
			update := bson.D{{Key: "$pullAll", Value: bson.D{{Key: "keys", Value: removed}}}}
			if _, err := a.variants.UpdateOne(ctx, bson.D{{Key: "_id", Value: v.ID}}, update, false); err != nil {
				return fmt.Errorf("update variants %s: %w", v.ID, err)
			}
		}
	}
	// A variant stored while its variants document is deleted here is no
	// longer reachable; the next request for it refetches it (Since).
	for start := 0; start < len(empty); start += deleteBatch {
		batch := empty[start:min(start+deleteBatch, len(empty))]
		if _, err := a.variants.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}}); err != nil {
			return fmt.Errorf("delete variants: %w", err)
		}
	}
	return nil
}

// deleteRedirectsTo deletes the redirects whose chain ends in one of the
// deleted keys. Redirect documents are small, so one scan is cheap.
func (a *Admin) deleteRedirectsTo(ctx context.Context, deleted []string) error {
	var hops []struct {
		ID     string `bson:"_id"`
		Target string `bson:"target"`
	}
	proj := store.FindOptions{Projection: bson.D{{Key: "_id", Value: 1}, {Key: "target", Value: 1}}}
	if err := a.redirects.All(ctx, bson.D{}, proj, &hops); err != nil {
		return fmt.Errorf("scan redirects: %w", err)
	}
	gone := make(map[string]bool, len(deleted))
	for _, id := range deleted {
		gone[id] = true
	}
	// A chain a → b → c loses a and b when c goes: repeat until no hop is
	// added (chains are short; a cycle stops because gone only grows).
	var victims []string
	for changed := true; changed; {
		changed = false
		for _, h := range hops {
			if !gone[h.ID] && gone[h.Target] {
				gone[h.ID], changed = true, true
				victims = append(victims, h.ID)
			}
		}
	}
	for start := 0; start < len(victims); start += deleteBatch {
		batch := victims[start:min(start+deleteBatch, len(victims))]
		if _, err := a.redirects.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}}); err != nil {
			return fmt.Errorf("delete redirects: %w", err)
		}
	}
	return nil
}

// revMeta is the part of a Revalidation that listings need.
type revMeta struct {
	ValidatedAt time.Time
	Expires     *time.Time
}

// scanRevalidations reads every revalidation (small documents) by _id.
func (a *Admin) scanRevalidations(ctx context.Context) (map[string]revMeta, error) {
	proj := bson.D{{Key: "_id", Value: 1}, {Key: "validated_at", Value: 1}, {Key: "expires", Value: 1}}
	revs := make(map[string]revMeta)
	err := a.revalidations.Scan(ctx, bson.D{}, store.FindOptions{Projection: proj}, func(raw bson.Raw) error {
		var r struct {
			ID          string     `bson:"_id"`
			ValidatedAt time.Time  `bson:"validated_at"`
			Expires     *time.Time `bson:"expires"`
		}
		if err := bson.Unmarshal(raw, &r); err != nil {
			return nil // a corrupt revalidation is ignored, as the transport does
		}
		revs[r.ID] = revMeta{ValidatedAt: r.ValidatedAt, Expires: r.Expires}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan revalidations: %w", err)
	}
	return revs, nil
}

// entryProjection is every response field but the body (and the request
// and headers): listings never need it. The embedded server still decodes
// whole documents, but less crosses the wire, and MongoDB reads less.
var entryProjection = bson.D{
	{Key: "_id", Value: 1}, {Key: "url", Value: 1}, {Key: "method", Value: 1},
	{Key: "status", Value: 1}, {Key: "content_type", Value: 1}, {Key: "size", Value: 1},
	{Key: "created_at", Value: 1}, {Key: "validated_at", Value: 1}, {Key: "expires", Value: 1},
	{Key: "vary", Value: 1}, {Key: "credential", Value: 1}, {Key: "request", Value: 1},
}

// scanEntries calls fn for each response matching filter, with its
// effective validated_at and expires (taken from revs when the
// revalidation is newer, as readers do). It streams: a large cache is
// never held in memory. Documents that do not decode are skipped (the
// transport replaces them on its next fetch).
func (a *Admin) scanEntries(ctx context.Context, filter bson.D, revs map[string]revMeta, fn func(EntrySummary)) error {
	if filter == nil {
		filter = bson.D{}
	}
	err := a.responses.Scan(ctx, filter, store.FindOptions{Projection: entryProjection}, func(raw bson.Raw) error {
		var d struct {
			ID          string          `bson:"_id"`
			URL         string          `bson:"url"`
			Method      string          `bson:"method"`
			Status      int             `bson:"status"`
			ContentType string          `bson:"content_type"`
			Size        int64           `bson:"size"`
			CreatedAt   time.Time       `bson:"created_at"`
			ValidatedAt time.Time       `bson:"validated_at"`
			Expires     *time.Time      `bson:"expires"`
			Vary        bson.M          `bson:"vary"`
			Credential  *CredentialInfo `bson:"credential"`
			Request     RequestInfo     `bson:"request"`
		}
		if err := bson.Unmarshal(raw, &d); err != nil {
			return nil
		}
		e := EntrySummary{
			Key: d.ID, URL: d.URL, Method: d.Method, Status: d.Status,
			ContentType: d.ContentType, Size: d.Size,
			CreatedAt: d.CreatedAt, ValidatedAt: d.ValidatedAt, Expires: d.Expires,
			Credential: CredentialOf(&Entry{Credential: d.Credential, Request: d.Request}),
		}
		if len(d.Vary) > 0 {
			e.Vary = make(map[string]string, len(d.Vary))
			for k, v := range d.Vary {
				e.Vary[unescapeName(k)], _ = headerString(v)
			}
		}
		if r, ok := revs[d.ID]; ok && r.ValidatedAt.After(d.ValidatedAt) {
			e.ValidatedAt, e.Expires, e.Revalidated = r.ValidatedAt, r.Expires, true
		}
		fn(e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan cached responses: %w", err)
	}
	return nil
}

// dataCollections lists the cache's data collections (not settings).
func (a *Admin) dataCollections() []collection {
	return []collection{a.responses, a.revalidations, a.redirects, a.variants, a.pages}
}
