package cache

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

const day = 24 * time.Hour

// churnOrigin serves one page whose body is version v; with etag it
// carries an ETag and answers a matching If-None-Match with 304 (RFC 9110
// §13.1.2), without it every request gets a 200. stamp adds a timestamp
// that changes on every answer.
type churnOrigin struct {
	*origin
	version     atomic.Int64
	etag, stamp bool
	answers     atomic.Int64
}

func newChurnOrigin(t *testing.T, etag, stamp bool) *churnOrigin {
	c := &churnOrigin{etag: etag, stamp: stamp}
	c.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v, n := c.version.Load(), c.answers.Add(1)
		if c.etag {
			tag := fmt.Sprintf(`"v%d"`, v)
			w.Header().Set("ETag", tag)
			if r.Header.Get("If-None-Match") == tag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<p>version %d</p>", v)
		if c.stamp {
			fmt.Fprintf(w, "<footer>served at %d</footer>", n)
		}
	})
	return c
}

// adaptiveRun is the Transport of one run that starts now on s.
func adaptiveRun(t *testing.T, s *store.Store, clock *testClock, pol Policy, upstream http.RoundTripper) *transportEnv {
	t.Helper()
	e := newTransportEnvOn(t, s, Options{Policy: pol, Now: clock.Now, RunStart: clock.Now(), Upstream: upstream})
	e.clock = clock
	return e
}

// learnedInterval is the interval stored with key's effective validation.
func (e *transportEnv) learnedInterval(key string) time.Duration {
	e.t.Helper()
	var doc Entry
	if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, key), &doc); err != nil {
		e.t.Fatalf("no response stored under %s: %v", key, err)
	}
	iv, at := doc.IntervalSeconds, doc.ValidatedAt
	if raw := e.rawDoc(RevalidationsCollection, key); raw != nil {
		var rev Revalidation
		if err := bson.Unmarshal(raw, &rev); err == nil && revApplies(&doc, &rev) {
			iv, at = rev.IntervalSeconds, rev.ValidatedAt
			doc.Expires = rev.Expires
		}
	}
	if doc.Expires == nil || !doc.Expires.Equal(at.Add(time.Duration(iv)*time.Second)) {
		e.t.Errorf("expires %v, want the next due time %v + %ds", doc.Expires, at, iv)
	}
	return time.Duration(iv) * time.Second
}

// TestAdaptiveIntervals: each step starts a run at its time (from the
// first fetch) and gets the page once; the interval stored with the entry
// grows 1.5x the span the page stayed unchanged (a 304, or a 200 with the
// same body), halves when it changed, and stays within the bounds. A page
// not due is served with no request at all. These intervals depart from
// RFC 9111 §4.2 on purpose: the origin's freshness is not consulted.
func TestAdaptiveIntervals(t *testing.T) {
	type step struct {
		at       time.Duration // run start, after the first fetch
		change   bool          // the origin's page changes before the run
		served   string
		requests int64 // origin requests so far
		interval time.Duration
	}
	stamps := regexp.MustCompile(`<footer>.*</footer>`)
	tests := []struct {
		name        string
		etag, stamp bool
		adaptive    Adaptive
		steps       []step
	}{
		{"unchanged, 304s", true, false, Adaptive{}, []step{
			{0, false, ServedMiss, 1, day},
			{12 * time.Hour, false, ServedHit, 1, day},
			{day, false, ServedRevalidated, 2, 36 * time.Hour},
			{day + 34*time.Hour, false, ServedHit, 2, 36 * time.Hour},
			{day + 36*time.Hour, false, ServedRevalidated, 3, 54 * time.Hour},
		}},
		{"checked late: grows from the span", true, false, Adaptive{}, []step{
			{0, false, ServedMiss, 1, day},
			{4 * day, false, ServedRevalidated, 2, 6 * day},
		}},
		{"unchanged, same body without validators", false, false, Adaptive{}, []step{
			{0, false, ServedMiss, 1, day},
			{day, false, ServedMiss, 2, 36 * time.Hour},
			{2 * day, false, ServedHit, 2, 36 * time.Hour},
		}},
		{"changed, then clamped to min", true, false, Adaptive{Min: 4 * time.Hour}, []step{
			{0, false, ServedMiss, 1, day},
			{day, true, ServedMiss, 2, 12 * time.Hour},
			{day + 12*time.Hour, true, ServedMiss, 3, 6 * time.Hour},
			{day + 18*time.Hour, true, ServedMiss, 4, 4 * time.Hour},
			{day + 20*time.Hour, false, ServedHit, 4, 4 * time.Hour},
		}},
		{"clamped to max", true, false, Adaptive{Max: 2 * day}, []step{
			{0, false, ServedMiss, 1, day},
			{day, false, ServedRevalidated, 2, 36 * time.Hour},
			{day + 36*time.Hour, false, ServedRevalidated, 3, 2 * day},
		}},
		{"a timestamp the job ignores", false, true, Adaptive{Unchanged: func(prev, next []byte) bool {
			return bytes.Equal(stamps.ReplaceAll(prev, nil), stamps.ReplaceAll(next, nil))
		}}, []step{
			{0, false, ServedMiss, 1, day},
			{day, false, ServedMiss, 2, 36 * time.Hour},
			{day + 36*time.Hour, true, ServedMiss, 3, 18 * time.Hour},
		}},
		{"a timestamp counts as a change by default", false, true, Adaptive{}, []step{
			{0, false, ServedMiss, 1, day},
			{day, false, ServedMiss, 2, 12 * time.Hour},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newChurnOrigin(t, tt.etag, tt.stamp)
			s := storetest.Open(t)
			clock := newTestClock()
			t0 := clock.Now()
			pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}, Adaptive: tt.adaptive}
			url := o.URL + "/page"
			key := keyOf(t, url, pol)
			for i, st := range tt.steps {
				if st.change {
					o.version.Add(1)
				}
				clock.Advance(t0.Add(st.at).Sub(clock.Now()))
				e := adaptiveRun(t, s, clock, pol, nil)
				resp, body := e.get(nil, url)
				if got := Served(resp); got != st.served {
					t.Fatalf("step %d (+%s): served %q, want %q", i, st.at, got, st.served)
				}
				if want := fmt.Sprintf("<p>version %d</p>", o.version.Load()); !bytes.HasPrefix(body, []byte(want)) {
					t.Errorf("step %d: body %q, want the current version %q", i, body, want)
				}
				if got := o.requests.Load(); got != st.requests {
					t.Errorf("step %d (+%s): origin requests %d, want %d", i, st.at, got, st.requests)
				}
				if got := e.learnedInterval(key); got != st.interval {
					t.Errorf("step %d (+%s): interval %s, want %s", i, st.at, got, st.interval)
				}
			}
		})
	}
}

// TestAdaptiveToleranceFromRunStart: a page due within 10% of its
// interval (at most an hour) of the run's start counts as due for the
// whole run; the tolerance is measured from the run's start, not from the
// request's time; a Transport with no run (a proxy) has none.
func TestAdaptiveToleranceFromRunStart(t *testing.T) {
	tests := []struct {
		name      string
		runStart  time.Duration // after the first fetch; -1: no run
		request   time.Duration // after the first fetch
		served    string
		wantCalls int64
	}{
		{"due 30m after the run starts", day - 30*time.Minute, day - 30*time.Minute, ServedRevalidated, 2},
		{"due exactly an hour after", day - time.Hour, day - time.Hour, ServedRevalidated, 2},
		{"due 61m after", day - 61*time.Minute, day - 61*time.Minute, ServedHit, 1},
		{"requested 30m before due, run started 2h before", day - 2*time.Hour, day - 30*time.Minute, ServedHit, 1},
		{"run started 2h before, requested once due", day - 2*time.Hour, day, ServedRevalidated, 2},
		{"no run: no tolerance", -1, day - 30*time.Minute, ServedHit, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newChurnOrigin(t, true, false)
			s := storetest.Open(t)
			clock := newTestClock()
			t0 := clock.Now()
			pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
			url := o.URL + "/page"
			adaptiveRun(t, s, clock, pol, nil).expectServed(url, ServedMiss)

			opts := Options{Policy: pol, Now: clock.Now}
			if tt.runStart >= 0 {
				opts.RunStart = t0.Add(tt.runStart)
			}
			clock.Advance(t0.Add(tt.request).Sub(clock.Now()))
			newTransportEnvOn(t, s, opts).expectServed(url, tt.served)
			if got := o.requests.Load(); got != tt.wantCalls {
				t.Errorf("origin requests %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

// TestAdaptivePrecedence: the other sources of freshness over a learned
// interval, through the Transport (decide's table test covers every
// pair): --revalidate and a newer sitemap <lastmod> make a page that is
// not due a request; a trusted older <lastmod> keeps a due page fresh; a
// urls_expire_after pattern wins over expire_after: adaptive; in
// cache_control mode RFC 9111 decides (§4.2.1: max-age).
func TestAdaptivePrecedence(t *testing.T) {
	adaptive := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
	tests := []struct {
		name   string
		pol    Policy
		after  time.Duration
		ctx    func(context.Context, time.Time) context.Context
		served string
	}{
		{"not due", adaptive, time.Hour, nil, ServedHit},
		{"not due, --revalidate", adaptive, time.Hour, func(ctx context.Context, _ time.Time) context.Context { return WithRefresh(ctx) }, ServedRevalidated},
		{"not due, newer lastmod", adaptive, time.Hour, func(ctx context.Context, t0 time.Time) context.Context {
			return WithLastMod(ctx, LastModHint{LastMod: t0.Add(30 * time.Minute)})
		}, ServedRevalidated},
		{"due, trusted older lastmod", adaptive, 2 * day, func(ctx context.Context, t0 time.Time) context.Context {
			return WithLastMod(ctx, LastModHint{LastMod: t0.Add(-day), Trust: true})
		}, ServedHit},
		{"due, untrusted older lastmod", adaptive, 2 * day, func(ctx context.Context, t0 time.Time) context.Context {
			return WithLastMod(ctx, LastModHint{LastMod: t0.Add(-day)})
		}, ServedRevalidated},
		{"a url pattern over adaptive", Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive},
			URLsExpireAfter: []URLExpiry{{Pattern: "*/page", Expiry: Expiry{Kind: ExpireAfter, After: time.Minute}}}}, time.Hour, nil, ServedRevalidated},
		{"adaptive pattern over a duration", Policy{ExpireAfter: Expiry{Kind: ExpireAfter},
			URLsExpireAfter: []URLExpiry{{Pattern: "*/page", Expiry: Expiry{Kind: ExpireAdaptive}}}}, time.Hour, nil, ServedHit},
		{"cache_control ignores adaptive", Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}, CacheControl: true}, time.Hour, nil, ServedRevalidated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newChurnOrigin(t, true, false)
			s := storetest.Open(t)
			clock := newTestClock()
			t0 := clock.Now()
			url := o.URL + "/page"
			adaptiveRun(t, s, clock, tt.pol, nil).expectServed(url, ServedMiss)
			clock.Advance(tt.after)
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx, t0)
			}
			resp, _ := adaptiveRun(t, s, clock, tt.pol, nil).get(ctx, url)
			if got := Served(resp); got != tt.served {
				t.Errorf("served %q, want %q", got, tt.served)
			}
		})
	}
}

// TestAdaptiveOnReleaseFixture: entries written by the previous release
// have no interval; under expire_after: adaptive they take the initial one
// (a day): served with no request half a day after their last
// validation, revalidated three days after it, when the 304 finds the
// page unchanged over those three days and stores 1.5 times that.
func TestAdaptiveOnReleaseFixture(t *testing.T) {
	s := storetest.OpenFixtureWith(t, storetest.FixtureE6C68C8, Migrations()...)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" {
			t.Errorf("%s: unconditional request, want a revalidation", r.URL)
		}
		w.WriteHeader(http.StatusNotModified) // RFC 9110 §15.4.5
	})
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
	url := fixtureHost + "/products/1"
	key := keyOf(t, url, pol)
	var before Entry
	if err := bson.Unmarshal(mustGet(t, s.Collection(DefaultDatabase, ResponsesCollection), key), &before); err != nil {
		t.Fatal(err)
	}
	if before.IntervalSeconds != 0 {
		t.Fatalf("fixture entry has interval_seconds %d; the previous release wrote none", before.IntervalSeconds)
	}
	clock := &testClock{now: before.ValidatedAt.Add(12 * time.Hour)}
	hit := adaptiveRun(t, s, clock, pol, hostRewriter{o}).expectServed(url, ServedHit)
	clock.Advance(60 * time.Hour)
	e := adaptiveRun(t, s, clock, pol, hostRewriter{o})
	if again := e.expectServed(url, ServedRevalidated); !bytes.Equal(again, hit) {
		t.Error("the body changed across the 304")
	}
	if got, want := e.learnedInterval(key), 3*day*3/2; got != want {
		t.Errorf("interval after the 304 = %s, want %s (unchanged for 3 days since %s)", got, want, before.ValidatedAt)
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1 (the revalidation)", n)
	}
}

func mustGet(t *testing.T, c *store.Collection, id string) bson.Raw {
	t.Helper()
	raw, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return raw
}

// TestAdaptiveRule: the interval rule alone, the bounds' defaults, the
// tolerance and how intervals are written.
func TestAdaptiveRule(t *testing.T) {
	half := func(iv, _ time.Duration, _ bool) time.Duration { return iv / 2 }
	tests := []struct {
		name      string
		a         Adaptive
		iv, since time.Duration
		unchanged bool
		want      time.Duration
	}{
		{"first interval", Adaptive{}, 0, 0, true, day},
		{"unchanged on time", Adaptive{}, day, day, true, 36 * time.Hour},
		{"unchanged, checked early (--revalidate)", Adaptive{}, 4 * day, time.Hour, true, 6 * day},
		{"unchanged, checked late", Adaptive{}, day, 10 * day, true, 15 * day},
		{"changed", Adaptive{}, 4 * day, 10 * day, false, 2 * day},
		{"changed, at min", Adaptive{}, time.Hour, day, false, time.Hour},
		{"unchanged, at max", Adaptive{}, 25 * day, 25 * day, true, 30 * day},
		{"stored interval above a lowered max", Adaptive{Max: 2 * day}, 10 * day, 0, false, day},
		{"initial below min", Adaptive{Min: 2 * day}, 0, 0, true, 2 * day},
		{"a rule of its own, bounded", Adaptive{Rule: half}, 90 * time.Minute, 0, true, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.iv == 0 {
				if got := tt.a.interval(0); got != tt.want {
					t.Errorf("interval(0) = %s, want %s", got, tt.want)
				}
				return
			}
			if got := tt.a.next(tt.iv, tt.since, tt.unchanged); got != tt.want {
				t.Errorf("next(%s, %s, %v) = %s, want %s", tt.iv, tt.since, tt.unchanged, got, tt.want)
			}
		})
	}
	for iv, want := range map[time.Duration]time.Duration{time.Hour: 6 * time.Minute, day: time.Hour, 30 * day: time.Hour} {
		if got := Tolerance(iv); got != want {
			t.Errorf("Tolerance(%s) = %s, want %s", iv, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", 36 * time.Hour: "1d12h", 90 * time.Minute: "1h30m", 4*day + 61*time.Second: "4d1m1s"} {
		if got := FormatInterval(d); got != want {
			t.Errorf("FormatInterval(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestAdaptiveHostileStoredInterval: an interval edited by hand (in
// Compass) or written by another job's bounds is read within this
// policy's bounds: negative or zero means the initial interval, one past
// Duration's range or past max is max, one below min is min.
func TestAdaptiveHostileStoredInterval(t *testing.T) {
	tests := []struct {
		name    string
		seconds int64
		at      time.Duration
		served  string
	}{
		{"negative: initial, not due", -5, 12 * time.Hour, ServedHit},
		{"negative: initial, due", -5, day, ServedRevalidated},
		{"overflowing: max at most", 1 << 62, 30*day + time.Hour, ServedRevalidated},
		{"past max: max", 90 * 86400, 30*day + time.Hour, ServedRevalidated},
		{"below min: min, not due", 1, 30 * time.Minute, ServedHit},
		{"below min: min, due", 1, 2 * time.Hour, ServedRevalidated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newChurnOrigin(t, true, false)
			s := storetest.Open(t)
			clock := newTestClock()
			pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
			url := o.URL + "/page"
			e := adaptiveRun(t, s, clock, pol, nil)
			e.expectServed(url, ServedMiss)
			rev := Revalidation{ID: keyOf(t, url, pol), ValidatedAt: clock.Now(), IntervalSeconds: tt.seconds}
			if err := e.db.Collection(RevalidationsCollection).Upsert(context.Background(), rev.ID, rev); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.at)
			adaptiveRun(t, s, clock, pol, nil).expectServed(url, tt.served)
		})
	}
}

// TestAdaptiveRedirectHop: a redirect hop recorded under expire_after:
// adaptive keeps the initial interval (it learns nothing), with the same
// tolerance at the run's start as pages.
func TestAdaptiveRedirectHop(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/page", http.StatusFound) // not stored as a response: a hop
	})
	s := storetest.Open(t)
	clock := newTestClock()
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
	url := o.URL + "/r"
	steps := []struct {
		after    time.Duration
		served   string
		requests int64
	}{
		{0, ServedMiss, 1},
		{12 * time.Hour, ServedHit, 1},
		{12*time.Hour - 30*time.Minute, ServedMiss, 2}, // due 30 min after this run's start
	}
	for i, st := range steps {
		clock.Advance(st.after)
		resp, _ := adaptiveRun(t, s, clock, pol, nil).get(nil, url)
		if Served(resp) != st.served || resp.StatusCode != http.StatusFound {
			t.Errorf("step %d: served %q status %d, want %q 302", i, Served(resp), resp.StatusCode, st.served)
		}
		if n := o.requests.Load(); n != st.requests {
			t.Errorf("step %d: origin requests %d, want %d", i, n, st.requests)
		}
	}
}

// TestAdaptiveSwitchedOff: entries learned under expire_after: adaptive
// are read by any other expiry as before (the interval is ignored), and
// learning starts again from them when adaptive comes back.
func TestAdaptiveSwitchedOff(t *testing.T) {
	o := newChurnOrigin(t, true, false)
	s := storetest.Open(t)
	clock := newTestClock()
	adaptive := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}}
	hourly := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
	url := o.URL + "/page"
	key := keyOf(t, url, adaptive)
	adaptiveRun(t, s, clock, adaptive, nil).expectServed(url, ServedMiss)
	clock.Advance(2 * time.Hour) // within the learned day, past the hour
	e := adaptiveRun(t, s, clock, hourly, nil)
	e.expectServed(url, ServedRevalidated)
	if raw := e.rawDoc(RevalidationsCollection, key); raw == nil || raw.Lookup("interval_seconds").Type != 0 {
		t.Errorf("a 304 under expire_after: 1h stored interval_seconds: %v", raw)
	}
	clock.Advance(day)
	e = adaptiveRun(t, s, clock, adaptive, nil)
	e.expectServed(url, ServedRevalidated)
	if got, want := e.learnedInterval(key), 36*time.Hour; got != want {
		t.Errorf("interval after adaptive came back = %s, want %s (1.5 x the day unchanged since the last 304)", got, want)
	}
}
