package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The two roles of RFC 9111. A private cache (Options.Shared false, the
// crawler) stores one user's responses; a shared cache (the proxy) serves
// many clients and adds the rules below on top of whichever freshness
// policy is in force. Credential isolation (credential.go) applies in both.

// varies reports whether Vary selects stored variants: in cache_control
// mode, and in the shared role under every policy (many clients send
// different Accept-Encoding; a crawler sends the same headers each time).
func (t *Transport) varies() bool { return t.policy.CacheControl || t.shared }

// responseCC is the view of h a cache decides with: h itself, or for a
// shared cache with CDNCacheControl, h with a valid CDN-Cache-Control in
// place of Cache-Control and without Expires (RFC 9213 §2.1).
func (t *Transport) responseCC(h http.Header) http.Header {
	if !t.cdn {
		return h
	}
	v, ok := cdnDirectives(h.Values("CDN-Cache-Control"))
	if !ok {
		return h
	}
	out := h.Clone()
	out["Cache-Control"] = []string{v}
	delete(out, "Expires")
	return out
}

// rfcFreshness is rfcFreshnessOf for this cache's role: a shared cache
// takes s-maxage over max-age and Expires (§4.2.1), and s-maxage
// (§5.2.2.10) and proxy-revalidate (§5.2.2.8) forbid serving it stale; a
// private cache ignores both.
func (t *Transport) rfcFreshness(h http.Header, status int, at time.Time) rfcFreshness {
	h = t.responseCC(h)
	f := rfcFreshnessOf(h, status, at)
	cc := parseCacheControl(h.Values("Cache-Control"))
	if !t.shared {
		if cc.has("proxy-revalidate") && !cc.has("must-revalidate") {
			f.mustRevalidate = false
		}
		return f
	}
	if sm, ok := cc.seconds("s-maxage"); ok {
		f.lifetime = sm
		f.mustRevalidate = true
	}
	if cc.has("proxy-revalidate") {
		f.mustRevalidate = true
	}
	return f
}

// privateFields returns whether cc holds an unqualified private directive
// and the field names a qualified private="A, B" lists (§5.2.2.7).
func privateFields(cc cacheControl) (unqualified bool, names []string) {
	arg, ok := cc["private"]
	if !ok {
		return false, nil
	}
	names = fieldNames(arg)
	return len(names) == 0, names
}

// forRole applies the shared role's storage rules to a response e to c.
// It returns what may be stored: e itself, a copy without the fields a
// qualified private directive names, or nil (not stored). A private cache
// stores e as it is.
func (t *Transport) forRole(c *call, e *decodedEntry) *decodedEntry {
	if !t.shared {
		return e
	}
	if reason := t.sharedRefusal(c, e.header); reason != "" {
		return nil
	}
	_, names := privateFields(parseCacheControl(t.responseCC(e.header).Values("Cache-Control")))
	if len(names) == 0 {
		return e
	}
	// §5.2.2.7: a shared cache MUST NOT store the listed fields, and MAY
	// store the rest of the response without them.
	stored := *e
	stored.header = e.header.Clone()
	for _, n := range names {
		delete(stored.header, n)
	}
	return &stored
}

// sharedRefusal says why a shared cache must not store, or serve from
// storage, a response with header h to c ("" when it may).
func (t *Transport) sharedRefusal(c *call, h http.Header) string {
	if len(h.Values("Set-Cookie")) > 0 {
		// One client's cookie is never replayed to another: such a
		// response is not stored (as Varnish's built-in rules and
		// nginx do).
		return "Set-Cookie"
	}
	cc := parseCacheControl(t.responseCC(h).Values("Cache-Control"))
	if private, _ := privateFields(cc); private {
		// §5.2.2.7: never in a shared cache. Under the crawler policy it
		// is kept bound to the credential that fetched it, which no other
		// client can present.
		if t.policy.CacheControl || c.cred.info == nil {
			return "private"
		}
	}
	if t.policy.CacheControl && len(c.req.Header.Values("Authorization")) > 0 &&
		!cc.has("must-revalidate") && !cc.has("public") && !cc.has("s-maxage") {
		return "Authorization" // §3.5
	}
	if slices.Contains(varyNames(h), "*") {
		return "Vary: *"
	}
	return ""
}

// servesRole reports whether a stored entry may answer c in this role:
// what the shared rules refuse to store is not served either, whether it
// was written by an older release or a 304 merged such headers into it.
func (t *Transport) servesRole(c *call, st *storedEntry) bool {
	return !t.shared || t.sharedRefusal(c, st.e.header) == ""
}

// shareable reports whether a response fetched for one caller may be
// handed to a coalesced concurrent caller: in a shared cache, not when it
// carries Set-Cookie or is private in any form (the other caller is
// another client).
func (t *Transport) shareable(e *decodedEntry) bool {
	if !t.shared || e == nil {
		return true
	}
	if len(e.header.Values("Set-Cookie")) > 0 {
		return false
	}
	return !parseCacheControl(t.responseCC(e.header).Values("Cache-Control")).has("private")
}

// storableHeader is the part of a 304's header h that a shared cache
// merges into storage: without Set-Cookie and the fields a qualified
// private names. The client that revalidated still gets all of h.
func (t *Transport) storableHeader(h http.Header) http.Header {
	if !t.shared {
		return h
	}
	_, names := privateFields(parseCacheControl(t.responseCC(h).Values("Cache-Control")))
	if len(names) == 0 && len(h.Values("Set-Cookie")) == 0 {
		return h
	}
	out := h.Clone()
	delete(out, "Set-Cookie")
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// cdnDirectives parses CDN-Cache-Control values, a Structured Fields
// Dictionary (RFC 9213 §2.2, RFC 8941 §3.2), into Cache-Control syntax.
// ok is false when the field is absent, empty or invalid: then the cache
// falls back to Cache-Control and Expires.
func cdnDirectives(values []string) (string, bool) {
	s := strings.Join(values, ",")
	if strings.TrimSpace(s) == "" {
		return "", false
	}
	var out []string
	for _, member := range splitSF(s) {
		member = strings.Trim(cutParams(member), " \t")
		key, val, hasVal := strings.Cut(member, "=")
		if !validSFKey(key) {
			return "", false
		}
		if !hasVal {
			out = append(out, key)
			continue
		}
		switch {
		case val == "?1":
			out = append(out, key)
		case val == "?0":
			// false: the directive is absent
		case isSFInteger(val):
			out = append(out, key+"="+val)
		case len(val) >= 2 && val[0] == '"' && strings.HasSuffix(val, `"`):
			out = append(out, key+"="+val)
		case isSFToken(val):
			out = append(out, key+"="+val)
		default:
			return "", false
		}
	}
	if len(out) == 0 {
		return "", false
	}
	return strings.Join(out, ", "), true
}

// splitSF splits a dictionary at commas outside quoted strings.
func splitSF(s string) []string {
	var parts []string
	for len(s) > 0 {
		var p string
		p, s = nextDirective(s)
		parts = append(parts, p)
	}
	return parts
}

// cutParams drops a member's parameters (";" outside a quoted string
// onwards): no CDN-Cache-Control directive uses them.
func cutParams(member string) string {
	quoted := false
	for i := 0; i < len(member); i++ {
		switch c := member[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ';' && !quoted:
			return member[:i]
		}
	}
	return member
}

func validSFKey(k string) bool {
	if k == "" || !(k[0] == '*' || (k[0] >= 'a' && k[0] <= 'z')) {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_-.*", c) >= 0) {
			return false
		}
	}
	return true
}

func isSFInteger(v string) bool {
	d := strings.TrimPrefix(v, "-")
	if d == "" || len(d) > 15 {
		return false
	}
	_, err := strconv.ParseUint(d, 10, 64)
	return err == nil
}

func isSFToken(v string) bool {
	if v == "" || !(v[0] == '*' || (v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z')) {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
