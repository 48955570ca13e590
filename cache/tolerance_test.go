package cache

import (
	"net/http"
	"testing"
	"time"

	"crawlcache/store/storetest"
)

// TestFixedExpiryToleranceFromRunStart: under a fixed expire_after or
// urls_expire_after duration, a page due within 10% of the duration (at
// most an hour) after the run's start counts as due for the whole run, as
// under expire_after: adaptive. A daily job with expire_after: 24h that
// stored a page a few minutes after yesterday's run start revisits it
// today instead of skipping it for a day. This is the crawler policy's
// departure from RFC 9111 §4.2 (the origin's max-age is not consulted, and
// a page is due before its age reaches the configured lifetime); in
// cache_control mode RFC 9111 §4.2 is followed to the letter: a response
// is fresh while its age is below its freshness lifetime, with no
// tolerance. A Transport with no run (the proxy) has no tolerance, and
// neither 0s nor never has one.
func TestFixedExpiryToleranceFromRunStart(t *testing.T) {
	after := func(d time.Duration) Expiry { return Expiry{Kind: ExpireAfter, After: d} }
	daily := Policy{ExpireAfter: after(day)}
	const noRun = -1
	tests := []struct {
		name      string
		pol       Policy
		stored    time.Duration // after yesterday's run start
		runStart  time.Duration // today's, after yesterday's; noRun: none
		request   time.Duration // after yesterday's run start
		served    string
		wantCalls int64
	}{
		{"daily job, stored 5m after yesterday's start: due", daily, 5 * time.Minute, day, day, ServedRevalidated, 2},
		{"daily job, stored 5m after, requested late in the run: due", daily, 5 * time.Minute, day, day + 2*time.Minute, ServedRevalidated, 2},
		{"stored exactly 1h after: due", daily, time.Hour, day, day, ServedRevalidated, 2},
		{"stored 61m after: tolerance capped at 1h, not due", daily, 61 * time.Minute, day, day, ServedHit, 1},
		{"stored 3h after: not due", daily, 3 * time.Hour, day, day + 30*time.Minute, ServedHit, 1},
		{"stored 3h after, requested once due: due", daily, 3 * time.Hour, day, day + 3*time.Hour, ServedRevalidated, 2},
		{"no run (the proxy): no tolerance", daily, 5 * time.Minute, noRun, day, ServedHit, 1},
		{"no run, requested once due: due", daily, 5 * time.Minute, noRun, day + 5*time.Minute, ServedRevalidated, 2},
		{"10m expiry, due 1m after the start: due", Policy{ExpireAfter: after(10 * time.Minute)}, time.Minute, 10 * time.Minute, 10 * time.Minute, ServedRevalidated, 2},
		{"10m expiry, due 2m after the start: 10% is 1m, not due", Policy{ExpireAfter: after(10 * time.Minute)}, 2 * time.Minute, 10 * time.Minute, 10 * time.Minute, ServedHit, 1},
		{"urls_expire_after duration: due", Policy{ExpireAfter: Expiry{}, URLsExpireAfter: []URLExpiry{{Pattern: "*/page", Expiry: after(day)}}}, 5 * time.Minute, day, day, ServedRevalidated, 2},
		{"urls_expire_after never over a daily expire_after: no tolerance", Policy{ExpireAfter: after(day), URLsExpireAfter: []URLExpiry{{Pattern: "*/page", Expiry: Expiry{}}}}, 5 * time.Minute, day, day, ServedHit, 1},
		{"never: no tolerance", Policy{}, 5 * time.Minute, day, day, ServedHit, 1},
		{"0s: revalidated on every use", Policy{ExpireAfter: after(0)}, 5 * time.Minute, 10 * time.Minute, 10 * time.Minute, ServedRevalidated, 2},
		// RFC 9111 §4.2: the response's max-age=86400 decides; its age
		// at today's start is 23h55m, below the lifetime: fresh.
		{"cache_control: RFC 9111 to the letter, no tolerance", Policy{ExpireAfter: after(day), CacheControl: true}, 5 * time.Minute, day, day, ServedHit, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=86400")
				w.Header().Set("ETag", `"v1"`)
				if r.Header.Get("If-None-Match") == `"v1"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				_, _ = w.Write([]byte("<p>page</p>"))
			})
			s := storetest.Open(t)
			clock := newTestClock()
			t0 := clock.Now()
			url := o.URL + "/page"
			yesterday := Options{Policy: tt.pol, Now: clock.Now, RunStart: t0}
			clock.Advance(tt.stored)
			newTransportEnvOn(t, s, yesterday).expectServed(url, ServedMiss)

			today := Options{Policy: tt.pol, Now: clock.Now}
			if tt.runStart != noRun {
				today.RunStart = t0.Add(tt.runStart)
			}
			clock.Advance(t0.Add(tt.request).Sub(clock.Now()))
			newTransportEnvOn(t, s, today).expectServed(url, tt.served)
			if got := o.requests.Load(); got != tt.wantCalls {
				t.Errorf("origin requests %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

// TestFixedExpiryRedirectHopTolerance: a redirect hop recorded under a
// fixed expire_after gets the same tolerance at the run's start as pages.
func TestFixedExpiryRedirectHopTolerance(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/page", http.StatusFound) // not stored as a response: a hop
	})
	s := storetest.Open(t)
	clock := newTestClock()
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: day}}
	url := o.URL + "/r"
	steps := []struct {
		name     string
		after    time.Duration
		served   string
		requests int64
	}{
		{"first run", 0, ServedMiss, 1},
		{"12h later: not due", 12 * time.Hour, ServedHit, 1},
		{"run starting 30m before due", 12*time.Hour - 30*time.Minute, ServedMiss, 2},
	}
	for _, st := range steps {
		clock.Advance(st.after)
		resp, _ := adaptiveRun(t, s, clock, pol, nil).get(nil, url)
		if Served(resp) != st.served || resp.StatusCode != http.StatusFound {
			t.Errorf("%s: served %q status %d, want %q 302", st.name, Served(resp), resp.StatusCode, st.served)
		}
		if n := o.requests.Load(); n != st.requests {
			t.Errorf("%s: origin requests %d, want %d", st.name, n, st.requests)
		}
	}
}

// TestDueAtRun: the tolerance rule alone, including lifetimes past
// Duration's range and no run.
func TestDueAtRun(t *testing.T) {
	start := time.Date(2026, 3, 4, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		dueAt    time.Time
		iv       time.Duration
		now      time.Time
		runStart time.Time
		want     bool
	}{
		{"due before now", start.Add(-time.Second), day, start, start, true},
		{"due at now", start, day, start, start, true},
		{"due 5m after the start of a daily run", start.Add(5 * time.Minute), day, start, start, true},
		{"due 61m after the start of a daily run", start.Add(61 * time.Minute), day, start, start, false},
		{"no run", start.Add(5 * time.Minute), day, start, time.Time{}, false},
		{"0s has no tolerance", start.Add(time.Second), 0, start, start, false},
		{"longest duration: capped at 1h", start.Add(59 * time.Minute), 1<<63 - 1, start, start, true},
		{"longest duration, due later", start.Add(2 * time.Hour), 1<<63 - 1, start, start, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dueAtRun(tt.dueAt, tt.iv, tt.now, tt.runStart); got != tt.want {
				t.Errorf("dueAtRun = %v, want %v", got, tt.want)
			}
		})
	}
}
