package cache

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// head judges url's head from its Page alone, as a fresh hit: ok is
// false when any step declines or the head is due.
func (e *transportEnv) head(ctx context.Context, url string, header ...string) (Head, bool) {
	e.t.Helper()
	h, ok := e.judgeHead(ctx, false, url, header...)
	return h, ok && !h.Due
}

// judgeHead judges url's head the way the crawler does: ReadHead, the
// read of the Page (with its revalidation when withRev), JudgeHead. ok
// is false when any step declines.
func (e *transportEnv) judgeHead(ctx context.Context, withRev bool, url string, header ...string) (Head, bool) {
	e.t.Helper()
	req := e.request(ctx, url, header...)
	hr, ok := e.tr.ReadHead(req)
	if !ok {
		return Head{}, false
	}
	ls := []store.Lookup{hr.Lookup}
	if withRev {
		ls = append(ls, hr.Rev)
	}
	store.GetAll(req.Context(), ls)
	if !withRev {
		ls = append(ls, store.Lookup{}) // left unread
	}
	return e.tr.JudgeHead(hr, ls[0], ls[1])
}

// A head answers exactly when RoundTrip would serve a fresh hit, and then
// names the hash of the body RoundTrip serves; after a 304 it follows the
// revalidation, and after a new body it names the new body.
func TestFreshHeadFollowsTheEntry(t *testing.T) {
	o := newChurnOrigin(t, true, false)
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}
	e := newTransportEnv(t, Options{Policy: pol})
	url := o.URL + "/page"
	if _, ok := e.head(nil, url); ok {
		t.Fatal("a head answered for a URL never fetched")
	}
	body := e.expectServed(url, ServedMiss)
	h, ok := e.head(nil, url)
	if !ok || h.BodySHA256 != hexSHA256(body) || h.Status != http.StatusOK || h.Key != keyOf(t, url, pol) {
		t.Fatalf("head after a miss = %+v, %v; want status 200 and the hash of %q", h, ok, body)
	}

	// Expired: no head; the 304 that confirms it makes it fresh again
	// (RFC 9111 §4.3.4: the 304 freshens the stored response).
	e.clock.Advance(2 * time.Hour)
	if _, ok := e.head(nil, url); ok {
		t.Fatal("a head answered for an expired entry: RoundTrip would revalidate it")
	}
	e.expectServed(url, ServedRevalidated)
	if h2, ok := e.head(nil, url); !ok || h2.BodySHA256 != h.BodySHA256 {
		t.Fatalf("head after the 304 = %+v, %v; want fresh, same hash", h2, ok)
	}

	// A new body: the head names it.
	o.version.Store(2)
	e.clock.Advance(2 * time.Hour)
	newBody := e.expectServed(url, ServedMiss)
	if h3, ok := e.head(nil, url); !ok || h3.BodySHA256 != hexSHA256(newBody) {
		t.Fatalf("head after a new body = %+v, %v; want the hash of %q", h3, ok, newBody)
	}

	// Requests the cache would not answer from a fresh entry alone.
	for name, ctx := range map[string]context.Context{
		"revalidate": WithRefresh(context.Background()),
		"refetch":    WithForceRefresh(context.Background()),
		"offline":    WithOnlyIfCached(context.Background()),
	} {
		if _, ok := e.head(ctx, url); ok {
			t.Errorf("%s: a head answered", name)
		}
	}
	if _, ok := e.head(nil, url, "If-None-Match", `"v2"`); ok {
		t.Error("a conditional request was answered by a head")
	}
}

// A response fetched with a credential has a Page without a hash: no head
// answers for it, with the credential or without (the binding is checked
// on the entry itself).
func TestFreshHeadNotForCredentials(t *testing.T) {
	o := newChurnOrigin(t, true, false)
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	url := o.URL + "/private"
	e.expectServed(url, ServedMiss, "Authorization", "Bearer a")
	if _, ok := e.head(nil, url, "Authorization", "Bearer a"); ok {
		t.Error("a head answered a request with a credential")
	}
	if _, ok := e.head(nil, url); ok {
		t.Error("a head answered, without a credential, for a response fetched with one")
	}
	for _, raw := range e.allPages() {
		if raw.Lookup("body_sha256").Type != 0 {
			t.Errorf("page of a credentialed response names its hash: %s", raw)
		}
	}
}

// allPages returns every Page document.
func (e *transportEnv) allPages() []bson.Raw {
	e.t.Helper()
	var out []bson.Raw
	err := e.db.Collection(PagesCollection).Scan(context.Background(), bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
		out = append(out, append(bson.Raw(nil), raw...))
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Under expire_after: adaptive the head uses the interval learned with
// the entry's latest validation, as RoundTrip does: a page confirmed
// unchanged gets a longer interval, and stays fresh for it.
func TestFreshHeadAdaptiveInterval(t *testing.T) {
	o := newChurnOrigin(t, true, false)
	clock := newTestClock()
	pol := Policy{ExpireAfter: Expiry{Kind: ExpireAdaptive}, Adaptive: Adaptive{Min: time.Hour, Max: 30 * 24 * time.Hour, Initial: 24 * time.Hour}}
	s := openTestStore(t)
	e := adaptiveRun(t, s, clock, pol, nil)
	url := o.URL + "/adaptive"
	e.expectServed(url, ServedMiss)
	clock.Advance(25 * time.Hour)
	e = adaptiveRun(t, s, clock, pol, nil)
	e.expectServed(url, ServedRevalidated)
	key := keyOf(t, url, pol)
	iv := e.learnedInterval(key)
	if iv <= 24*time.Hour {
		t.Fatalf("learned interval %v after an unchanged page, want longer than the initial 24h", iv)
	}
	if p := e.page(key); p == nil || storedInterval(p.IntervalSeconds) != iv {
		t.Fatalf("page = %+v, want interval %v", p, iv)
	}
	clock.Advance(iv - Tolerance(iv) - time.Hour) // past the initial interval, before the learned one
	e = adaptiveRun(t, s, clock, pol, nil)
	if _, ok := e.head(nil, url); !ok {
		t.Fatal("no head within the learned interval")
	}
	e.expectServed(url, ServedHit)
	clock.Advance(2 * time.Hour)
	e = adaptiveRun(t, s, clock, pol, nil)
	if _, ok := e.head(nil, url); ok {
		t.Fatal("a head answered past the learned interval")
	}
}

// Data of the previous release: its Pages name no hash. The schema step
// fills in the hash and interval of every entry fetched without
// credentials (the revalidation's validated_at when a 304 confirmed it
// since), after which heads answer for them with the hash of the body
// RoundTrip serves; the credentialed entry's Page stays without one.
func TestHeadsOnPreviousReleaseData(t *testing.T) {
	ctx := context.Background()
	old := storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, Migrations()[:1]...) // as that release knew it
	pages := old.Collection(DefaultDatabase, PagesCollection)
	n := 0
	err := pages.Scan(ctx, bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
		n++
		if raw.Lookup("body_sha256").Type != 0 {
			t.Errorf("the fixture's page names a hash: not the previous release's: %s", raw)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("fixture pages: %d, %v", n, err)
	}

	s := storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, Migrations()...)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 3 {
		t.Fatalf("schema version = %d, %v; want 3", v, err)
	}
	e := newTransportEnvOn(t, s, Options{Now: time.Now, Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}},
		Upstream: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			t.Errorf("the network was asked for %s", r.URL)
			return nil, context.Canceled
		})})
	var hashed, bound, revalidated int
	err = s.Collection(DefaultDatabase, ResponsesCollection).Scan(ctx, bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
		var entry Entry
		if err := bson.Unmarshal(raw, &entry); err != nil {
			t.Fatalf("decode fixture response: %v", err)
		}
		p := e.page(entry.ID)
		if p == nil {
			t.Fatalf("%s: no page", entry.URL)
		}
		if CredentialOf(&entry) != nil {
			bound++
			if p.BodySHA256 != "" {
				t.Errorf("%s: the page of a credentialed response names its hash", entry.URL)
			}
			return nil
		}
		if p.BodySHA256 != entry.BodySHA256 || p.BodySHA256 == "" {
			t.Errorf("%s: page hash %q, entry %q", entry.URL, p.BodySHA256, entry.BodySHA256)
		}
		if rr := e.rawDoc(RevalidationsCollection, entry.ID); rr != nil {
			var rev Revalidation
			if err := bson.Unmarshal(rr, &rev); err == nil && revApplies(&entry, &rev) {
				revalidated++
				if !p.ValidatedAt.Equal(rev.ValidatedAt) {
					t.Errorf("%s: page validated_at %v, want the 304's %v", entry.URL, p.ValidatedAt, rev.ValidatedAt)
				}
			}
		}
		if entry.Status == http.StatusOK {
			hashed++
			h, ok := e.head(nil, entry.URL)
			resp, body := e.get(nil, entry.URL)
			if !ok || Served(resp) != ServedHit || h.BodySHA256 != hexSHA256(body) {
				t.Errorf("%s: head %+v, %v; served %q; want a head naming the hash of the hit's body", entry.URL, h, ok, Served(resp))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if hashed == 0 || bound == 0 || revalidated == 0 {
		t.Errorf("fixture checked %d hashed pages, %d credentialed, %d revalidated; want some of each", hashed, bound, revalidated)
	}
}

// A process stopped after it stored a new body and before its Page leaves
// no Page at all, never one naming the body replaced: no head answers,
// and the ordinary lookup serves the new body.
func TestFreshHeadAfterAStopBetweenWrites(t *testing.T) {
	o := newChurnOrigin(t, true, false)
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireNever}}})
	url := o.URL + "/page"
	old := e.expectServed(url, ServedMiss)
	if h, ok := e.head(nil, url); !ok || h.BodySHA256 != hexSHA256(old) {
		t.Fatalf("head before = %+v, %v", h, ok)
	}
	o.version.Store(2)
	e.tr.coll.afterEntry = func(string) error { return errors.New("stopped") }
	resp, newBody := e.get(WithForceRefresh(context.Background()), url)
	if Served(resp) != ServedMiss || string(newBody) == string(old) {
		t.Fatalf("refetch served %q %q", Served(resp), newBody)
	}
	e.tr.coll.afterEntry = nil
	if p := e.page(keyOf(t, url, Policy{ExpireAfter: Expiry{Kind: ExpireNever}})); p != nil {
		t.Errorf("a page summary survived the replaced response: %+v", p)
	}
	if h, ok := e.head(nil, url); ok {
		t.Errorf("a head answered with %+v; the response holds the body of hash %s", h, hexSHA256(newBody))
	}
	if body := e.expectServed(url, ServedHit); string(body) != string(newBody) {
		t.Errorf("hit served %q, want the new body", body)
	}
}
