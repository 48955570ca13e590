package cache

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestLastModHint checks how a sitemap's <lastmod> changes the decision on
// a stored entry (WithLastMod): newer than the last validation makes it
// due now, even fresh; older, with trust, makes an expired one fresh. The
// entry is stored at the clock's start and validated by a conditional
// request (RFC 9110 §13.1.1, If-None-Match) when due.
func TestLastModHint(t *testing.T) {
	hour := Expiry{Kind: ExpireAfter, After: time.Hour}
	cases := []struct {
		name    string
		policy  Policy
		advance time.Duration // clock moved after the entry is stored
		lastmod time.Duration // <lastmod> relative to the store time
		trust   bool
		refresh bool
		want    string
	}{
		{name: "no hint, fresh", policy: Policy{ExpireAfter: hour}, advance: time.Minute, want: ServedHit},
		{name: "newer lastmod makes a fresh entry due", policy: Policy{ExpireAfter: hour}, advance: time.Minute, lastmod: time.Second, want: ServedRevalidated},
		{name: "newer lastmod beats expire_after never", policy: Policy{}, advance: 24 * time.Hour, lastmod: time.Hour, want: ServedRevalidated},
		{name: "older lastmod without trust leaves an expired entry due", policy: Policy{ExpireAfter: hour}, advance: 2 * time.Hour, lastmod: -time.Hour, want: ServedRevalidated},
		{name: "older lastmod with trust serves an expired entry", policy: Policy{ExpireAfter: hour}, advance: 2 * time.Hour, lastmod: -time.Hour, trust: true, want: ServedHit},
		{name: "equal lastmod with trust counts as fresh", policy: Policy{ExpireAfter: hour}, advance: 2 * time.Hour, lastmod: 0, trust: true, want: ServedHit},
		{name: "trust does not override no-cache in RFC mode", policy: Policy{CacheControl: true}, advance: time.Minute, lastmod: -time.Hour, trust: true, want: ServedRevalidated},
		{name: "refresh wins over trust", policy: Policy{ExpireAfter: hour}, advance: time.Minute, lastmod: -time.Hour, trust: true, refresh: true, want: ServedRevalidated},
		{name: "newer lastmod is never served stale", policy: Policy{ExpireAfter: hour, StaleWhileRevalidate: time.Hour}, advance: 90 * time.Minute, lastmod: time.Minute, want: ServedRevalidated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := versioned("etag")
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.RawQuery == "cc" {
					w.Header().Set("Cache-Control", "no-cache")
				}
				h(w, r)
			})
			e := newTransportEnv(t, Options{Policy: tc.policy})
			url := o.URL + "/page"
			if tc.policy.CacheControl {
				url += "?cc"
			}
			stored := e.clock.Now()
			e.expectServed(url, ServedMiss)
			e.clock.Advance(tc.advance)
			ctx := context.Background()
			if tc.lastmod != 0 || tc.trust {
				ctx = WithLastMod(ctx, LastModHint{LastMod: stored.Add(tc.lastmod), Trust: tc.trust})
			}
			if tc.refresh {
				ctx = WithRefresh(ctx)
			}
			resp, _ := e.get(ctx, url)
			if got := Served(resp); got != tc.want {
				t.Errorf("served %q, want %q", got, tc.want)
			}
		})
	}
}
