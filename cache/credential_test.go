package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store/storetest"

	"crawlcache/store"
)

// boundKey is the key the env's transport stores a GET of url with the
// given header pairs under (bound to their credentials, if any).
func (e *transportEnv) boundKey(url string, header ...string) string {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return e.tr.cred.bindingOf(req).bind(Key(req, nil, e.tr.policy, nil))
}

// whoOrigin answers every request with a body naming the credentials it
// carried, under the given Cache-Control.
func whoOrigin(t *testing.T, cacheControl string) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "auth=%q cookie=%q", r.Header.Get("Authorization"), r.Header.Get("Cookie"))
	})
}

func who(auth, cookie string) string { return fmt.Sprintf("auth=%q cookie=%q", auth, cookie) }

// roleModes are the four combinations of role and freshness policy every
// isolation rule must hold in.
var roleModes = []struct {
	name         string
	shared       bool
	cacheControl bool
}{
	{"private/crawler", false, false},
	{"private/cache_control", false, true},
	{"shared/crawler", true, false},
	{"shared/cache_control", true, true},
}

// TestCredentialsNeverCrossClients is the first report: client A
// with a token, then B without one (and C with another, D with a cookie)
// ask for the same URL; each must get the response fetched with its own
// credential, in both roles and under both policies, whatever the origin's
// Cache-Control says.
func TestCredentialsNeverCrossClients(t *testing.T) {
	clients := []struct{ name, auth, cookie string }{
		{"A", "Bearer A", ""},
		{"B (none)", "", ""},
		{"C", "Bearer C", ""},
		{"D (cookie)", "", "session=D"},
		{"A again", "Bearer A", ""},
		{"B again", "", ""},
		{"D again", "", "session=D"},
	}
	for _, rm := range roleModes {
		for _, cc := range []string{"private, max-age=3600", "public, max-age=3600"} {
			t.Run(rm.name+"/"+cc, func(t *testing.T) {
				o := whoOrigin(t, cc)
				e := newTransportEnv(t, Options{Shared: rm.shared, Policy: Policy{CacheControl: rm.cacheControl}})
				for _, cl := range clients {
					var hdr []string
					if cl.auth != "" {
						hdr = append(hdr, "Authorization", cl.auth)
					}
					if cl.cookie != "" {
						hdr = append(hdr, "Cookie", cl.cookie)
					}
					resp, body := e.get(nil, o.URL+"/page", hdr...)
					if got, want := string(body), who(cl.auth, cl.cookie); got != want {
						t.Errorf("client %s: got body %s (%s), want %s", cl.name, got, Served(resp), want)
					}
				}
			})
		}
	}
}

// TestSetCookieNeverReplayedToAnotherClient: in the shared role a response
// carrying Set-Cookie is not stored (so never replayed from storage), under
// both policies; a private cache (one user) keeps it.
func TestSetCookieNeverReplayedToAnotherClient(t *testing.T) {
	for _, rm := range roleModes {
		t.Run(rm.name, func(t *testing.T) {
			var n atomic.Int64
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Set-Cookie", fmt.Sprintf("id=%d", n.Add(1)))
				io.WriteString(w, "page")
			})
			e := newTransportEnv(t, Options{Shared: rm.shared, Policy: Policy{CacheControl: rm.cacheControl}})
			first, _ := e.get(nil, o.URL+"/")
			second, _ := e.get(nil, o.URL+"/")
			if got := first.Header.Get("Set-Cookie"); got != "id=1" {
				t.Fatalf("first client: Set-Cookie %q, want id=1", got)
			}
			got := second.Header.Get("Set-Cookie")
			if rm.shared {
				if got == "id=1" || Served(second) != ServedMiss {
					t.Errorf("second client: Set-Cookie %q served %s; want its own cookie from the origin (miss)", got, Served(second))
				}
				return
			}
			if Served(second) != ServedHit || got != "id=1" {
				t.Errorf("private cache: second request Set-Cookie %q served %s; want the stored id=1 (hit)", got, Served(second))
			}
		})
	}
}

// TestProxyAuthorizationNeitherForwardedNorKeyed: Proxy-Authorization
// belongs to the client's hop to the proxy.
func TestProxyAuthorizationNeitherForwardedNorKeyed(t *testing.T) {
	o := whoOrigin(t, "max-age=3600")
	e := newTransportEnv(t, Options{Shared: true})
	e.expectServed(o.URL+"/", ServedMiss, "Proxy-Authorization", "Basic cHJveHk6QQ==")
	if got := o.header().Get("Proxy-Authorization"); got != "" {
		t.Errorf("origin got Proxy-Authorization %q, want none", got)
	}
	e.expectServed(o.URL+"/", ServedHit, "Proxy-Authorization", "Basic cHJveHk6Qg==")
	// An uncacheable request passes through without it too.
	req, _ := http.NewRequest(http.MethodPost, o.URL+"/", strings.NewReader("x"))
	req.Header.Set("Proxy-Authorization", "Basic cHJveHk6QQ==")
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := o.header().Get("Proxy-Authorization"); got != "" {
		t.Errorf("POST: origin got Proxy-Authorization %q, want none", got)
	}
	if req.Header.Get("Proxy-Authorization") == "" {
		t.Error("the caller's request was modified")
	}
}

// TestCredentialKeyKeptInStore: every Transport on one store (workers, a
// resume) binds the same credential to the same key, and the store holds
// the HMAC key, never the credential.
func TestCredentialKeyKeptInStore(t *testing.T) {
	o := whoOrigin(t, "max-age=3600")
	s := openTestStore(t)
	first := newTransportEnvOn(t, s, Options{})
	first.expectServed(o.URL+"/", ServedMiss, "Authorization", "Bearer SECRET-A")
	second := newTransportEnvOn(t, s, Options{})
	second.expectServed(o.URL+"/", ServedHit, "Authorization", "Bearer SECRET-A")
	second.expectServed(o.URL+"/", ServedMiss, "Authorization", "Bearer SECRET-B")
	for _, coll := range []string{ResponsesCollection, SettingsCollection} {
		err := second.db.Collection(coll).Scan(context.Background(), bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
			var m bson.M
			if err := bson.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			delete(m, "body") // the test origin echoes the credential
			if s := fmt.Sprint(m); strings.Contains(s, "SECRET") {
				t.Errorf("%s holds a credential: %s", coll, s)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	raw := second.rawDoc(ResponsesCollection, second.boundKey(o.URL+"/", "Authorization", "Bearer SECRET-A"))
	var entry Entry
	if err := bson.Unmarshal(raw, &entry); err != nil {
		t.Fatal(err)
	}
	if c := entry.Credential; c == nil || c.BoundTo != BoundToToken || len(c.ID) != 16 || fmt.Sprint(c.Headers) != "[Authorization]" {
		t.Errorf("credential = %+v, want bound to token, headers [Authorization], a 16-character id", c)
	}
}

// TestCredentialsJobMode: a job whose token rotates keeps its entries
// (credentials: job); other jobs and requests without credentials never
// see them.
func TestCredentialsJobMode(t *testing.T) {
	o := whoOrigin(t, "max-age=3600")
	s := openTestStore(t)
	pol := Policy{Credentials: CredentialsJob}
	nightly := newTransportEnvOn(t, s, Options{Policy: pol, Job: "nightly"})
	nightly.expectServed(o.URL+"/", ServedMiss, "Authorization", "Bearer monday")
	nightly.expectServed(o.URL+"/", ServedHit, "Authorization", "Bearer tuesday")
	nightly.expectServed(o.URL+"/", ServedMiss) // no credentials: not the job's entry
	other := newTransportEnvOn(t, s, Options{Policy: pol, Job: "other"})
	if body := other.expectServed(o.URL+"/", ServedMiss, "Authorization", "Bearer tuesday"); string(body) != who("Bearer tuesday", "") {
		t.Errorf("other job got %s", body)
	}
	token := newTransportEnvOn(t, s, Options{})
	token.expectServed(o.URL+"/", ServedMiss, "Authorization", "Bearer tuesday")
	if _, err := New(context.Background(), token.store, token.db.options(Options{Policy: pol})); err == nil || !strings.Contains(err.Error(), "credentials: job") {
		t.Errorf("New with credentials: job and no job: err %v, want an error naming credentials: job", err)
	}
}

// TestBoundKeyPinned pins the bound key of a known credential under a
// known HMAC key: a change to it would orphan every bound entry.
func TestBoundKeyPinned(t *testing.T) {
	cr := credentials{key: []byte("0123456789abcdef0123456789abcdef")}
	req, _ := http.NewRequest(http.MethodGet, "https://example.org/", nil)
	unbound := Key(req, nil, Policy{}, nil)
	if got := cr.bindingOf(req).bind(unbound); got != unbound {
		t.Errorf("no credentials: key %s, want the unbound %s", got, unbound)
	}
	req.Header.Set("Proxy-Authorization", "Basic eA==")
	if got := cr.bindingOf(req).bind(unbound); got != unbound {
		t.Errorf("Proxy-Authorization only: key %s, want the unbound %s", got, unbound)
	}
	req.Header.Set("Authorization", "Bearer A")
	const want = "e3a3e509885dadec6d5c915888e95bfe"
	if got := cr.bindingOf(req).bind(unbound); got != want {
		t.Errorf("bound key = %s, want %s", got, want)
	}
	req.Header.Set("Authorization", "Bearer B")
	if got := cr.bindingOf(req).bind(unbound); got == want {
		t.Error("another token binds the same key")
	}
}

// hostRewriter sends every request to o, keeping its URL otherwise: the
// release fixture's URLs name a port that is not listening.
type hostRewriter struct{ o *origin }

func (h hostRewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _ := url.Parse(h.o.URL)
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = u.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

// TestReleaseFixtureCredentialedEntry: the previous release stored
// /products/3, fetched with Authorization, under the same key as a request
// without credentials. It is served to no one: not to a request without
// credentials (which refetches and replaces it) and not to one with the
// token (whose key is bound now). Its credential-free pages stay hits.
func TestReleaseFixtureCredentialedEntry(t *testing.T) {
	o := whoOrigin(t, "max-age=3600")
	for _, rm := range roleModes {
		t.Run(rm.name, func(t *testing.T) {
			s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
			e := newTransportEnvOn(t, s, Options{
				Upstream: hostRewriter{o}, Now: time.Now, Shared: rm.shared,
				Policy: Policy{CacheControl: rm.cacheControl, ExpireAfter: Expiry{Kind: ExpireNever}},
			})
			if !rm.cacheControl { // the fixture's pages carry no freshness of their own
				e.expectServed("http://127.0.0.1:18089/products/1", ServedHit)
			}
			before := o.requests.Load()
			body := e.expectServed("http://127.0.0.1:18089/products/3?api_key=other", ServedMiss, "Authorization", "Bearer fixture-token-b")
			if string(body) != who("Bearer fixture-token-b", "") {
				t.Errorf("with the token: got %s", body)
			}
			body = e.expectServed("http://127.0.0.1:18089/products/3", ServedMiss)
			if string(body) != who("", "") || o.requests.Load() != before+2 {
				t.Errorf("without credentials: got %s after %d origin requests, want the origin's own answer", body, o.requests.Load()-before)
			}
			// Stored again, now as a credential-free entry.
			e.expectServed("http://127.0.0.1:18089/products/3", ServedHit)
		})
	}
}

// TestCredentialKeyCreatedOnceConcurrently: workers opening a new store at
// the same time agree on one HMAC key.
func TestCredentialKeyCreatedOnceConcurrently(t *testing.T) {
	s := openTestStore(t)
	db := testDB(t, s)
	const n = 8
	keys := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			cr, err := loadCredentials(context.Background(), db.Collection(SettingsCollection), Options{})
			errs <- err
			keys <- string(cr.key)
		}()
	}
	first := ""
	for i := range n {
		if err := <-errs; err != nil {
			t.Fatalf("loadCredentials: %v", err)
		}
		k := <-keys
		if i == 0 {
			first = k
		}
		if k != first || len(k) != 32 {
			t.Fatalf("worker %d got a different or short key (%d bytes)", i, len(k))
		}
	}
}

// BenchmarkCredentialBinding is what binding adds to a credentialed
// request's key: the HMAC of its credentials and the bound key's hash.
func BenchmarkCredentialBinding(b *testing.B) {
	cr := credentials{key: []byte("0123456789abcdef0123456789abcdef")}
	req, _ := http.NewRequest(http.MethodGet, "https://example.org/page?a=1", nil)
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl")
	req.Header.Set("Cookie", "session=0123456789abcdef; theme=dark")
	key := Key(req, nil, Policy{}, nil)
	for b.Loop() {
		_ = cr.bindingOf(req).bind(key)
	}
}

// TestCredentialKeyDamaged: a settings document that holds no usable key
// stops New with a sentence saying how to fix it, instead of binding
// entries to a key no other worker has.
func TestCredentialKeyDamaged(t *testing.T) {
	s := openTestStore(t)
	db := testDB(t, s)
	if err := db.Collection(SettingsCollection).Insert(context.Background(), bson.D{{Key: "_id", Value: credentialKeyID}, {Key: "key", Value: "short"}}); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), s, db.options(Options{}))
	if err == nil || !strings.Contains(err.Error(), `delete it to make a new one`) {
		t.Errorf("New on a damaged credential key: %v, want an error saying to delete the document", err)
	}
}
