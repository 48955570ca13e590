package cache

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		in   []string
		want cacheControl
	}{
		{[]string{"max-age=60, must-revalidate"}, cacheControl{"max-age": "60", "must-revalidate": ""}},
		{[]string{"Max-Age = 60 ,NO-CACHE"}, cacheControl{"max-age": "60", "no-cache": ""}},
		{[]string{`private="Set-Cookie, X", max-age="30"`}, cacheControl{"private": "Set-Cookie, X", "max-age": "30"}},
		{[]string{"max-age=1", "max-age=2"}, cacheControl{"max-age": "1"}},
		{[]string{",,=x, ,"}, cacheControl{}},
		{[]string{`a="unterminated, b`}, cacheControl{"a": `"unterminated, b`}},
	}
	for _, tc := range tests {
		if got := parseCacheControl(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseCacheControl(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]time.Duration{"0": 0, "60": time.Minute, "99999999999999999999": (1 << 31) * time.Second} {
		if got, ok := deltaSeconds(in); !ok || got != want {
			t.Errorf("deltaSeconds(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5", " 1", "0x10"} {
		if _, ok := deltaSeconds(bad); ok {
			t.Errorf("deltaSeconds(%q) ok, want invalid", bad)
		}
	}
}

func TestTransportRFCFreshness(t *testing.T) {
	const (
		date = "__DATE__" // replaced with the clock's time at the response
		lm10 = "__LM10D__"
	)
	tests := []struct {
		name    string
		resp    []string // header name, value pairs of the origin's 200
		advance time.Duration
		req     []string // header pairs of the second request
		refresh bool
		want    string // how the second request is served
		status  int    // of the second response, 200 if 0
	}{
		{name: "max-age fresh", resp: []string{"Cache-Control", "max-age=60"}, advance: 30 * time.Second, want: ServedHit},
		{name: "max-age expired, no validator", resp: []string{"Cache-Control", "max-age=60"}, advance: 61 * time.Second, want: ServedMiss},
		{name: "max-age expired, etag", resp: []string{"Cache-Control", "max-age=60", "ETag", `"x"`}, advance: 61 * time.Second, want: ServedRevalidated},
		{name: "max-age wins over expires", resp: []string{"Cache-Control", "max-age=600", "Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, advance: time.Minute, want: ServedHit},
		{name: "expires minus date fresh", resp: []string{"Expires", "+60"}, advance: 30 * time.Second, want: ServedHit},
		{name: "expires minus date expired", resp: []string{"Expires", "+60"}, advance: 90 * time.Second, want: ServedMiss},
		{name: "invalid expires is expired", resp: []string{"Expires", "0"}, advance: 0, want: ServedMiss},
		{name: "age header counts", resp: []string{"Cache-Control", "max-age=60", "Age", "50"}, advance: 20 * time.Second, want: ServedMiss},
		{name: "heuristic 10 percent fresh", resp: []string{"Last-Modified", lm10}, advance: 12 * time.Hour, want: ServedHit},
		{name: "heuristic 10 percent expired", resp: []string{"Last-Modified", lm10}, advance: 25 * time.Hour, want: ServedRevalidated},
		{name: "no freshness information", resp: nil, advance: time.Second, want: ServedMiss},
		{name: "s-maxage ignored by a private cache", resp: []string{"Cache-Control", "s-maxage=600, max-age=0"}, advance: time.Second, want: ServedMiss},
		{name: "no-cache always revalidates", resp: []string{"Cache-Control", "max-age=600, no-cache", "ETag", `"x"`}, want: ServedRevalidated},
		{name: "no-store is not stored", resp: []string{"Cache-Control", "max-age=600, no-store"}, want: ServedMiss},
		{name: "private is stored", resp: []string{"Cache-Control", "private, max-age=600"}, want: ServedHit},
		{name: "request max-age", resp: []string{"Cache-Control", "max-age=60"}, advance: 30 * time.Second, req: []string{"Cache-Control", "max-age=10"}, want: ServedMiss},
		{name: "request min-fresh unmet", resp: []string{"Cache-Control", "max-age=60"}, advance: 30 * time.Second, req: []string{"Cache-Control", "min-fresh=40"}, want: ServedMiss},
		{name: "request min-fresh met", resp: []string{"Cache-Control", "max-age=60"}, advance: 30 * time.Second, req: []string{"Cache-Control", "min-fresh=20"}, want: ServedHit},
		{name: "request max-stale within", resp: []string{"Cache-Control", "max-age=60"}, advance: 90 * time.Second, req: []string{"Cache-Control", "max-stale=100"}, want: ServedStale},
		{name: "request max-stale without value", resp: []string{"Cache-Control", "max-age=60"}, advance: 90 * time.Hour, req: []string{"Cache-Control", "max-stale"}, want: ServedStale},
		{name: "request max-stale exceeded", resp: []string{"Cache-Control", "max-age=60"}, advance: 90 * time.Second, req: []string{"Cache-Control", "max-stale=10"}, want: ServedMiss},
		{name: "must-revalidate refuses max-stale", resp: []string{"Cache-Control", "max-age=60, must-revalidate"}, advance: 90 * time.Second, req: []string{"Cache-Control", "max-stale"}, want: ServedMiss},
		{name: "request no-cache", resp: []string{"Cache-Control", "max-age=600", "ETag", `"x"`}, req: []string{"Cache-Control", "no-cache"}, want: ServedRevalidated},
		{name: "pragma no-cache", resp: []string{"Cache-Control", "max-age=600", "ETag", `"x"`}, req: []string{"Pragma", "no-cache"}, want: ServedRevalidated},
		{name: "request only-if-cached fresh", resp: []string{"Cache-Control", "max-age=60"}, req: []string{"Cache-Control", "only-if-cached"}, want: ServedHit},
		{name: "request only-if-cached stale", resp: []string{"Cache-Control", "max-age=60"}, advance: time.Hour, req: []string{"Cache-Control", "only-if-cached"}, want: ServedMiss, status: 504},
		{name: "immutable ignores refresh", resp: []string{"Cache-Control", "max-age=600, immutable", "ETag", `"x"`}, refresh: true, want: ServedHit},
		{name: "refresh revalidates", resp: []string{"Cache-Control", "max-age=600", "ETag", `"x"`}, refresh: true, want: ServedRevalidated},
	}
	s := openTestStore(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			lastModified := clock.Now().Add(-10 * 24 * time.Hour).Format(http.TimeFormat)
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				now := clock.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				for j := 0; j+1 < len(tc.resp); j += 2 {
					v := tc.resp[j+1]
					switch {
					case v == lm10:
						v = lastModified
					case strings.HasPrefix(v, "+"):
						d, _ := time.ParseDuration(v[1:] + "s")
						v = now.Add(d).Format(http.TimeFormat)
					}
					w.Header().Set(tc.resp[j], v)
				}
				if inm := r.Header.Get("If-None-Match"); inm != "" && inm == w.Header().Get("ETag") {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				if ims := r.Header.Get("If-Modified-Since"); ims != "" && ims == w.Header().Get("Last-Modified") {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "body")
			})
			e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: Policy{CacheControl: true}})
			url := o.URL + "/case/" + string(rune('a'+i))
			e.expectServed(url, ServedMiss)
			clock.Advance(tc.advance)
			ctx := context.Background()
			if tc.refresh {
				ctx = WithRefresh(ctx)
			}
			resp, body := e.get(ctx, url, tc.req...)
			wantStatus := tc.status
			if wantStatus == 0 {
				wantStatus = 200
			}
			if Served(resp) != tc.want || resp.StatusCode != wantStatus {
				t.Errorf("served %q status %d, want %q %d", Served(resp), resp.StatusCode, tc.want, wantStatus)
			}
			if wantStatus == 200 && string(body) != "body" {
				t.Errorf("body = %q, want body", body)
			}
		})
	}
}

func TestTransportRFCVary(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/star" {
			w.Header().Set("Vary", "*")
		} else {
			w.Header().Set("Vary", "Accept-Language, Accept")
		}
		io.WriteString(w, "lang "+r.Header.Get("Accept-Language"))
	})
	e := newTransportEnv(t, Options{Policy: Policy{CacheControl: true}})
	steps := []struct {
		path, lang, want, body string
	}{
		{"/v", "de", ServedMiss, "lang de"},
		{"/v", "de", ServedHit, "lang de"},
		{"/v", "en", ServedMiss, "lang en"},
		{"/v", "en", ServedHit, "lang en"},
		{"/v", "de", ServedHit, "lang de"}, // each variant is kept
		{"/star", "de", ServedMiss, "lang de"},
		{"/star", "de", ServedMiss, "lang de"}, // Vary: * is never stored
	}
	for i, st := range steps {
		resp, body := e.get(nil, o.URL+st.path, "Accept-Language", st.lang)
		if Served(resp) != st.want || string(body) != st.body {
			t.Errorf("step %d (%s, %s): served %q body %q, want %q %q", i, st.path, st.lang, Served(resp), body, st.want, st.body)
		}
	}
}

func TestTransportRFCUnsafeMethodInvalidates(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, r.Method)
	})
	e := newTransportEnv(t, Options{Policy: Policy{CacheControl: true}})
	url := o.URL + "/item"
	e.expectServed(url, ServedMiss)
	e.expectServed(url, ServedHit)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("x=1"))
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if Served(resp) != ServedMiss {
		t.Errorf("POST served %q, want miss", Served(resp))
	}
	e.expectServed(url, ServedMiss)
}
