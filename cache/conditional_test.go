package cache

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestTransportClientConditionals(t *testing.T) {
	const lmAge = 10 * 24 * time.Hour
	tests := []struct {
		name      string
		method    string        // GET if empty
		req       []string      // the client's request headers; "LM" and "LM+N" become dates
		advance   time.Duration // after the response was stored
		empty     bool          // nothing stored before the request
		want      int
		served    string
		body      string
		cr        string // Content-Range
		upstreamH string // a header the origin must not have seen from the client
	}{
		{name: "RFC 9110 §13.1.2 If-None-Match matches: 304", req: []string{"If-None-Match", `"v1"`}, want: 304, served: ServedHit},
		{name: "RFC 9110 §13.1.2 If-None-Match weak comparison", req: []string{"If-None-Match", `W/"v1"`}, want: 304, served: ServedHit},
		{name: "RFC 9110 §13.1.2 If-None-Match list", req: []string{"If-None-Match", `"x", "v1"`}, want: 304, served: ServedHit},
		{name: "RFC 9110 §13.1.2 If-None-Match star", req: []string{"If-None-Match", "*"}, want: 304, served: ServedHit},
		{name: "RFC 9110 §13.1.2 If-None-Match other tag: 200", req: []string{"If-None-Match", `"v0"`}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.2.2 If-None-Match decides before If-Modified-Since", req: []string{"If-None-Match", `"v0"`, "If-Modified-Since", "LM+60"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.1.3 If-Modified-Since not modified since: 304", req: []string{"If-Modified-Since", "LM"}, want: 304, served: ServedHit},
		{name: "RFC 9110 §13.1.3 If-Modified-Since modified since: 200", req: []string{"If-Modified-Since", "LM-60"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.1.3 invalid If-Modified-Since is ignored", req: []string{"If-Modified-Since", "yesterday"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.1.2 HEAD If-None-Match: 304", method: http.MethodHead, req: []string{"If-None-Match", `"v1"`}, empty: false, want: 304, served: ServedHit},
		{name: "RFC 9110 §14.1.2 first-last", req: []string{"Range", "bytes=0-3"}, want: 206, served: ServedHit, body: "0123", cr: "bytes 0-3/10"},
		{name: "RFC 9110 §14.1.2 first-", req: []string{"Range", "bytes=5-"}, want: 206, served: ServedHit, body: "56789", cr: "bytes 5-9/10"},
		{name: "RFC 9110 §14.1.2 suffix", req: []string{"Range", "bytes=-3"}, want: 206, served: ServedHit, body: "789", cr: "bytes 7-9/10"},
		{name: "RFC 9110 §14.1.2 suffix longer than the body", req: []string{"Range", "bytes=-30"}, want: 206, served: ServedHit, body: "0123456789", cr: "bytes 0-9/10"},
		{name: "RFC 9110 §14.1.2 last past the end is clamped", req: []string{"Range", "bytes=8-100"}, want: 206, served: ServedHit, body: "89", cr: "bytes 8-9/10"},
		{name: "RFC 9110 §15.5.17 unsatisfiable: 416", req: []string{"Range", "bytes=20-30"}, want: 416, served: ServedHit, cr: "bytes */10"},
		{name: "RFC 9110 §15.5.17 zero suffix: 416", req: []string{"Range", "bytes=-0"}, want: 416, served: ServedHit, cr: "bytes */10"},
		{name: "RFC 9110 §14.2 several ranges are served whole", req: []string{"Range", "bytes=0-1,5-6"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §14.2 other unit is ignored", req: []string{"Range", "items=0-1"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §14.1.1 last before first is invalid, ignored", req: []string{"Range", "bytes=5-2"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §14.2 Range on HEAD is ignored", method: http.MethodHead, req: []string{"Range", "bytes=0-3"}, want: 200, served: ServedHit},
		{name: "RFC 9110 §13.1.5 If-Range same strong tag: 206", req: []string{"Range", "bytes=0-3", "If-Range", `"v1"`}, want: 206, served: ServedHit, body: "0123", cr: "bytes 0-3/10"},
		{name: "RFC 9110 §13.1.5 If-Range other tag: 200", req: []string{"Range", "bytes=0-3", "If-Range", `"v0"`}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.1.5 If-Range weak tag never matches", req: []string{"Range", "bytes=0-3", "If-Range", `W/"v1"`}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.1.5 If-Range same date: 206", req: []string{"Range", "bytes=0-3", "If-Range", "LM"}, want: 206, served: ServedHit, body: "0123", cr: "bytes 0-3/10"},
		{name: "RFC 9110 §13.1.5 If-Range other date: 200", req: []string{"Range", "bytes=0-3", "If-Range", "LM+1"}, want: 200, served: ServedHit, body: "0123456789"},
		{name: "RFC 9110 §13.2.2 If-None-Match before Range", req: []string{"If-None-Match", `"v1"`, "Range", "bytes=0-3"}, want: 304, served: ServedHit},
		{name: "RFC 9111 §4.3.2 stale: revalidated with the cache's validators, then 304", req: []string{"If-None-Match", `"v1"`}, advance: 700 * time.Second, want: 304, served: ServedRevalidated, upstreamH: "If-Modified-Since"},
		{name: "RFC 9111 §4.3.2 stale: revalidated, then 206", req: []string{"Range", "bytes=2-3"}, advance: 700 * time.Second, want: 206, served: ServedRevalidated, body: "23", cr: "bytes 2-3/10", upstreamH: "Range"},
		{name: "RFC 9111 §4.3.2 nothing stored: the origin answers the range", empty: true, req: []string{"Range", "bytes=0-3"}, want: 206, served: ServedMiss, body: "0123", cr: "bytes 0-3/10"},
		{name: "RFC 9111 §4.3.2 If-Match goes to the origin", req: []string{"If-Match", `"v1"`}, want: 200, served: ServedMiss, body: "0123456789"},
	}
	s := openTestStore(t)
	for _, mode := range []struct{ crawler, shared, stream bool }{
		{false, false, false}, {true, false, false}, {false, true, false}, {true, true, false}, {false, true, true},
	} {
		crawler := mode.crawler
		for _, tc := range tests {
			name := tc.name
			if crawler {
				name = "crawler policy " + name
			}
			if mode.shared {
				name = "shared " + name
			}
			if mode.stream {
				name = "streaming " + name
			}
			t.Run(name, func(t *testing.T) {
				clock := newTestClock()
				modTime := clock.Now().Add(-lmAge)
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Date", clock.Now().Format(http.TimeFormat))
					w.Header().Set("Cache-Control", "max-age=600")
					w.Header().Set("ETag", `"v1"`)
					w.Header().Set("Content-Type", "text/plain")
					http.ServeContent(w, r, "", modTime, bytes.NewReader([]byte("0123456789")))
				})
				p := Policy{CacheControl: !crawler}
				if crawler {
					p.ExpireAfter = Expiry{Kind: ExpireAfter, After: 600 * time.Second}
				}
				e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: p, Shared: mode.shared, Stream: mode.stream})
				tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				if !tc.empty { // store the response to the same method
					req, _ := http.NewRequestWithContext(context.Background(), method, o.URL+"/c"+tp, nil)
					resp, err := e.tr.RoundTrip(req)
					if err != nil || Served(resp) != ServedMiss {
						t.Fatalf("first request: %v, served %q", err, Served(resp))
					}
					io.Copy(io.Discard, resp.Body) // a streamed body is stored once read whole
					resp.Body.Close()
				}
				clock.Advance(tc.advance)
				req, _ := http.NewRequestWithContext(context.Background(), method, o.URL+"/c"+tp, nil)
				for i := 0; i+1 < len(tc.req); i += 2 {
					v := tc.req[i+1]
					if v == "LM" || len(v) > 2 && v[:2] == "LM" {
						d, _ := time.ParseDuration(v[2:] + "s")
						if v == "LM" {
							d = 0
						}
						v = modTime.Add(d).UTC().Format(http.TimeFormat)
					}
					req.Header.Add(tc.req[i], v)
				}
				resp, err := e.tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				buf.ReadFrom(resp.Body)
				if resp.StatusCode != tc.want || Served(resp) != tc.served {
					t.Fatalf("status %d served %q, want %d %q", resp.StatusCode, Served(resp), tc.want, tc.served)
				}
				if method == http.MethodGet && buf.String() != tc.body {
					t.Errorf("body %q, want %q", buf.String(), tc.body)
				}
				if got := resp.Header.Get("Content-Range"); got != tc.cr {
					t.Errorf("Content-Range %q, want %q", got, tc.cr)
				}
				if tc.want == 304 && (resp.Header.Get("ETag") != `"v1"` || resp.Header.Get("Content-Type") != "") {
					t.Errorf("304 headers %v: want ETag and no Content-Type (RFC 9110 §15.4.5)", resp.Header)
				}
				if tc.want == 206 && resp.ContentLength != int64(len(tc.body)) {
					t.Errorf("206 ContentLength %d, want %d", resp.ContentLength, len(tc.body))
				}
				if tc.upstreamH != "" {
					if h := o.header(); tc.upstreamH == "Range" && h.Get("Range") != "" || tc.upstreamH != "Range" && h.Get("If-None-Match") != `"v1"` {
						t.Errorf("origin saw %v: want the cache's own conditional, not the client's fields", h)
					}
				}
			})
		}
	}
}

func TestByteRange(t *testing.T) {
	tests := []struct {
		name            string
		v               string
		size            int64
		first, last     int64
		ok, satisfiable bool
	}{
		{"RFC 9110 §14.1.2 first-last", "bytes=0-3", 10, 0, 3, true, true},
		{"RFC 9110 §14.1.2 unit is case-insensitive, spaces around", " Bytes = 2-3 ", 10, 2, 3, true, true},
		{"RFC 9110 §14.1.2 last past int64 is clamped", "bytes=1-99999999999999999999", 10, 1, 9, true, true},
		{"RFC 9110 §14.1.2 first past int64 is unsatisfiable", "bytes=99999999999999999999-", 10, 0, 0, true, false},
		{"RFC 9110 §14.1.2 suffix past int64 is the whole body", "bytes=-99999999999999999999", 10, 0, 9, true, true},
		{"RFC 9110 §14.1.2 first at the end is unsatisfiable", "bytes=10-", 10, 0, 0, true, false},
		{"RFC 9110 §14.1.1 negative is malformed", "bytes=--1", 10, 0, 0, false, false},
		{"RFC 9110 §14.1.1 no dash is malformed", "bytes=5", 10, 0, 0, false, false},
		{"RFC 9110 §14.1.1 empty spec is malformed", "bytes=-", 10, 0, 0, false, false},
		{"RFC 9110 §14.1.1 signs are malformed", "bytes=+1-2", 10, 0, 0, false, false},
		{"RFC 9110 §14.2 several ranges are not one", "bytes=0-1, 3-4", 10, 0, 0, false, false},
		{"RFC 9110 §14.1.1 zero-length body: served whole", "bytes=0-1", 0, 0, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, l, ok, sat := byteRange(tc.v, tc.size)
			if f != tc.first || l != tc.last || ok != tc.ok || sat != tc.satisfiable {
				t.Errorf("byteRange(%q, %d) = %d, %d, %v, %v; want %d, %d, %v, %v", tc.v, tc.size, f, l, ok, sat, tc.first, tc.last, tc.ok, tc.satisfiable)
			}
		})
	}
}

// TestTransportConcurrentConditionals: clients asking for different
// ranges and conditionals of one stale entry at once (their revalidations
// coalesce when they overlap) each get their own answer (RFC 9110
// §13.2.2, §14).
func TestTransportConcurrentConditionals(t *testing.T) {
	clock := newTestClock()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", clock.Now().Format(http.TimeFormat))
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", clock.Now().Add(-time.Hour), bytes.NewReader([]byte("0123456789")))
	})
	e := newTransportEnv(t, Options{Now: clock.Now, Policy: Policy{CacheControl: true}})
	e.expectServed(o.URL+"/cc", ServedMiss)
	clock.Advance(time.Hour)
	type ask struct {
		h    []string
		want int
		body string
	}
	asks := []ask{
		{[]string{"Range", "bytes=0-1"}, 206, "01"},
		{[]string{"Range", "bytes=-2"}, 206, "89"},
		{[]string{"If-None-Match", `"v1"`}, 304, ""},
		{nil, 200, "0123456789"},
		{[]string{"Range", "bytes=50-"}, 416, ""},
		{[]string{"If-None-Match", `"v0"`, "Range", "bytes=3-4"}, 206, "34"},
	}
	type result struct {
		status int
		body   string
	}
	results := make([]chan result, len(asks))
	for i, a := range asks {
		results[i] = make(chan result, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, o.URL+"/cc", nil)
			for j := 0; j+1 < len(a.h); j += 2 {
				req.Header.Set(a.h[j], a.h[j+1])
			}
			resp, err := e.tr.RoundTrip(req)
			if err != nil {
				results[i] <- result{status: -1, body: err.Error()}
				return
			}
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			resp.Body.Close()
			results[i] <- result{resp.StatusCode, buf.String()}
		}()
	}
	for i, a := range asks {
		r := <-results[i]
		if r.status != a.want || r.body != a.body {
			t.Errorf("%v: status %d body %q, want %d %q", a.h, r.status, r.body, a.want, a.body)
		}
	}
	if n := o.notModified.Load(); n < 1 || n > int64(len(asks)) {
		t.Errorf("origin answered %d 304s", n)
	}
}
