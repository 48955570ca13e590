package cache

import (
	"net/http"
	"slices"
	"strings"
)

// What RFC 9111 §3 lets a cache store, in cache_control mode. The crawler
// policy decides by allowable_codes alone and never gets here.

// understoodStatuses are the final statuses whose caching requirements
// this cache implements (RFC 9111 §5.2.2.3 must-understand): those RFC
// 9110 §15 defines, except 206 (partial responses are not stored or
// combined) and 304 (a validation response, merged, never stored).
var understoodStatuses = []int{
	200, 201, 202, 203, 204, 205,
	300, 301, 302, 303, 305, 307, 308,
	400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426,
	500, 501, 502, 503, 504, 505,
}

// rfcStorable reports whether RFC 9111 §3 allows storing a response with
// status and header h (its Cache-Control as this cache reads it) to a
// request with directives reqCC:
//   - no no-store in the request; none in the response either, unless
//     the response has must-understand and its status is understood
//     (§5.2.2.3: the cache then ignores no-store);
//   - with must-understand, only an understood status (§5.2.2.3);
//   - a final status other than 206 and 304, and either explicit
//     freshness or permission (max-age, s-maxage in a shared cache,
//     Expires, public, private in a private cache: §3), or a heuristically
//     cacheable status (RFC 9110 §15.1) that allowable_codes allows when
//     it is set;
//   - no Vary: * (it could never be selected again, §4.1).
func (t *Transport) rfcStorable(reqCC cacheControl, h http.Header, status int) bool {
	if reqCC.has("no-store") || slices.Contains(varyNames(h), "*") {
		return false
	}
	cc := parseCacheControl(h.Values("Cache-Control"))
	understood := slices.Contains(understoodStatuses, status)
	if cc.has("must-understand") {
		if !understood {
			return false
		}
	} else if cc.has("no-store") {
		return false
	}
	if status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false
	}
	if explicitlyCacheable(cc, h, t.shared) {
		return true
	}
	if !slices.Contains(heuristicStatuses, status) {
		return false
	}
	return t.policy.AllowableCodes == nil || slices.Contains(t.policy.AllowableCodes, status)
}

// explicitlyCacheable reports whether a response carries explicit
// freshness or an explicit permission to store (RFC 9111 §3), which makes
// any final status storable.
func explicitlyCacheable(cc cacheControl, h http.Header, shared bool) bool {
	if _, ok := cc.seconds("max-age"); ok {
		return true
	}
	if _, ok := cc.seconds("s-maxage"); ok && shared {
		return true
	}
	if len(h.Values("Expires")) > 0 || cc.has("public") {
		return true
	}
	return cc.has("private") && !shared
}

// fieldNames splits a qualified directive's argument, such as the
// Set-Cookie, X-Foo of no-cache="Set-Cookie, X-Foo", into canonical field
// names. An unqualified directive has none.
func fieldNames(arg string) []string {
	var names []string
	for _, n := range strings.Split(arg, ",") {
		if n = strings.Trim(n, " \t"); n != "" {
			names = append(names, http.CanonicalHeaderKey(n))
		}
	}
	return names
}

// noCacheFields returns the fields a qualified no-cache="..." names
// (RFC 9111 §5.2.2.4): the response may be reused without revalidation,
// but those fields may not be sent in it. Nil for no directive or an
// unqualified one (which forbids any reuse without revalidation).
func noCacheFields(h http.Header) []string {
	arg, ok := parseCacheControl(h.Values("Cache-Control"))["no-cache"]
	if !ok {
		return nil
	}
	return fieldNames(arg)
}

// withoutNoCacheFields removes from a response served from storage
// without revalidation the fields its qualified no-cache names.
func withoutNoCacheFields(h http.Header) {
	for _, n := range noCacheFields(h) {
		delete(h, n)
	}
}
