package cache

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// roleCase is one RFC rule run in both roles: the origin answers the first
// request with resp, and fails with a 500 afterwards when fail is set; the
// second request comes after advance, and is served privateWant by a
// private cache and sharedWant by a shared one.
type roleCase struct {
	name, rfc    string
	cacheControl bool
	resp         []string // header pairs of the origin's 200
	req1, req2   []string // header pairs of the two requests (req2 nil: req1)
	advance      time.Duration
	fail         bool
	privateWant  string
	sharedWant   string
	// header, when set, is checked on the second response: its value
	// there in each role ("" for absent).
	header                    string
	privateValue, sharedValue string
}

var roleCases = []roleCase{
	// s-maxage (RFC 9111 §5.2.2.10, §4.2.1)
	{name: "s-maxage wins over max-age", rfc: "§5.2.2.10, §4.2.1", cacheControl: true,
		resp: []string{"Cache-Control", "max-age=0, s-maxage=60"}, advance: 30 * time.Second, privateWant: ServedMiss, sharedWant: ServedHit},
	{name: "s-maxage=0 wins over max-age", rfc: "§5.2.2.10, §4.2.1", cacheControl: true,
		resp: []string{"Cache-Control", "max-age=60, s-maxage=0"}, privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "s-maxage wins over Expires", rfc: "§5.2.2.10, §4.2.1", cacheControl: true,
		resp: []string{"Cache-Control", "s-maxage=60", "Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, privateWant: ServedMiss, sharedWant: ServedHit},
	{name: "s-maxage implies proxy-revalidate", rfc: "§5.2.2.10", cacheControl: true, fail: true,
		resp: []string{"Cache-Control", "max-age=10, s-maxage=10"}, advance: 20 * time.Second, privateWant: ServedStale, sharedWant: ServedMiss},
	// proxy-revalidate (§5.2.2.8)
	{name: "proxy-revalidate: never stale in a shared cache", rfc: "§5.2.2.8", cacheControl: true, fail: true,
		resp: []string{"Cache-Control", "max-age=10, proxy-revalidate"}, advance: 20 * time.Second, privateWant: ServedStale, sharedWant: ServedMiss},
	// private (§5.2.2.7)
	{name: "private never stored in a shared cache", rfc: "§5.2.2.7", cacheControl: true,
		resp: []string{"Cache-Control", "private, max-age=60"}, privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "private, crawler policy, no credential", rfc: "§5.2.2.7",
		resp: []string{"Cache-Control", "private"}, privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "private, crawler policy, kept for its credential", rfc: "§5.2.2.7",
		resp: []string{"Cache-Control", "private"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedHit, sharedWant: ServedHit},
	{name: "qualified private: stored without the fields", rfc: "§5.2.2.7", cacheControl: true,
		resp:        []string{"Cache-Control", `private="X-User, X-Other", max-age=60`, "X-User", "alice", "X-Kept", "k"},
		privateWant: ServedHit, sharedWant: ServedHit, header: "X-User", privateValue: "alice", sharedValue: ""},
	{name: "qualified private: other fields kept", rfc: "§5.2.2.7", cacheControl: true,
		resp:        []string{"Cache-Control", `private="X-User", max-age=60`, "X-User", "alice", "X-Kept", "k"},
		privateWant: ServedHit, sharedWant: ServedHit, header: "X-Kept", privateValue: "k", sharedValue: "k"},
	{name: "qualified private, crawler policy", rfc: "§5.2.2.7",
		resp:        []string{"Cache-Control", `private="X-User"`, "X-User", "alice"},
		privateWant: ServedHit, sharedWant: ServedHit, header: "X-User", privateValue: "alice", sharedValue: ""},
	// Authorization (§3.5)
	{name: "Authorization: not reused by a shared cache", rfc: "§3.5", cacheControl: true,
		resp: []string{"Cache-Control", "max-age=60"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "Authorization: public allows it", rfc: "§3.5, §5.2.2.9", cacheControl: true,
		resp: []string{"Cache-Control", "public, max-age=60"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedHit, sharedWant: ServedHit},
	{name: "Authorization: s-maxage allows it", rfc: "§3.5, §5.2.2.10", cacheControl: true,
		resp: []string{"Cache-Control", "s-maxage=60"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedMiss, sharedWant: ServedHit},
	{name: "Authorization: must-revalidate allows it", rfc: "§3.5, §5.2.2.2", cacheControl: true,
		resp: []string{"Cache-Control", "must-revalidate, max-age=60"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedHit, sharedWant: ServedHit},
	{name: "Authorization, crawler policy: kept for its credential", rfc: "§3.5",
		resp: []string{"Cache-Control", "max-age=60"}, req1: []string{"Authorization", "Bearer A"}, privateWant: ServedHit, sharedWant: ServedHit},
	// Set-Cookie (§3, §7.3: never replayed to another client)
	{name: "Set-Cookie not stored, crawler policy", rfc: "§7.3",
		resp: []string{"Set-Cookie", "id=1"}, privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "Set-Cookie not stored, cache_control", rfc: "§7.3", cacheControl: true,
		resp: []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "id=1"}, privateWant: ServedHit, sharedWant: ServedMiss},
	// Vary (§4.1) under the crawler policy: honoured by a shared cache only
	{name: "Vary: Accept-Encoding, other value", rfc: "§4.1",
		resp: []string{"Vary", "Accept-Encoding"}, req1: []string{"Accept-Encoding", "gzip"}, req2: []string{},
		privateWant: ServedHit, sharedWant: ServedMiss},
	{name: "Vary: Accept-Encoding, same value", rfc: "§4.1",
		resp: []string{"Vary", "Accept-Encoding"}, req1: []string{"Accept-Encoding", "gzip"},
		privateWant: ServedHit, sharedWant: ServedHit},
	{name: "Vary: * never matches", rfc: "§4.1",
		resp: []string{"Vary", "*"}, privateWant: ServedHit, sharedWant: ServedMiss},
}

// TestRoleRules runs each shared-cache rule of RFC 9111 in both roles.
func TestRoleRules(t *testing.T) {
	for _, tc := range roleCases {
		for _, shared := range []bool{false, true} {
			role, want, value := "private", tc.privateWant, tc.privateValue
			if shared {
				role, want, value = "shared", tc.sharedWant, tc.sharedValue
			}
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				var n atomic.Int64
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					if n.Add(1) > 1 && tc.fail {
						w.WriteHeader(http.StatusInternalServerError)
						return
					}
					for i := 0; i+1 < len(tc.resp); i += 2 {
						w.Header().Add(tc.resp[i], tc.resp[i+1])
					}
					io.WriteString(w, "body")
				})
				pol := Policy{CacheControl: tc.cacheControl}
				if tc.fail {
					pol.StaleIfError = -1
				}
				if !tc.cacheControl {
					pol.ExpireAfter = Expiry{Kind: ExpireAfter, After: time.Hour}
				}
				e := newTransportEnv(t, Options{Shared: shared, Policy: pol})
				e.get(nil, o.URL+"/", tc.req1...)
				e.clock.Advance(tc.advance)
				req2 := tc.req2
				if req2 == nil {
					req2 = tc.req1
				}
				resp, _ := e.get(nil, o.URL+"/", req2...)
				if got := Served(resp); got != want {
					t.Errorf("RFC 9111 %s: second request served %q (status %d), want %q", tc.rfc, got, resp.StatusCode, want)
				}
				if tc.header != "" {
					if got := resp.Header.Get(tc.header); got != value {
						t.Errorf("RFC 9111 %s: %s = %q on the second response, want %q", tc.rfc, tc.header, got, value)
					}
				}
			})
		}
	}
}

// TestCDNCacheControl: with Options.CDNCacheControl a shared cache obeys
// CDN-Cache-Control instead of Cache-Control and Expires when it is valid
// (RFC 9213 §2.1), and falls back when it is absent or invalid; without
// the option, or in a private cache, the field changes nothing.
func TestCDNCacheControl(t *testing.T) {
	tests := []struct {
		name        string
		shared, cdn bool
		resp        []string
		want        string
	}{
		{"CDN max-age wins over no-store", true, true, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, ServedHit},
		{"CDN no-store wins over max-age", true, true, []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, ServedMiss},
		{"CDN private", true, true, []string{"Cache-Control", "public, max-age=60", "CDN-Cache-Control", "private"}, ServedMiss},
		{"CDN ignores Expires", true, true, []string{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT", "CDN-Cache-Control", "max-age=60, must-revalidate"}, ServedHit},
		{"CDN with parameters and booleans", true, true, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60;x=1, no-cache=?0"}, ServedHit},
		{"invalid CDN field falls back", true, true, []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "Max-Age=0"}, ServedHit},
		{"empty CDN field falls back", true, true, []string{"Cache-Control", "no-store", "CDN-Cache-Control", ""}, ServedMiss},
		{"not opted in", true, false, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, ServedMiss},
		{"private cache ignores it", false, true, []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, ServedMiss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tc.resp); i += 2 {
					w.Header().Add(tc.resp[i], tc.resp[i+1])
				}
				io.WriteString(w, "body")
			})
			e := newTransportEnv(t, Options{Shared: tc.shared, CDNCacheControl: tc.cdn, Policy: Policy{CacheControl: true}})
			e.get(nil, o.URL+"/")
			e.clock.Advance(10 * time.Second)
			if resp, _ := e.get(nil, o.URL+"/"); Served(resp) != tc.want {
				t.Errorf("RFC 9213 §2.1: second request served %q, want %q", Served(resp), tc.want)
			}
		})
	}
}

// TestSharedCoalescedClientsGetTheirOwn: in a shared cache a response
// fetched for one client that carries Set-Cookie or private is not handed
// to a concurrent client waiting on the same fetch (RFC 9111 §5.2.2.7,
// §7.3): the waiter fetches its own. A plain response is shared.
func TestSharedCoalescedClientsGetTheirOwn(t *testing.T) {
	tests := []struct {
		name       string
		resp       []string
		wantShared bool
	}{
		{"plain response is shared", []string{"Cache-Control", "max-age=60"}, true},
		{"Set-Cookie", []string{"Cache-Control", "max-age=60", "Set-Cookie", "id=__N__"}, false},
		{"private", []string{"Cache-Control", "private, max-age=60"}, false},
		{"qualified private", []string{"Cache-Control", `private="X-User", max-age=60`, "X-User", "__N__"}, false},
	}
	for _, rm := range roleModes {
		if !rm.shared {
			continue
		}
		for _, tc := range tests {
			t.Run(rm.name+"/"+tc.name, func(t *testing.T) {
				var n atomic.Int64
				entered, release := make(chan struct{}), make(chan struct{})
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					i := n.Add(1)
					if i == 1 {
						close(entered)
						<-release
					}
					for k := 0; k+1 < len(tc.resp); k += 2 {
						w.Header().Add(tc.resp[k], strings.ReplaceAll(tc.resp[k+1], "__N__", strconv.FormatInt(i, 10)))
					}
					fmt.Fprintf(w, "response %d", i)
				})
				e := newTransportEnv(t, Options{Shared: true, Policy: Policy{CacheControl: rm.cacheControl}})
				joined := make(chan struct{})
				e.tr.flights.joined = func(string) { close(joined) }
				bodies := make(chan string, 2)
				get := func() {
					_, body := e.get(nil, o.URL+"/")
					bodies <- string(body)
				}
				go get()
				<-entered
				go get()
				<-joined
				close(release)
				got := []string{<-bodies, <-bodies}
				slices.Sort(got)
				want := []string{"response 1", "response 2"}
				if tc.wantShared {
					want = []string{"response 1", "response 1"}
				}
				if !slices.Equal(got, want) {
					t.Errorf("bodies of two coalesced clients = %q, want %q", got, want)
				}
			})
		}
	}
}

// TestSharedRedirectWithSetCookieNotRecorded: a redirect hop that sets a
// cookie (a login) is not replayed by a shared cache; a private one
// records it (without the cookie, as every hop).
func TestSharedRedirectWithSetCookieNotRecorded(t *testing.T) {
	for _, shared := range []bool{false, true} {
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Set-Cookie", "session=1")
			http.Redirect(w, r, "/home", http.StatusFound)
		})
		e := newTransportEnv(t, Options{Shared: shared})
		e.get(nil, o.URL+"/login")
		want := ServedHit
		if shared {
			want = ServedMiss
		}
		if resp, _ := e.get(nil, o.URL+"/login"); Served(resp) != want {
			t.Errorf("shared %v: second request for the hop served %q, want %q", shared, Served(resp), want)
		}
	}
}

// FuzzCDNCacheControl: any CDN-Cache-Control value parses without
// panicking, and what it accepts reads back as Cache-Control directives.
func FuzzCDNCacheControl(f *testing.F) {
	for _, seed := range []string{"max-age=60", "no-store", "private, max-age=0", `max-age=60;a="x;y", no-cache=?0`, "Max-Age=1", `a="unterminated`, ", ,", "*x=tok/en:1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out, ok := cdnDirectives([]string{v})
		if ok && len(parseCacheControl([]string{out})) == 0 {
			t.Errorf("cdnDirectives(%q) = %q, ok, but it holds no directive", v, out)
		}
	})
}

// TestShared304SetCookieNotStored: a 304 that sets a cookie gives it to
// the client that revalidated, and the stored entry it refreshes never
// replays it (RFC 9111 §4.3.4 merges the 304's fields; a shared cache
// keeps Set-Cookie out).
func TestShared304SetCookieNotStored(t *testing.T) {
	for _, shared := range []bool{false, true} {
		var n atomic.Int64
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"v"`)
			if n.Add(1) == 1 {
				w.Header().Set("Cache-Control", "max-age=0")
				io.WriteString(w, "body")
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "sid=revalidator")
			w.WriteHeader(http.StatusNotModified)
		})
		e := newTransportEnv(t, Options{Shared: shared, Policy: Policy{CacheControl: true}})
		e.expectServed(o.URL+"/", ServedMiss)
		if resp, _ := e.get(nil, o.URL+"/"); Served(resp) != ServedRevalidated || resp.Header.Get("Set-Cookie") != "sid=revalidator" {
			t.Fatalf("shared %v: revalidating client got %q with Set-Cookie %q, want revalidated with its cookie", shared, Served(resp), resp.Header.Get("Set-Cookie"))
		}
		resp, _ := e.get(nil, o.URL+"/")
		want := "sid=revalidator" // a private cache: the same user
		if shared {
			want = ""
		}
		if Served(resp) != ServedHit || resp.Header.Get("Set-Cookie") != want {
			t.Errorf("shared %v: next client got %q with Set-Cookie %q, want a hit with %q", shared, Served(resp), resp.Header.Get("Set-Cookie"), want)
		}
	}
}
