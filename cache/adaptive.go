package cache

import (
	"bytes"
	"strconv"
	"time"
)

// Adaptive revisits (expire_after: adaptive) give each URL its own
// freshness lifetime, learned from what its revalidations found: the
// interval grows while the page stays unchanged and shrinks when it
// changed, within [Min, Max]. The interval is stored with the entry (the
// response document when a body is stored, the revalidation when a 304
// confirms it), so a hit decides with the lookup it makes anyway.
//
// This departs from RFC 9111 on purpose: the origin's Cache-Control and
// Expires are not consulted (as under every crawler-policy expiry), and a
// page not yet due is served without any request.

// Defaults of Adaptive's bounds.
const (
	DefaultAdaptiveMin     = time.Hour
	DefaultAdaptiveMax     = 30 * 24 * time.Hour
	DefaultAdaptiveInitial = 24 * time.Hour
)

// The rule of adaptive revisits, fixed: after a revalidation that finds
// the page unchanged the interval becomes AdaptiveGrow times the longer of
// the interval and the time since the previous validation (the page was
// unchanged over all of it: a daily run checks a page later than it fell
// due, and that evidence counts); after one that finds it changed it
// becomes AdaptiveShrink times the interval. A page due within
// DueTolerance of its interval (at most MaxDueTolerance) after the run's
// start counts as due at the start (as under a fixed duration: Tolerance).
const (
	AdaptiveGrow    = 1.5
	AdaptiveShrink  = 0.5
	DueTolerance    = 0.1
	MaxDueTolerance = time.Hour
)

// Adaptive bounds the intervals of expire_after: adaptive. The zero value
// takes the defaults.
type Adaptive struct {
	// Min and Max bound every interval, Initial is the interval of an
	// entry stored for the first time (and of one stored before
	// intervals were learned). Zero: DefaultAdaptiveMin,
	// DefaultAdaptiveMax, DefaultAdaptiveInitial. Bounds apply when an
	// entry is read too, so changed bounds apply to entries already
	// stored.
	Min, Max, Initial time.Duration
	// Unchanged reports whether a body fetched again (a 200) counts as
	// the stored one. If nil, the same bytes: the same body hash the
	// changes and parses packages compare. A job that ignores parts of
	// its pages when it compares them passes changes.Same with its rules.
	Unchanged func(prev, next []byte) bool `json:"-"`
	// Rule, if set, replaces the rule above: the next interval of an
	// entry whose interval was interval, validated again elapsed after
	// its previous validation, unchanged or not; the bounds still apply.
	// For comparisons (the bench measures Nutch's rule with it); nil for
	// the rule described above.
	Rule func(interval, elapsed time.Duration, unchanged bool) time.Duration `json:"-"`
}

// bounds returns Min, Max and Initial with defaults, Initial within
// [Min, Max].
func (a Adaptive) bounds() (lo, hi, initial time.Duration) {
	lo, hi, initial = a.Min, a.Max, a.Initial
	if lo <= 0 {
		lo = DefaultAdaptiveMin
	}
	if hi <= 0 {
		hi = DefaultAdaptiveMax
	}
	hi = max(hi, lo)
	if initial <= 0 {
		initial = DefaultAdaptiveInitial
	}
	return lo, hi, min(max(initial, lo), hi)
}

// interval is the interval of an entry that stored iv (0: none stored),
// within the bounds.
func (a Adaptive) interval(iv time.Duration) time.Duration {
	lo, hi, initial := a.bounds()
	if iv <= 0 {
		return initial
	}
	return min(max(iv, lo), hi)
}

// next is the interval after a validation that found the page unchanged
// or changed, elapsed after the previous validation of an entry whose
// interval was iv (0: none stored).
func (a Adaptive) next(iv, elapsed time.Duration, unchanged bool) time.Duration {
	cur := a.interval(iv)
	if a.Rule != nil {
		return a.interval(max(a.Rule(cur, elapsed, unchanged), 1))
	}
	if unchanged {
		return a.interval(scale(max(cur, elapsed), AdaptiveGrow))
	}
	return a.interval(scale(cur, AdaptiveShrink))
}

// same reports whether next counts as st's body. An entry known from its
// Page alone (head.go) is compared by hash: JudgeHead leaves entries
// whose bodies a job compares with Unchanged to RoundTrip.
func (a Adaptive) same(st *storedEntry, next []byte) bool {
	switch {
	case st.page != nil:
		return a.Unchanged == nil && st.page.BodySHA256 == bodySHA256(next)
	case a.Unchanged != nil:
		return a.Unchanged(st.e.body, next)
	}
	return bytes.Equal(st.e.body, next)
}

func scale(d time.Duration, f float64) time.Duration {
	const limit = float64(1<<63 - 1)
	if x := float64(d) * f; x < limit {
		return time.Duration(x)
	}
	return 1<<63 - 1
}

// Tolerance is how long before a run's start a page due with interval iv
// counts as due: DueTolerance of it, at most MaxDueTolerance. It applies
// to adaptive intervals and to fixed expire_after and urls_expire_after
// durations alike (precedence.go, dueAtRun).
func Tolerance(iv time.Duration) time.Duration {
	return min(scale(iv, DueTolerance), MaxDueTolerance)
}

// storedInterval reads an interval stored as seconds. A value past
// Duration's range (an entry edited by hand) is the longest Duration; the
// bounds then apply.
func storedInterval(seconds int64) time.Duration {
	if seconds > int64((1<<63-1)/time.Second) {
		return 1<<63 - 1
	}
	return time.Duration(seconds) * time.Second
}

// seconds stores an interval as whole seconds (at least 1), readable in
// Compass; 0 for none.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(int64(d/time.Second), 1)
}

// learned returns the interval to store for c's entry after a validation
// at now (a 304 when body is nil and notModified is set, else a stored
// 200 whose body is body), and 0 when c's URL does not revisit
// adaptively. st is the entry the validation replaced, nil if none was
// known: the interval starts at Initial.
func (t *Transport) learned(c *call, st *storedEntry, status int, body []byte, notModified bool, now time.Time) time.Duration {
	if t.policy.CacheControl || t.policy.crawlerExpiry(c.norm).Kind != ExpireAdaptive {
		return 0
	}
	a := t.policy.Adaptive
	if st == nil {
		return a.interval(0)
	}
	unchanged := notModified || (st.e.status == status && a.same(st, body))
	return a.next(st.interval, now.Sub(st.validatedAt), unchanged)
}

// expiresAt is the stored expires of an entry validated at now: the
// crawler policy's rule, or now plus the learned interval iv.
func (t *Transport) expiresAt(c *call, iv time.Duration, now time.Time) *time.Time {
	if iv > 0 {
		x := now.Add(iv)
		return &x
	}
	return t.policy.crawlerExpiry(c.norm).expiresFor(now)
}

// FormatInterval writes an interval the way job files write one, in days,
// hours, minutes and seconds: "1d12h", "45m", "0s".
func FormatInterval(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = d.Round(time.Second)
	var b []byte
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, u.name...)
			d -= n * u.unit
		}
	}
	if len(b) == 0 {
		return "0s"
	}
	return string(b)
}
