package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store/storetest"
)

// forged is a hash an origin claims; no body of these tests has it.
var forged = strings.Repeat("ab", 32)

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// storedHash is the body_sha256 field of the entry stored for url.
func (e *transportEnv) storedHash(url string) (string, bool) {
	e.t.Helper()
	raw := e.rawDoc(ResponsesCollection, keyOf(e.t, url, Policy{}))
	if raw == nil {
		e.t.Fatalf("no entry stored for %s", url)
	}
	v, err := raw.LookupErr("body_sha256")
	if err != nil {
		return "", false
	}
	s, _ := v.StringValueOK()
	return s, true
}

// hashOrigin serves a ~60 KB HTML page with an ETag, forging
// HeaderBodySHA256 on every answer, the 304s included.
func hashOrigin(t *testing.T, gzipped bool) (*origin, []byte) {
	page := []byte("<html><body>" + strings.Repeat("<p>unchanged text, é and ü</p>\n", 2000) + "</body></html>")
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBodySHA256, forged)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if gzipped {
			// Sent gzip-encoded: net/http decodes it, and the cache
			// stores (and hashes) the decoded body.
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write(page)
			_ = zw.Close()
			return
		}
		_, _ = w.Write(page)
	})
	return o, page
}

// The hash the cache stores and serves is the SHA-256 of the body a
// client reads, on every way a response is served, and never the one an
// origin sends in the same header.
func TestBodySHA256Served(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		gzipped  bool
		encoding string // the stored body_encoding
	}{
		{name: "plain", opts: Options{}},
		{name: "stored compressed", opts: Options{CompressBodies: true}, encoding: "gzip"},
		{name: "origin gzip", opts: Options{}, gzipped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, page := hashOrigin(t, tc.gzipped)
			tc.opts.Policy = Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
			e := newTransportEnv(t, tc.opts)
			want := hexSHA256(page)
			url := o.URL + "/page"
			for _, step := range []struct {
				served  string
				advance time.Duration
			}{{ServedMiss, 0}, {ServedHit, 0}, {ServedRevalidated, 2 * time.Hour}, {ServedHit, 0}} {
				e.clock.Advance(step.advance)
				resp, body := e.get(nil, url)
				if got := Served(resp); got != step.served {
					t.Fatalf("served %q, want %q", got, step.served)
				}
				if !bytes.Equal(body, page) {
					t.Fatalf("%s: body of %d bytes, want the page's %d", step.served, len(body), len(page))
				}
				if got := resp.Header.Get(HeaderBodySHA256); got != want {
					t.Errorf("%s: %s = %q, want %q (the SHA-256 of the body)", step.served, HeaderBodySHA256, got, want)
				}
				if got := StoredBodySHA256(resp.Header); got != want {
					t.Errorf("%s: StoredBodySHA256 = %q, want %q", step.served, got, want)
				}
			}
			if o.notModified.Load() != 1 {
				t.Fatalf("origin answered %d 304s, want 1", o.notModified.Load())
			}
			if got, _ := e.storedHash(url); got != want {
				t.Errorf("stored body_sha256 = %q, want %q", got, want)
			}
			raw := e.rawDoc(ResponsesCollection, keyOf(t, url, Policy{}))
			if got, _ := raw.Lookup("body_encoding").StringValueOK(); got != tc.encoding {
				t.Errorf("body_encoding = %q, want %q", got, tc.encoding)
			}
			if strings.Contains(raw.String(), forged) {
				t.Errorf("the origin's forged hash was stored, headers: %s", raw.Lookup("headers"))
			}
			rev := e.rawDoc(RevalidationsCollection, keyOf(t, url, Policy{}))
			if rev == nil || strings.Contains(rev.String(), forged) {
				t.Errorf("revalidation missing (%v) or holding the origin's forged hash", rev == nil)
			}
		})
	}
}

// Responses whose body is not the stored body carry no hash: a range
// (RFC 9110 §14) or a 304 to the client's own conditional (RFC 9110
// §13.1.1), HEAD, and a response the cache passed through without
// storing, whatever the origin claims.
func TestBodySHA256OnlyForTheStoredBody(t *testing.T) {
	o, _ := hashOrigin(t, false)
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}, URLsExpireAfter: []URLExpiry{
		{Pattern: strings.TrimPrefix(o.URL, "http://") + "/nostore", Expiry: Expiry{Kind: ExpireDoNotCache}},
	}}})
	e.expectServed(o.URL+"/page", ServedMiss)
	for _, tc := range []struct {
		name, url string
		header    []string
		status    int
	}{
		{"range", o.URL + "/page", []string{"Range", "bytes=0-9"}, http.StatusPartialContent},
		{"client conditional", o.URL + "/page", []string{"If-None-Match", `"v1"`}, http.StatusNotModified},
		{"not stored", o.URL + "/nostore", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := e.get(nil, tc.url, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Values(HeaderBodySHA256); len(got) != 0 {
				t.Errorf("%s = %q, want none", HeaderBodySHA256, got)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodHead, o.URL+"/page", nil)
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got := resp.Header.Values(HeaderBodySHA256); len(got) != 0 {
		t.Errorf("HEAD: %s = %q, want none", HeaderBodySHA256, got)
	}
}

// Entries of the previous release have no body_sha256: hits are served
// as before, with no hash, even when their stored headers hold an
// origin's forged one, and a hand-edited hash that is not one is not
// served.
func TestBodySHA256PreviousRelease(t *testing.T) {
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	o := whoOrigin(t, "max-age=3600")
	e := newTransportEnvOn(t, s, Options{Upstream: hostRewriter{o}, Now: time.Now, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	url := "http://127.0.0.1:18089/products/1"
	if _, ok := e.storedHash(url); ok {
		t.Fatal("the fixture's entry has a body_sha256: not the previous release's")
	}
	resp, body := e.get(nil, url)
	if Served(resp) != ServedHit || len(body) == 0 {
		t.Fatalf("served %q with %d bytes, want a hit", Served(resp), len(body))
	}
	if got := resp.Header.Values(HeaderBodySHA256); len(got) != 0 {
		t.Errorf("%s = %q on an entry without body_sha256, want none", HeaderBodySHA256, got)
	}

	ctx := context.Background()
	responses := e.db.Collection(ResponsesCollection)
	key := keyOf(t, url, Policy{})
	for _, tc := range []struct {
		name string
		set  bson.D
	}{
		{"forged header stored by an older release", bson.D{{Key: "headers." + HeaderBodySHA256, Value: forged}}},
		{"hand-edited hash", bson.D{{Key: "body_sha256", Value: "not a hash"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := responses.UpdateOne(ctx, bson.D{{Key: "_id", Value: key}}, bson.D{{Key: "$set", Value: tc.set}}, false); err != nil {
				t.Fatal(err)
			}
			resp, _ := e.get(nil, url)
			if Served(resp) != ServedHit {
				t.Fatalf("served %q, want hit", Served(resp))
			}
			if got := resp.Header.Values(HeaderBodySHA256); len(got) != 0 {
				t.Errorf("%s = %q, want none", HeaderBodySHA256, got)
			}
		})
	}
}

// DecodeResponse (cache show, export) gives the response as the origin
// sent it: without the Transport's hash header, even when the entry has
// body_sha256.
func TestBodySHA256NotInDecodedResponse(t *testing.T) {
	o, _ := hashOrigin(t, false)
	e := newTransportEnv(t, Options{})
	e.expectServed(o.URL+"/page", ServedMiss)
	var entry Entry
	if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, keyOf(t, o.URL+"/page", Policy{})), &entry); err != nil {
		t.Fatal(err)
	}
	if entry.BodySHA256 == "" {
		t.Fatal("entry stored without body_sha256")
	}
	resp, err := DecodeResponse(&entry, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Values(HeaderBodySHA256); len(got) != 0 {
		t.Errorf("decoded response has %s = %q, want none", HeaderBodySHA256, got)
	}
}

// An entry of the previous release (no body_sha256) gets its hash at its
// first 304, kept in the small revalidation document instead of a rewrite
// of the entry, and served from there on, on 304s and hits alike (RFC
// 9111 §4.3.4: the 304 refreshes the stored response it selects).
func TestBodySHA256FilledAtFirst304(t *testing.T) {
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBodySHA256, forged)
		if inm := r.Header.Get("If-None-Match"); inm != "" {
			w.Header().Set("ETag", inm)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		t.Errorf("unconditional request for %s", r.URL)
		w.WriteHeader(http.StatusInternalServerError)
	})
	url := "http://127.0.0.1:18089/products/1"
	revalidate := newTransportEnvOn(t, s, Options{Upstream: hostRewriter{o}, Now: time.Now, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter}}})
	key := keyOf(t, url, Policy{})
	var want string
	for i := range 2 {
		resp, body := revalidate.get(nil, url)
		if Served(resp) != ServedRevalidated {
			t.Fatalf("GET %d served %q, want revalidated", i, Served(resp))
		}
		want = hexSHA256(body)
		if got := resp.Header.Get(HeaderBodySHA256); got != want {
			t.Errorf("GET %d: %s = %q, want %q", i, HeaderBodySHA256, got, want)
		}
		var rev Revalidation
		if err := bson.Unmarshal(revalidate.rawDoc(RevalidationsCollection, key), &rev); err != nil || rev.BodySHA256 != want {
			t.Errorf("GET %d: revalidation body_sha256 = %q (%v), want %q", i, rev.BodySHA256, err, want)
		}
	}
	if _, ok := revalidate.storedHash(url); ok {
		t.Error("the entry was rewritten with body_sha256; want it left alone")
	}
	hit := newTransportEnvOn(t, s, Options{Upstream: hostRewriter{o}, Now: time.Now, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	resp, _ := hit.get(nil, url)
	if Served(resp) != ServedHit || resp.Header.Get(HeaderBodySHA256) != want {
		t.Errorf("hit after the 304s: served %q with %s = %q, want hit with %q", Served(resp), HeaderBodySHA256, resp.Header.Get(HeaderBodySHA256), want)
	}
}

// A streaming Transport (the proxy's) never passes an origin's hash on: a
// miss streams without one, the hit after it carries the stored one.
func TestBodySHA256Streaming(t *testing.T) {
	o, page := hashOrigin(t, false)
	e := newTransportEnv(t, Options{Stream: true, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	for _, want := range []struct{ served, hash string }{{ServedMiss, ""}, {ServedHit, hexSHA256(page)}} {
		resp, body := e.get(nil, o.URL+"/page")
		if Served(resp) != want.served || string(body) != string(page) {
			t.Fatalf("served %q with %d bytes, want %q with the page", Served(resp), len(body), want.served)
		}
		if got := resp.Header.Get(HeaderBodySHA256); got != want.hash {
			t.Errorf("%s: %s = %q, want %q", want.served, HeaderBodySHA256, got, want.hash)
		}
	}
}

// Concurrent identical requests (one fetch shared, or hits after it): every caller gets the
// stored hash, not only the one whose request was sent.
func TestBodySHA256CoalescedMisses(t *testing.T) {
	o, page := hashOrigin(t, false)
	e := newTransportEnv(t, Options{})
	const n = 8
	got := make(chan string, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, o.URL+"/page", nil)
			resp, err := e.tr.RoundTrip(req)
			if err != nil {
				got <- err.Error()
				return
			}
			_ = resp.Body.Close()
			got <- resp.Header.Get(HeaderBodySHA256)
		}()
	}
	for range n {
		if h := <-got; h != hexSHA256(page) {
			t.Errorf("%s = %q, want %q", HeaderBodySHA256, h, hexSHA256(page))
		}
	}
}
