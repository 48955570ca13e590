package cache

import "context"

// The per-request modes a caller sets on a request's context.

type ctxKey int

const (
	refreshKey ctxKey = iota
	forceRefreshKey
	onlyIfCachedKey
)

// WithRefresh marks requests made with ctx to be revalidated even when
// their cached entry is fresh (a conditional request when the entry has a
// validator, else a refetch).
func WithRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, refreshKey, true)
}

// WithForceRefresh marks requests made with ctx to ignore the cache: they
// are fetched unconditionally and the response is stored.
func WithForceRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, forceRefreshKey, true)
}

// WithOnlyIfCached marks requests made with ctx for offline replay: any
// stored entry is served, fresh or not, and a miss is a 504 without any
// network request.
func WithOnlyIfCached(ctx context.Context) context.Context {
	return context.WithValue(ctx, onlyIfCachedKey, true)
}

// requestFlags are the per-request modes from the context.
type requestFlags struct {
	refresh, forceRefresh, onlyIfCached bool
}

func flagsOf(ctx context.Context) requestFlags {
	b := func(k ctxKey) bool { v, _ := ctx.Value(k).(bool); return v }
	return requestFlags{refresh: b(refreshKey), forceRefresh: b(forceRefreshKey), onlyIfCached: b(onlyIfCachedKey)}
}
