package cache

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestTransportRFCStorable(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		shared  bool
		status  int
		resp    []string // origin's headers besides Date
		req     []string // request headers of both requests
		want    string   // how the second request is served
		present []string // headers the second response must have
		absent  []string // headers it must not have
	}{
		{name: "RFC 9111 §3 204 with max-age is stored", status: 204, resp: []string{"Cache-Control", "max-age=600"}, want: ServedHit},
		{name: "RFC 9111 §3 302 with max-age is stored", status: 302, resp: []string{"Cache-Control", "max-age=600", "Location", "/elsewhere"}, want: ServedHit, present: []string{"Location"}},
		{name: "RFC 9111 §3 307 with Expires is stored", status: 307, resp: []string{"Expires", "now+600", "Location", "/x"}, want: ServedHit},
		{name: "RFC 9111 §3 500 with max-age is stored", status: 500, resp: []string{"Cache-Control", "max-age=600"}, want: ServedHit},
		{name: "RFC 9111 §3 403 with public and max-age is stored", status: 403, resp: []string{"Cache-Control", "public, max-age=600"}, want: ServedHit},
		{name: "RFC 9111 §3 explicit freshness wins over allowable_codes", policy: Policy{AllowableCodes: []int{200}}, status: 404, resp: []string{"Cache-Control", "max-age=600"}, want: ServedHit},
		{name: "RFC 9111 §4.2.2 404 is heuristically cacheable", status: 404, resp: []string{"Last-Modified", "now-864000"}, want: ServedHit},
		{name: "RFC 9111 §4.2.2 501 is heuristically cacheable", status: 501, resp: []string{"Last-Modified", "now-864000"}, want: ServedHit},
		{name: "RFC 9111 §4.2.2 allowable_codes, when set, limits heuristic caching", policy: Policy{AllowableCodes: []int{200}}, status: 404, resp: []string{"Last-Modified", "now-864000"}, want: ServedMiss},
		{name: "RFC 9110 §15.1 500 without explicit freshness is not stored", status: 500, resp: []string{"Last-Modified", "now-864000"}, want: ServedMiss},
		{name: "RFC 9110 §15.1 302 without explicit freshness is not stored", status: 302, resp: []string{"Last-Modified", "now-864000", "Location", "/x"}, want: ServedMiss},
		{name: "RFC 9111 §3 s-maxage makes a shared cache store", shared: true, status: 204, resp: []string{"Cache-Control", "s-maxage=600"}, want: ServedHit},
		{name: "RFC 9111 §3 s-maxage alone does not make a private cache store", status: 204, resp: []string{"Cache-Control", "s-maxage=600"}, want: ServedMiss},
		{name: "RFC 9111 §5.2.2.3 must-understand ignores no-store for an understood status", status: 200, resp: []string{"Cache-Control", "must-understand, no-store, max-age=600"}, want: ServedHit},
		{name: "RFC 9111 §5.2.2.3 must-understand with an unknown status is not stored", status: 299, resp: []string{"Cache-Control", "must-understand, no-store, max-age=600"}, want: ServedMiss},
		{name: "RFC 9111 §5.2.2.3 must-understand does not override a request's no-store", status: 200, resp: []string{"Cache-Control", "must-understand, no-store, max-age=600"}, req: []string{"Cache-Control", "no-store"}, want: ServedMiss},
		{name: "RFC 9111 §5.2.2.5 no-store without must-understand is not stored", status: 200, resp: []string{"Cache-Control", "no-store, max-age=600"}, want: ServedMiss},
		{name: "RFC 9111 §5.2.2.4 qualified no-cache: reused without the named field", status: 200, resp: []string{"Cache-Control", `no-cache="Set-Cookie", max-age=600`, "Set-Cookie", "a=1", "X-Other", "kept"}, want: ServedHit, present: []string{"X-Other"}, absent: []string{"Set-Cookie"}},
		{name: "RFC 9111 §5.2.2.4 qualified no-cache with two fields", status: 200, resp: []string{"Cache-Control", `max-age=600, no-cache="x-a, X-B"`, "X-A", "1", "X-B", "2", "X-C", "3"}, want: ServedHit, present: []string{"X-C"}, absent: []string{"X-A", "X-B"}},
		{name: "RFC 9111 §5.2.2.4 unqualified no-cache revalidates", status: 200, resp: []string{"Cache-Control", "no-cache, max-age=600", "ETag", `"v"`, "Set-Cookie", "a=1"}, want: ServedRevalidated, present: []string{"Set-Cookie"}},
		{name: "RFC 9111 §5.2.2.7 qualified private: a private cache keeps the field", status: 200, resp: []string{"Cache-Control", `private="X-Foo", max-age=600`, "X-Foo", "mine"}, want: ServedHit, present: []string{"X-Foo"}},
		{name: "RFC 9111 §5.2.2.7 qualified private: a shared cache stores without it", shared: true, status: 200, resp: []string{"Cache-Control", `private="X-Foo", max-age=600`, "X-Foo", "mine"}, want: ServedHit, absent: []string{"X-Foo"}},
		{name: "RFC 9111 §5.2.2.7 unqualified private: a private cache stores", status: 200, resp: []string{"Cache-Control", "private, max-age=600"}, want: ServedHit},
		{name: "crawler policy keeps allowable_codes: 204 with max-age not stored", policy: Policy{CacheControl: false}, status: 204, resp: []string{"Cache-Control", "max-age=600"}, want: ServedMiss},
	}
	s := openTestStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				now := clock.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				headerPairs(w.Header(), now, tc.resp)
				if inm := r.Header.Get("If-None-Match"); inm != "" && inm == w.Header().Get("ETag") {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.WriteHeader(tc.status)
				if tc.status != 204 {
					io.WriteString(w, "body")
				}
			})
			p := tc.policy
			p.CacheControl = !strings.HasPrefix(tc.name, "crawler")
			e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: p, Shared: tc.shared})
			tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
			if resp, _ := e.get(nil, o.URL+"/s"+tp, tc.req...); Served(resp) != ServedMiss || resp.StatusCode != tc.status {
				t.Fatalf("first request: served %q status %d, want miss %d", Served(resp), resp.StatusCode, tc.status)
			}
			resp, _ := e.get(nil, o.URL+"/s"+tp, tc.req...)
			if got := Served(resp); got != tc.want || resp.StatusCode != tc.status {
				t.Fatalf("second request: served %q status %d, want %q %d", got, resp.StatusCode, tc.want, tc.status)
			}
			for _, h := range tc.present {
				if resp.Header.Get(h) == "" {
					t.Errorf("header %s missing, want it: %v", h, resp.Header)
				}
			}
			for _, h := range tc.absent {
				if v := resp.Header.Values(h); len(v) > 0 {
					t.Errorf("header %s = %q, want none", h, v)
				}
			}
		})
	}
}
