package commands

import (
	"context"
	"log/slog"
	"time"

	"crawlcache/cache"
	"crawlcache/jobs"
	"crawlcache/parses"
	"crawlcache/store"
)

// sweepEvery is how often `schedule` asks whether a sweep of expired cache
// entries is due. Asking costs one settings read; the sweep itself runs
// only when the TTL's next expiry has come (cache.Admin.Sweep).
const sweepEvery = time.Minute

// parseSweepsPerTTL is how often, per TTL, the scheduler sweeps the parse
// records no longer of use (parses.Store.Sweep reads all of them).
const parseSweepsPerTTL = 10

// sweeper runs the sweeps beside the scheduled runs, never in a run's
// path (each scans a whole collection): expired cache entries, when the
// store has no TTL indexes, and parse records older than the TTL whose
// cache entry is gone or whose rules no run uses, at most every tenth of
// the TTL. Errors are logged and retried at the next round.
type sweeper struct {
	s        *store.Store
	log      *slog.Logger
	parsesAt time.Time // last sweep of the parse records
}

// loop sweeps now and whenever due, until ctx ends.
func (w *sweeper) loop(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		w.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once runs the sweeps that are due.
func (w *sweeper) once(ctx context.Context) {
	admin := cache.NewAdmin(w.s, cache.DefaultDatabase, nil)
	n, err := admin.Sweep(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("sweep expired cache entries", "err", err)
	case n > 0:
		w.log.Info("swept expired cache entries", "deleted", n)
	}
	info, err := admin.TTL(ctx)
	if err != nil || !info.Set || time.Since(w.parsesAt) < info.TTL/parseSweepsPerTTL {
		return
	}
	n, err = sweepParses(ctx, w.s, admin, info.TTL)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("sweep parse records", "err", err)
	case err == nil:
		w.parsesAt = time.Now()
		if n > 0 {
			w.log.Info("swept parse records of pages no longer cached", "deleted", n)
		}
	}
}

// sweepParses deletes the parse records made more than ttl ago whose cache
// entry (in admin's cache) is gone, or whose rules no run has used for
// ttl (when every run of that span recorded its rules).
func sweepParses(ctx context.Context, s *store.Store, admin *cache.Admin, ttl time.Duration) (int64, error) {
	cutoff := time.Now().Add(-ttl)
	rules, known, err := jobs.NewRuns(s, nil).RulesInUse(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	var inUse func(string) bool
	if known {
		inUse = func(r string) bool { return rules[r] }
	}
	ps := parses.New(s.Collection(jobs.Database, parses.DefaultCollection))
	return ps.Sweep(ctx, cutoff, admin.Live, inUse)
}
