package cache

import "time"

// The sources of freshness and their one precedence. Each source says
// what it knows of a stored entry at one instant (sources); decide takes
// the first source, in this order, that has a say:
//
//  1. --revalidate (WithRefresh): due now, however fresh the entry is;
//     only a fresh response marked immutable stays fresh in cache_control
//     mode (RFC 8246 §2).
//  2. A sitemap's <lastmod> newer than the entry's last validation
//     (WithLastMod): due now, and never served stale.
//  3. A sitemap's <lastmod> not newer, with trust_lastmod: fresh, even when
//     the rules below say expired; except, in cache_control mode, for a
//     response that says no-cache or must-revalidate.
//  4. cache_control mode: RFC 9111 (§4.2: the response's max-age, Expires
//     or heuristic freshness; §5.2.1: the request's directives). The
//     crawler policy's rules (5, 6) do not apply.
//  5. The first urls_expire_after pattern that matches the URL.
//  6. Else expire_after.
//
// Under 5 and 6 a duration keeps the entry fresh until its last
// validation plus the duration, never keeps it fresh, and adaptive keeps
// it fresh until the URL's learned next due time (adaptive.go). Under both
// a duration and adaptive, a page due within Tolerance of the duration or
// interval after the run's start counts as due at the start (dueAtRun), so
// a daily run with expire_after: 24h does not skip for a day a page stored
// a few seconds after the previous run's start. 0s (revalidate on every
// use) and never have no tolerance, nor has a cache with no run (the
// proxy). RFC 9111 mode (4) has none either: RFC freshness is followed to
// the letter.
//
// An entry that is not fresh may then still be served stale: by
// stale_while_revalidate and a request's max-stale unless 1 or 2 made it
// due, and by stale_if_error (the origin failed) and only_if_cached (no
// network) in every case. WithForceRefresh is not a source: it skips the
// lookup, so nothing stored is served.

// lastModSays is what a sitemap's <lastmod> says of an entry.
type lastModSays int

const (
	lastModNone    lastModSays = iota // no hint
	lastModNewer                      // newer than the last validation: due (2)
	lastModTrusted                    // not newer, trust_lastmod: fresh (3)
	lastModOlder                      // not newer, not trusted: no say
)

// rfcSays is RFC 9111's verdict on an entry (cache_control mode).
type rfcSays struct {
	fresh, immutable, mustRevalidate bool
}

// sources is what each source of freshness says of one entry at one
// instant, before precedence.
type sources struct {
	revalidate bool        // 1: the request carries WithRefresh
	lastMod    lastModSays // 2, 3
	rfc        *rfcSays    // 4: nil under the crawler policy
	// urlRule is the verdict of the first urls_expire_after rule that
	// matches (5), nil when none does; expireAfter is expire_after's (6).
	urlRule     *bool
	expireAfter bool
}

// source names the source that decided (for tests and messages).
type source int

const (
	byRevalidate source = iota + 1
	byLastModNewer
	byTrustedLastMod
	byRFC
	byURLRule
	byExpireAfter
)

// decide applies the precedence above: whether the entry is fresh, and
// which source said so.
func decide(s sources) (fresh bool, by source) {
	switch {
	case s.revalidate:
		return s.rfc != nil && s.rfc.fresh && s.rfc.immutable, byRevalidate
	case s.lastMod == lastModNewer:
		return false, byLastModNewer
	case s.lastMod == lastModTrusted && (s.rfc == nil || !s.rfc.mustRevalidate):
		return true, byTrustedLastMod
	case s.rfc != nil:
		return s.rfc.fresh, byRFC
	case s.urlRule != nil:
		return *s.urlRule, byURLRule
	}
	return s.expireAfter, byExpireAfter
}

// dueAtRun reports whether an entry that falls due at dueAt, under a
// crawler-policy duration or adaptive interval iv, is due at now in a run
// started at runStart: due once now reaches dueAt, or already at the run's
// start when dueAt is within Tolerance(iv) after it. A zero runStart (no
// run: the proxy) or iv <= 0 (0s: due on every use) gives no tolerance.
func dueAtRun(dueAt time.Time, iv time.Duration, now, runStart time.Time) bool {
	if !now.Before(dueAt) {
		return true
	}
	return iv > 0 && !runStart.IsZero() && !runStart.Add(Tolerance(iv)).Before(dueAt)
}
