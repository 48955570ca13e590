package cache

import (
	"context"
	"time"
)

// lastModKey is the context key of a LastModHint.
type lastModKey struct{}

// LastModHint is what a sitemap says of a URL: when the page last changed
// (its <lastmod>), and whether that may stand in for the cache's own
// freshness rules when it is older than the stored copy.
type LastModHint struct {
	// LastMod is the sitemap's <lastmod>; zero means none.
	LastMod time.Time
	// Trust lets a LastMod no newer than the stored copy's last
	// validation count as fresh even when the entry has expired.
	Trust bool
}

// WithLastMod marks requests made with ctx with a sitemap's hint. On a
// lookup the hint applies after the job's expiry rules and before the
// stale windows:
//   - LastMod after the stored copy's effective validated_at (the last
//     fetch or 304): the copy is due now, even if fresh — revalidated
//     (a conditional request) or fetched again, never served stale;
//   - LastMod not after it, with Trust: the copy counts as fresh and is
//     served without a request, even when expired — except in RFC 9111
//     mode when the response says no-cache or must-revalidate.
//
// WithRefresh and WithForceRefresh win over the hint; a zero LastMod is no
// hint.
func WithLastMod(ctx context.Context, h LastModHint) context.Context {
	if h.LastMod.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, lastModKey{}, h)
}

// lastModOf is what the request's LastModHint (see WithLastMod) says of
// the stored entry st.
func lastModOf(c *call, st *storedEntry) lastModSays {
	h, ok := c.req.Context().Value(lastModKey{}).(LastModHint)
	switch {
	case !ok:
		return lastModNone
	case h.LastMod.After(st.validatedAt):
		return lastModNewer
	case h.Trust:
		return lastModTrusted
	}
	return lastModOlder
}
