package cache

import (
	"net/http"
	"time"
)

// staleWindows are the stale-while-revalidate and stale-if-error windows
// (RFC 5861) of a stored entry with header h in cache_control mode:
//   - the response's stale-while-revalidate=N (§3) lets it be served for
//     N seconds past its expiry while it is refreshed in the background;
//   - its stale-if-error=N (§4) lets it be served for N seconds past its
//     expiry when revalidation fails (a network error or a 5xx);
//   - a request's stale-if-error=N (§4) extends the latter window for
//     that request: the client accepts it;
//   - a response without the directive falls back to the policy's
//     stale_while_revalidate and stale_if_error.
//
// must-revalidate, proxy-revalidate (shared), s-maxage (shared) and an
// unqualified no-cache still forbid serving it stale (checked by the
// caller, RFC 9111 §4.2.4).
func (t *Transport) staleWindows(reqCC cacheControl, h http.Header) (swr, sie time.Duration) {
	cc := parseCacheControl(t.responseCC(h).Values("Cache-Control"))
	swr, sie = t.policy.StaleWhileRevalidate, t.policy.StaleIfError
	if d, ok := cc.seconds("stale-while-revalidate"); ok {
		swr = d
	}
	if d, ok := cc.seconds("stale-if-error"); ok {
		sie = d
	}
	if d, ok := reqCC.seconds("stale-if-error"); ok && sie >= 0 && d > sie {
		sie = d
	}
	return swr, sie
}
