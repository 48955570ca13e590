package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestTransport304SelectsStoredResponse(t *testing.T) {
	tests := []struct {
		name     string
		crawler  bool
		resp200  []string // the stored response's validators
		resp304  []string // the 304's headers
		want     string   // how the revalidation is served
		wantBody string
	}{
		{name: "RFC 9111 §4.3.4 same strong ETag updates", resp200: []string{"ETag", `"a"`}, resp304: []string{"ETag", `"a"`}, want: ServedRevalidated, wantBody: "v1"},
		{name: "RFC 9111 §4.3.4 other strong ETag updates nothing", resp200: []string{"ETag", `"a"`}, resp304: []string{"ETag", `"b"`}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 strong ETag against a weak stored one: strong comparison fails", resp200: []string{"ETag", `W/"a"`}, resp304: []string{"ETag", `"a"`}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 strong ETag against a response with only Last-Modified", resp200: []string{"Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT"}, resp304: []string{"ETag", `"a"`}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 weak ETag matches weakly", resp200: []string{"ETag", `W/"a"`}, resp304: []string{"ETag", `W/"a"`}, want: ServedRevalidated, wantBody: "v1"},
		{name: "RFC 9111 §4.3.4 other weak ETag updates nothing", resp200: []string{"ETag", `W/"a"`}, resp304: []string{"ETag", `W/"b"`}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 same Last-Modified updates", resp200: []string{"Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT"}, resp304: []string{"Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT"}, want: ServedRevalidated, wantBody: "v1"},
		{name: "RFC 9111 §4.3.4 other Last-Modified updates nothing", resp200: []string{"Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT"}, resp304: []string{"Last-Modified", "Wed, 04 Mar 2026 00:00:00 GMT"}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 304 without validators answers our own conditional", resp200: []string{"ETag", `"a"`}, resp304: nil, want: ServedRevalidated, wantBody: "v1"},
		{name: "RFC 9111 §4.3.4 crawler policy: other strong ETag updates nothing", crawler: true, resp200: []string{"ETag", `"a"`}, resp304: []string{"ETag", `"b"`}, want: ServedMiss, wantBody: "v2"},
		{name: "RFC 9111 §4.3.4 crawler policy: same strong ETag updates", crawler: true, resp200: []string{"ETag", `"a"`}, resp304: []string{"ETag", `"a"`}, want: ServedRevalidated, wantBody: "v1"},
	}
	s := openTestStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			var n atomic.Int64
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
					headerPairs(w.Header(), clock.Now(), tc.resp304)
					w.Header().Set("X-From-304", "1")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				headerPairs(w.Header(), clock.Now(), tc.resp200)
				fmt.Fprintf(w, "v%d", n.Add(1))
			})
			p := Policy{CacheControl: !tc.crawler}
			if tc.crawler {
				p.ExpireAfter = Expiry{Kind: ExpireAfter, After: time.Minute}
			}
			e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: p})
			tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
			e.expectServed(o.URL+"/r"+tp, ServedMiss)
			clock.Advance(61 * time.Second)
			resp, body := e.get(nil, o.URL+"/r"+tp)
			if Served(resp) != tc.want || string(body) != tc.wantBody {
				t.Fatalf("served %q body %q, want %q %q", Served(resp), body, tc.want, tc.wantBody)
			}
			if got := resp.Header.Get("X-From-304") != ""; got != (tc.want == ServedRevalidated) {
				t.Errorf("304's header merged = %v, want %v", got, tc.want == ServedRevalidated)
			}
			// What is stored now answers a fresh hit with the same body.
			resp, body = e.get(nil, o.URL+"/r"+tp)
			if Served(resp) != ServedHit || string(body) != tc.wantBody {
				t.Errorf("next request: served %q body %q, want hit %q", Served(resp), body, tc.wantBody)
			}
		})
	}
}

func TestTransportHeadFreshensGet(t *testing.T) {
	tests := []struct {
		name    string
		head    []string      // the HEAD response's headers
		advance time.Duration // between the GET and the HEAD; the next GET follows
		want    string        // how the next GET is served
		merged  bool          // the HEAD's X-Head reached the stored GET
	}{
		{name: "RFC 9111 §4.3.5 matching ETag freshens the stored GET", head: []string{"ETag", `"a"`, "Content-Length", "4"}, advance: 61 * time.Second, want: ServedHit, merged: true},
		{name: "RFC 9111 §4.3.5 matching Last-Modified freshens the stored GET", head: []string{"Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT"}, advance: 61 * time.Second, want: ServedHit, merged: true},
		{name: "RFC 9111 §4.3.5 other ETag makes the stored GET stale", head: []string{"ETag", `"b"`}, advance: 10 * time.Second, want: ServedMiss},
		{name: "RFC 9111 §4.3.5 other Content-Length makes the stored GET stale", head: []string{"ETag", `"a"`, "Content-Length", "99"}, advance: 10 * time.Second, want: ServedMiss},
		{name: "RFC 9111 §4.3.5 HEAD without validators leaves the GET alone", head: nil, advance: 61 * time.Second, want: ServedRevalidated},
	}
	s := openTestStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Date", clock.Now().Format(http.TimeFormat))
				if r.Method == http.MethodHead {
					headerPairs(w.Header(), clock.Now(), tc.head)
					w.Header().Set("X-Head", "1")
					return
				}
				w.Header().Set("ETag", `"a"`)
				w.Header().Set("Last-Modified", "Tue, 03 Mar 2026 00:00:00 GMT")
				if r.Header.Get("If-None-Match") == `"a"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "body")
			})
			e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: Policy{CacheControl: true}})
			tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
			e.expectServed(o.URL+"/h"+tp, ServedMiss)
			clock.Advance(tc.advance)
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodHead, o.URL+"/h"+tp, nil)
			resp, err := e.tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			resp, body := e.get(nil, o.URL+"/h"+tp)
			if Served(resp) != tc.want || string(body) != "body" {
				t.Fatalf("GET after HEAD: served %q body %q, want %q body", Served(resp), body, tc.want)
			}
			if got := resp.Header.Get("X-Head") != ""; got != tc.merged {
				t.Errorf("HEAD's header in the GET = %v, want %v", got, tc.merged)
			}
		})
	}
}
