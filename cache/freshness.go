package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cacheControl holds the directives of Cache-Control header values: the
// lower-cased directive name → its unquoted argument ("" when none). The
// first occurrence of a directive wins.
type cacheControl map[string]string

// parseCacheControl parses Cache-Control header values (RFC 9111 §5.2):
// comma-separated directives, each a token optionally followed by "=" and
// a token or quoted string. Malformed parts are skipped, never an error.
func parseCacheControl(values []string) cacheControl {
	cc := cacheControl{}
	for _, v := range values {
		for len(v) > 0 {
			var part string
			part, v = nextDirective(v)
			name, arg, hasArg := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" || strings.ContainsAny(name, " \t\"") {
				continue
			}
			arg = strings.TrimSpace(arg)
			if hasArg && len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
				arg = unquote(arg[1 : len(arg)-1])
			}
			if _, seen := cc[name]; !seen {
				cc[name] = arg
			}
		}
	}
	return cc
}

// nextDirective splits s at the first comma outside a quoted string.
func nextDirective(s string) (part, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func unquote(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (cc cacheControl) has(name string) bool { _, ok := cc[name]; return ok }

// seconds returns a delta-seconds argument (RFC 9111 §1.2.2): digits only,
// values past 2^31 capped there. ok is false when the directive is absent
// or its argument is not delta-seconds.
func (cc cacheControl) seconds(name string) (d time.Duration, ok bool) {
	v, present := cc[name]
	if !present {
		return 0, false
	}
	return deltaSeconds(v)
}

func deltaSeconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second, true
}

// heuristicStatuses are cacheable by default (RFC 9110 §15.1): they may get
// heuristic freshness when the response has no explicit expiry.
var heuristicStatuses = []int{200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}

// rfcFreshness is what RFC 9111 says about a stored response.
type rfcFreshness struct {
	lifetime       time.Duration // freshness lifetime (§4.2.1)
	initialAge     time.Duration // corrected_initial_age (§4.2.3)
	noCache        bool          // must be validated before every use
	mustRevalidate bool          // never served stale
	immutable      bool
}

// rfcFreshnessOf computes the freshness of a response received at
// responseTime with headers h. A private cache: s-maxage is ignored.
func rfcFreshnessOf(h http.Header, status int, responseTime time.Time) rfcFreshness {
	cc := parseCacheControl(h.Values("Cache-Control"))
	f := rfcFreshness{
		noCache:        cc.has("no-cache") && cc["no-cache"] == "",
		mustRevalidate: cc.has("must-revalidate") || cc.has("proxy-revalidate"),
		immutable:      cc.has("immutable"),
	}
	date := dateValue(h, responseTime)
	switch ma, ok := cc.seconds("max-age"); {
	case ok:
		f.lifetime = ma
	case len(h.Values("Expires")) > 0:
		// An invalid Expires (a second field line included) means
		// already expired (§5.3).
		if exp, ok := parseHTTPDateField(h.Values("Expires"), responseTime); ok && exp.After(date) {
			f.lifetime = exp.Sub(date)
		}
	case slices.Contains(heuristicStatuses, status) && !f.noCache:
		if lm, ok := parseHTTPDateField(h.Values("Last-Modified"), responseTime); ok && date.After(lm) {
			f.lifetime = date.Sub(lm) / 10
		}
	}
	f.initialAge = initialAge(h, responseTime)
	return f
}

// expiresAt is when a response validated at t stops being fresh.
func (f rfcFreshness) expiresAt(t time.Time) time.Time {
	if f.noCache {
		return t
	}
	return t.Add(f.lifetime - f.initialAge)
}

// freshness is the verdict on a stored entry at one instant.
type freshness struct {
	fresh          bool
	staleOK        bool // the request accepts it stale (max-stale)
	mustRevalidate bool // never serve it stale
	expiresAt      time.Time
	// swr and sie are how long past expiresAt it may be served while it
	// is refreshed in the background, and when the origin fails (0: not
	// at all; sie < 0: without limit). See staleWindows.
	swr, sie time.Duration
}

// freshness is the verdict on the stored entry st for c at now: each
// source of freshness says what it knows and decide (precedence.go)
// applies their one precedence.
func (t *Transport) freshness(c *call, st *storedEntry, now time.Time) freshness {
	s := sources{revalidate: c.flags.refresh, lastMod: lastModOf(c, st)}
	var fr freshness
	if t.policy.CacheControl {
		f := t.rfcFreshness(st.e.header, st.e.status, st.validatedAt)
		fr = freshness{mustRevalidate: f.mustRevalidate || f.noCache, expiresAt: f.expiresAt(st.validatedAt)}
		fr.swr, fr.sie = t.staleWindows(c.reqCC, st.e.header)
		s.rfc = &rfcSays{fresh: rfcFresh(c.reqCC, f, now.Sub(st.validatedAt)), immutable: f.immutable, mustRevalidate: fr.mustRevalidate}
	} else {
		// The crawler policy is evaluated now, against validated_at, so
		// a changed expire_after applies to entries already stored.
		exp, matched := t.policy.crawlerRule(c.norm)
		fresh, at := t.ruleSays(exp, st, now)
		if matched {
			s.urlRule = &fresh
		} else {
			s.expireAfter = fresh
		}
		fr = freshness{expiresAt: at, swr: t.policy.StaleWhileRevalidate, sie: t.policy.StaleIfError}
	}
	var by source
	fr.fresh, by = decide(s)
	if by == byLastModNewer {
		fr.swr = 0 // due because the page changed: never served stale
		return fr
	}
	if s.rfc != nil && !fr.fresh && !fr.mustRevalidate && by != byRevalidate && !c.reqCC.has("no-cache") {
		if v, ok := c.reqCC["max-stale"]; ok {
			d, valid := deltaSeconds(v)
			fr.staleOK = v == "" || (valid && now.Sub(fr.expiresAt) <= d)
		}
	}
	return fr
}

// rfcFresh is RFC 9111's verdict on a response of freshness f whose
// validation is elapsed old, for a request with directives reqCC: fresh
// while its age is below its lifetime (§4.2), unless no-cache (§5.2.2.4),
// or the request's max-age, min-fresh or no-cache (§5.2.1) say otherwise.
func rfcFresh(reqCC cacheControl, f rfcFreshness, elapsed time.Duration) bool {
	age := f.initialAge + elapsed
	if f.noCache || age >= f.lifetime || reqCC.has("no-cache") {
		return false
	}
	if d, ok := reqCC.seconds("max-age"); ok && age > d {
		return false
	}
	if d, ok := reqCC.seconds("min-fresh"); ok && f.lifetime-age < d {
		return false
	}
	return true
}

// ruleSays is a crawler-policy expiry's verdict on st at now, and when st
// stops (or stopped) being fresh under it; a duration or an adaptive
// interval counts as due with the run-start tolerance (dueAtRun).
func (t *Transport) ruleSays(exp Expiry, st *storedEntry, now time.Time) (fresh bool, expiresAt time.Time) {
	switch exp.Kind {
	case ExpireNever:
		return true, now // now: for stale windows after a forced refresh
	case ExpireAfter:
		at := st.validatedAt.Add(exp.After)
		return !dueAtRun(at, exp.After, now, t.runStart), at
	case ExpireAdaptive:
		iv := t.policy.Adaptive.interval(st.interval)
		at := st.validatedAt.Add(iv)
		return !dueAtRun(at, iv, now, t.runStart), at
	}
	return false, st.validatedAt // do_not_cache: not served
}

// crawlerExpiry is the crawler policy's expiry for a normalized URL: the
// first urls_expire_after pattern that matches the URL without its scheme,
// else expire_after.
func (p Policy) crawlerExpiry(normURL string) Expiry {
	exp, _ := p.crawlerRule(normURL)
	return exp
}

// crawlerRule is crawlerExpiry, and whether a urls_expire_after pattern
// gave it.
func (p Policy) crawlerRule(normURL string) (Expiry, bool) {
	if len(p.URLsExpireAfter) > 0 {
		bare := normURL
		if _, rest, ok := strings.Cut(normURL, "://"); ok {
			bare = rest
		}
		for _, rule := range p.URLsExpireAfter {
			if globMatch(rule.Pattern, bare) {
				return rule.Expiry, true
			}
		}
	}
	return p.ExpireAfter, false
}

// globMatch matches s against a pattern where '*' is any run of characters
// (including '/') and '?' is one character. A pattern with a scheme
// ("https://example.org/*") is matched without it. A pattern with no path
// ("example.org") also matches every URL on that host.
func globMatch(pattern, s string) bool {
	if _, rest, ok := strings.Cut(pattern, "://"); ok {
		pattern = rest
	}
	if !strings.ContainsAny(pattern, "/*?") {
		pattern += "/*"
	}
	// Iterative matcher with single-star backtracking: linear in practice
	// and never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// expiresFor returns the stored expires field under the crawler policy for
// an entry validated at t: nil for never.
func (e Expiry) expiresFor(t time.Time) *time.Time {
	if e.Kind != ExpireAfter {
		return nil
	}
	x := t.Add(e.After)
	return &x
}
