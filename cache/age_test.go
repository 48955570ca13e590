package cache

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// headerPairs sets name/value pairs on h; a value "now±N" becomes the
// clock's time plus N seconds as an IMF-fixdate.
func headerPairs(h http.Header, now time.Time, pairs []string) {
	for j := 0; j+1 < len(pairs); j += 2 {
		v := pairs[j+1]
		if rest, ok := strings.CutPrefix(v, "now"); ok {
			d, _ := time.ParseDuration(rest + "s")
			if rest == "" {
				d = 0
			}
			v = now.Add(d).Format(http.TimeFormat)
		}
		if v == "-" {
			h.Del(pairs[j])
			continue
		}
		h.Add(pairs[j], v)
	}
}

func TestTransportAgeHeader(t *testing.T) {
	tests := []struct {
		name    string
		rfc     bool
		resp    []string // origin's 200 headers (Date defaults to now)
		resp304 []string // origin's 304 headers, when it revalidates
		advance time.Duration
		req     []string
		want    string // served
		wantAge string
	}{
		{name: "RFC 9111 §4.2.3 hit: resident time", rfc: true, resp: []string{"Cache-Control", "max-age=600"}, advance: 30 * time.Second, want: ServedHit, wantAge: "30"},
		{name: "RFC 9111 §4.2.3 hit: origin Age added", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Age", "100"}, advance: 30 * time.Second, want: ServedHit, wantAge: "130"},
		{name: "RFC 9111 §4.2.3 hit: apparent age from Date", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Date", "now-50"}, advance: 30 * time.Second, want: ServedHit, wantAge: "80"},
		{name: "RFC 9111 §4.2.3 corrected age is the larger", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Date", "now-50", "Age", "20"}, advance: 30 * time.Second, want: ServedHit, wantAge: "80"},
		{name: "RFC 9110 §6.6.1 invalid Date counts as received now", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Date", "yesterday"}, advance: 30 * time.Second, want: ServedHit, wantAge: "30"},
		{name: "RFC 9111 §5.1 list Age uses its first member", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Age", "10, 500"}, advance: 30 * time.Second, want: ServedHit, wantAge: "40"},
		{name: "RFC 9111 §5.1 junk Age is ignored", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Age", "ten"}, advance: 30 * time.Second, want: ServedHit, wantAge: "30"},
		{name: "RFC 9111 §4.2.3 stale served with its age", rfc: true, resp: []string{"Cache-Control", "max-age=60"}, advance: 90 * time.Second, req: []string{"Cache-Control", "max-stale"}, want: ServedStale, wantAge: "90"},
		{name: "RFC 9111 §4.3.4 revalidated: age restarts at the 304", rfc: true, resp: []string{"Cache-Control", "max-age=60", "ETag", `"a"`, "Age", "40"}, advance: 90 * time.Second, want: ServedRevalidated, wantAge: "0"},
		{name: "RFC 9111 §4.3.4 revalidated: the 304's Age", rfc: true, resp: []string{"Cache-Control", "max-age=60", "ETag", `"a"`}, resp304: []string{"Age", "7"}, advance: 90 * time.Second, want: ServedRevalidated, wantAge: "7"},
		{name: "RFC 9111 §5.1 crawler policy hit carries Age too", resp: []string{"Age", "5"}, advance: time.Hour, want: ServedHit, wantAge: "3605"},
		{name: "RFC 9111 §1.2.2 a Date in year 1 is old, not fresh", rfc: true, resp: []string{"Cache-Control", "max-age=600", "Date", "Mon, 01 Jan 0001 00:00:00 GMT"}, advance: 30 * time.Second, want: ServedMiss},
		{name: "RFC 9111 §5.1 miss has the origin's Age only", rfc: true, resp: []string{"Cache-Control", "no-store"}, want: ServedMiss, wantAge: ""},
	}
	s := openTestStore(t)
	for _, shared := range []bool{false, true} {
		for _, tc := range tests {
			name := tc.name
			if shared {
				name = "shared " + name
			}
			t.Run(name, func(t *testing.T) {
				clock := newTestClock()
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					now := clock.Now()
					w.Header().Set("Date", now.Format(http.TimeFormat))
					if r.Header.Get("If-None-Match") != "" {
						headerPairs(w.Header(), now, tc.resp304)
						w.WriteHeader(http.StatusNotModified)
						return
					}
					w.Header().Del("Date")
					if !containsFold(tc.resp, "Date") {
						w.Header().Set("Date", now.Format(http.TimeFormat))
					}
					headerPairs(w.Header(), now, tc.resp)
					io.WriteString(w, "body")
				})
				e := newTransportEnvOn(t, s, Options{Now: clock.Now, Policy: Policy{CacheControl: tc.rfc}, Shared: shared})
				tp := uniquePath(t) // the store is shared and a later origin may get an earlier one's port
				e.expectServed(o.URL+"/age"+tp, ServedMiss)
				clock.Advance(tc.advance)
				resp, _ := e.get(nil, o.URL+"/age"+tp, tc.req...)
				if got := Served(resp); got != tc.want {
					t.Fatalf("served %q, want %q", got, tc.want)
				}
				if got := strings.Join(resp.Header.Values("Age"), ","); got != tc.wantAge && tc.want != ServedMiss {
					t.Errorf("Age = %q, want %q", got, tc.wantAge)
				}
			})
		}
	}
}
