package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// versioned is an origin handler for conditional requests: the body stays
// the same, a header says how many times the origin answered.
func versioned(validator string) http.HandlerFunc {
	var answers atomic.Int64
	const lastModified = "Mon, 02 Mar 2026 10:00:00 GMT"
	return func(w http.ResponseWriter, r *http.Request) {
		n := answers.Add(1)
		w.Header().Set("X-Answer", string(rune('0'+n)))
		switch validator {
		case "etag":
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "last-modified":
			w.Header().Set("Last-Modified", lastModified)
			if r.Header.Get("If-Modified-Since") == lastModified {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>the page</p>")
	}
}

func TestTransportConditionalRevalidation(t *testing.T) {
	tests := []struct {
		validator   string
		conditional string // request header the origin must see
	}{
		{"etag", "If-None-Match"},
		{"last-modified", "If-Modified-Since"},
	}
	for _, tc := range tests {
		t.Run(tc.validator, func(t *testing.T) {
			o := newOrigin(t, versioned(tc.validator))
			e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}})
			url := o.URL + "/page"
			key := keyOf(t, url, Policy{})
			first := e.expectServed(url, ServedMiss)
			before := e.rawDoc(ResponsesCollection, key)

			e.clock.Advance(2 * time.Hour)
			resp, body := e.get(nil, url)
			if Served(resp) != ServedRevalidated || resp.StatusCode != 200 {
				t.Fatalf("after expiry: served %q status %d, want revalidated 200", Served(resp), resp.StatusCode)
			}
			if o.header().Get(tc.conditional) == "" {
				t.Errorf("origin saw no %s header", tc.conditional)
			}
			if !bytes.Equal(body, first) {
				t.Errorf("revalidated body = %q, want %q", body, first)
			}
			if got := resp.Header.Get("X-Answer"); got != "2" {
				t.Errorf("X-Answer = %q, want the 304's value 2 merged in", got)
			}
			if got := o.notModified.Load(); got != 1 {
				t.Errorf("origin 304s = %d, want 1", got)
			}
			if after := e.rawDoc(ResponsesCollection, key); !bytes.Equal(after, before) {
				t.Error("the 304 rewrote the response document")
			}
			var rev Revalidation
			if err := bson.Unmarshal(e.rawDoc(RevalidationsCollection, key), &rev); err != nil {
				t.Fatalf("revalidation document: %v", err)
			}
			if !rev.ValidatedAt.Equal(e.clock.Now()) || rev.Headers["X-Answer"] != "2" {
				t.Errorf("revalidation = %+v, want validated now with X-Answer 2", rev)
			}
			if rev.Expires == nil || !rev.Expires.Equal(e.clock.Now().Add(time.Hour)) {
				t.Errorf("revalidation expires = %v, want now+1h", rev.Expires)
			}

			// The 304 restarted the freshness clock.
			e.clock.Advance(30 * time.Minute)
			if resp, _ := e.get(nil, url); Served(resp) != ServedHit || resp.Header.Get("X-Answer") != "2" {
				t.Errorf("30m after the 304: served %q X-Answer %q, want hit 2", Served(resp), resp.Header.Get("X-Answer"))
			}
			e.clock.Advance(time.Hour)
			e.expectServed(url, ServedRevalidated)
			if got := o.notModified.Load(); got != 2 {
				t.Errorf("origin 304s = %d, want 2", got)
			}
			if st := e.tr.Stats(); st.Revalidated != 2 || st.Hits != 1 || st.Misses != 1 {
				t.Errorf("stats = %+v, want 2 revalidated, 1 hit, 1 miss", st)
			}
		})
	}
}

func TestTransportRevalidationWith200ReplacesEntry(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		etag := `"v` + string(rune('0'+version.Load())) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body "+etag)
	})
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter}}})
	url := o.URL + "/r"
	key := keyOf(t, url, Policy{})
	e.expectServed(url, ServedMiss)
	e.expectServed(url, ServedRevalidated)
	if e.rawDoc(RevalidationsCollection, key) == nil {
		t.Fatal("no revalidation document after a 304")
	}
	version.Store(2)
	e.clock.Advance(time.Second)
	if body := e.expectServed(url, ServedMiss); string(body) != `body "v2"` {
		t.Errorf("body = %q, want the new version", body)
	}
	if e.rawDoc(RevalidationsCollection, key) != nil {
		t.Error("the revalidation document survived a 200")
	}
	if body := e.expectServed(url, ServedRevalidated); string(body) != `body "v2"` {
		t.Errorf("body after the next 304 = %q, want the new version", body)
	}
}

// TestTransportRevalidationSetsValidatedAtWithTTLIndexes: on a server with
// TTL indexes (MongoDB: CRAWLCACHE_TEST_MONGODB_URI) a 304 also refreshes
// the response's validated_at, which the TTL index counts from.
func TestTransportRevalidationSetsValidatedAtWithTTLIndexes(t *testing.T) {
	s := openTestStore(t)
	if !s.Capabilities().TTLIndexes {
		t.Skipf("the store has no TTL indexes (set %s to run this on MongoDB)", testStoreURIEnv)
	}
	o := newOrigin(t, versioned("etag"))
	e := newTransportEnvOn(t, s, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Minute}}})
	url := o.URL + "/ttl"
	e.expectServed(url, ServedMiss)
	e.clock.Advance(time.Hour)
	e.expectServed(url, ServedRevalidated)
	var entry Entry
	if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, keyOf(t, url, Policy{})), &entry); err != nil {
		t.Fatal(err)
	}
	if !entry.ValidatedAt.Equal(e.clock.Now()) || entry.Expires == nil || !entry.Expires.Equal(e.clock.Now().Add(time.Minute)) {
		t.Errorf("response validated_at %v expires %v, want %v and +1m", entry.ValidatedAt, entry.Expires, e.clock.Now())
	}
}

// failingUpstream forwards to the network until fail is set, then answers
// with an error or a 503.
type failingUpstream struct {
	mode atomic.Value // "", "error", "503"
}

func (f *failingUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	switch f.mode.Load() {
	case "error":
		return nil, errors.New("connection reset")
	case "503":
		return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader("down")), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestTransportStaleIfError(t *testing.T) {
	o := newOrigin(t, versioned("none"))
	tests := []struct {
		name       string
		mode       string
		window     time.Duration
		advance    time.Duration
		wantServed string
		wantStatus int
		wantErr    bool
	}{
		{"503 within window", "503", time.Hour, 30 * time.Minute, ServedStale, 200, false},
		{"error within window", "error", time.Hour, 30 * time.Minute, ServedStale, 200, false},
		{"unlimited window", "error", -1, 1000 * time.Hour, ServedStale, 200, false},
		{"503 past window", "503", time.Hour, 2 * time.Hour, ServedMiss, 503, false},
		{"error past window", "error", time.Hour, 2 * time.Hour, "", 0, true},
		{"disabled", "503", 0, time.Minute, ServedMiss, 503, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &failingUpstream{}
			up.mode.Store("")
			e := newTransportEnv(t, Options{Upstream: up, Policy: Policy{
				ExpireAfter:  Expiry{Kind: ExpireAfter, After: time.Minute},
				StaleIfError: tc.window,
			}})
			url := o.URL + "/sie"
			e.expectServed(url, ServedMiss)
			e.clock.Advance(time.Minute + tc.advance)
			up.mode.Store(tc.mode)
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			resp, err := e.tr.RoundTrip(req)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got status %d, want an error", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if Served(resp) != tc.wantServed || resp.StatusCode != tc.wantStatus {
				t.Errorf("served %q status %d, want %q %d", Served(resp), resp.StatusCode, tc.wantServed, tc.wantStatus)
			}
		})
	}
}

func TestTransportOnlyIfCached(t *testing.T) {
	o := newOrigin(t, versioned("none"))
	tests := []struct {
		name   string
		policy Policy
		ctx    func(context.Context) context.Context
	}{
		{"per request", Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Minute}}, WithOnlyIfCached},
		{"policy", Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Minute}, OnlyIfCached: true}, func(c context.Context) context.Context { return c }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTransportEnv(t, Options{Policy: tc.policy})
			ctx := tc.ctx(context.Background())
			before := o.requests.Load()
			resp, _ := e.get(ctx, o.URL+"/offline-miss-"+tc.name)
			if resp.StatusCode != http.StatusGatewayTimeout || Served(resp) != ServedMiss {
				t.Errorf("miss: status %d served %q, want 504 miss", resp.StatusCode, Served(resp))
			}
			if o.requests.Load() != before {
				t.Error("only_if_cached miss reached the origin")
			}
			if tc.policy.OnlyIfCached {
				return
			}
			url := o.URL + "/offline-" + tc.name
			e.expectServed(url, ServedMiss)
			e.clock.Advance(time.Hour)
			before = o.requests.Load()
			resp, body := e.get(ctx, url)
			if resp.StatusCode != 200 || Served(resp) != ServedStale || string(body) != "<p>the page</p>" {
				t.Errorf("expired entry offline: status %d served %q body %q, want the stale page", resp.StatusCode, Served(resp), body)
			}
			if o.requests.Load() != before {
				t.Error("only_if_cached replay reached the origin")
			}
		})
	}
}

func TestTransportRefreshAndForceRefresh(t *testing.T) {
	o := newOrigin(t, versioned("etag"))
	e := newTransportEnv(t, Options{})
	url := o.URL + "/refresh"
	e.expectServed(url, ServedMiss)
	e.expectServed(url, ServedHit)

	resp, _ := e.get(WithRefresh(context.Background()), url)
	if Served(resp) != ServedRevalidated || o.header().Get("If-None-Match") == "" {
		t.Errorf("refresh: served %q, origin If-None-Match %q; want a conditional revalidation", Served(resp), o.header().Get("If-None-Match"))
	}
	resp, _ = e.get(WithForceRefresh(context.Background()), url)
	if Served(resp) != ServedMiss || o.header().Get("If-None-Match") != "" {
		t.Errorf("force refresh: served %q, origin If-None-Match %q; want an unconditional fetch", Served(resp), o.header().Get("If-None-Match"))
	}
	if resp, _ := e.get(nil, url); Served(resp) != ServedHit || resp.Header.Get("X-Answer") != "3" {
		t.Errorf("after force refresh: served %q X-Answer %q, want hit of answer 3", Served(resp), resp.Header.Get("X-Answer"))
	}
}

func TestTransportStaleWhileRevalidate(t *testing.T) {
	o := newOrigin(t, versioned("etag"))
	e := newTransportEnv(t, Options{Policy: Policy{
		ExpireAfter:          Expiry{Kind: ExpireAfter, After: time.Minute},
		StaleWhileRevalidate: time.Hour,
	}})
	url := o.URL + "/swr"
	e.expectServed(url, ServedMiss)
	e.clock.Advance(10 * time.Minute)
	e.expectServed(url, ServedStale)
	if err := e.tr.Close(); err != nil { // waits for the background refresh
		t.Fatal(err)
	}
	if got := o.notModified.Load(); got != 1 {
		t.Errorf("origin 304s after Close = %d, want 1 background revalidation", got)
	}
	e.expectServed(url, ServedHit)
	// Past the window the entry is revalidated in the foreground.
	e.clock.Advance(3 * time.Hour)
	e.expectServed(url, ServedRevalidated)
}
