package cache

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestTransportStaleDirectives(t *testing.T) {
	tests := []struct {
		name    string
		crawler bool
		policy  Policy
		cc      string // the origin's Cache-Control
		req     []string
		fail    bool // the origin answers 500 after the first response
		advance time.Duration
		want    string
		status  int
		body    string
		thenHit bool // after background work, the next request is a hit of v2
		kept    bool // the next request is served the stored v1 again
	}{
		{name: "RFC 5861 §3 stale-while-revalidate serves stale and refreshes", cc: "max-age=60, stale-while-revalidate=30", advance: 70 * time.Second, want: ServedStale, status: 200, body: "v1", thenHit: true},
		{name: "RFC 5861 §3 past the stale-while-revalidate window: foreground", cc: "max-age=60, stale-while-revalidate=30", advance: 100 * time.Second, want: ServedMiss, status: 200, body: "v2"},
		{name: "RFC 9111 §5.2.2.2 must-revalidate overrides stale-while-revalidate", cc: "max-age=60, stale-while-revalidate=30, must-revalidate", advance: 70 * time.Second, want: ServedMiss, status: 200, body: "v2"},
		{name: "RFC 5861 §4 stale-if-error serves stale on a 500", cc: "max-age=60, stale-if-error=600", fail: true, advance: 120 * time.Second, want: ServedStale, status: 200, body: "v1", kept: true},
		{name: "RFC 5861 §4 past the stale-if-error window: the error", cc: "max-age=60, stale-if-error=600", fail: true, advance: 700 * time.Second, want: ServedMiss, status: 500, body: "v2"},
		{name: "RFC 5861 §4 request stale-if-error", cc: "max-age=60", req: []string{"Cache-Control", "stale-if-error=600"}, fail: true, advance: 120 * time.Second, want: ServedStale, status: 200, body: "v1"},
		{name: "RFC 5861 §4 response directive wins over the policy", policy: Policy{StaleIfError: time.Hour}, cc: "max-age=60, stale-if-error=10", fail: true, advance: 120 * time.Second, want: ServedMiss, status: 500, body: "v2"},
		{name: "RFC 5861 §4 no directive: the policy's stale_if_error", policy: Policy{StaleIfError: time.Hour}, cc: "max-age=60", fail: true, advance: 120 * time.Second, want: ServedStale, status: 200, body: "v1"},
		{name: "crawler policy ignores the response's stale-if-error", crawler: true, cc: "max-age=60, stale-if-error=600", fail: true, advance: 120 * time.Second, want: ServedMiss, status: 500, body: "v2"},
	}
	s := openTestStore(t)
	for _, stream := range []bool{false, true} {
		for _, tc := range tests {
			name := tc.name
			if stream {
				name = "streaming " + name
			}
			t.Run(name, func(t *testing.T) {
				clock := newTestClock()
				var n atomic.Int64
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Date", clock.Now().Format(http.TimeFormat))
					w.Header().Set("Cache-Control", tc.cc)
					i := n.Add(1)
					if tc.fail && i > 1 {
						w.WriteHeader(http.StatusInternalServerError)
					}
					fmt.Fprintf(w, "v%d", i)
				})
				p := tc.policy
				p.CacheControl = !tc.crawler
				if tc.crawler {
					p.ExpireAfter = Expiry{Kind: ExpireAfter, After: time.Minute}
				}
				e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: p, Stream: stream})
				tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
				e.expectServed(o.URL+"/st"+tp, ServedMiss)
				clock.Advance(tc.advance)
				resp, body := e.get(nil, o.URL+"/st"+tp, tc.req...)
				if Served(resp) != tc.want || resp.StatusCode != tc.status || string(body) != tc.body {
					t.Fatalf("served %q %d %q, want %q %d %q", Served(resp), resp.StatusCode, body, tc.want, tc.status, tc.body)
				}
				if tc.kept { // the explicitly fresh 500 did not replace it
					resp, body := e.get(nil, o.URL+"/st"+tp)
					if resp.StatusCode != 200 || string(body) != "v1" {
						t.Errorf("next request: served %q %d %q, want the stored v1 again", Served(resp), resp.StatusCode, body)
					}
				}
				if tc.thenHit {
					e.tr.Close() // waits for the background refresh
					resp, body := e.get(nil, o.URL+"/st"+tp)
					if Served(resp) != ServedHit || string(body) != "v2" {
						t.Errorf("after the background refresh: served %q %q, want hit v2", Served(resp), body)
					}
				}
			})
		}
	}
}
