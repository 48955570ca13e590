package commands

import (
	"context"
	"log/slog"
	"time"

	"crawlcache/cache"
	"crawlcache/store"
)

// sweepEvery is how often `schedule` asks whether a sweep of expired cache
// entries is due. Asking costs one settings read; the sweep itself runs
// only when the TTL's next expiry has come (cache.Admin.Sweep).
const sweepEvery = time.Minute

// sweepLoop deletes expired cache entries (the TTL sweeper of stores
// without TTL indexes) now and whenever due, until ctx ends. It runs beside
// the scheduled runs, never in a run's path: a sweep scans the whole cache.
// Errors are logged and retried at the next round.
func sweepLoop(ctx context.Context, s *store.Store, log *slog.Logger) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		sweepOnce(ctx, s, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepOnce runs one sweep if one is due.
func sweepOnce(ctx context.Context, s *store.Store, log *slog.Logger) {
	admin := cache.NewAdmin(s, cache.DefaultDatabase, nil)
	n, err := admin.Sweep(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		log.Warn("sweep expired cache entries", "err", err)
	case n > 0:
		log.Info("swept expired cache entries", "deleted", n)
	}
}
