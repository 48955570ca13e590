package cache

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// langOrigin answers /lang with a body naming the request's
// Accept-Language, varying on the headers in vary (an atomic so a test can
// change them), with an ETag per language and max-age=60.
func langOrigin(t *testing.T, vary *atomic.Value) *origin {
	t.Helper()
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		lang := r.Header.Get("Accept-Language")
		if v, _ := vary.Load().(string); v != "" {
			w.Header().Set("Vary", v)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		etag := `"` + lang + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "hello in "+lang)
	})
}

// variantKey is the key a GET of url with Accept-Language lang is stored
// under when the response varies on names.
func variantKey(t *testing.T, url, lang string, p Policy, names ...string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	return Key(req, nil, p, varyHeader(names))
}

// variantsDoc returns the Variants stored for a primary key, nil if none.
func (e *transportEnv) variantsDoc(key string) *Variants {
	e.t.Helper()
	raw := e.rawDoc(VariantsCollection, key)
	if raw == nil {
		return nil
	}
	var v Variants
	if err := bson.Unmarshal(raw, &v); err != nil {
		e.t.Fatalf("decode variants %s: %v", key, err)
	}
	return &v
}

type langStep struct {
	lang, want, body string
}

func (e *transportEnv) langSteps(url string, steps []langStep) {
	e.t.Helper()
	for i, s := range steps {
		var h []string
		if s.lang != "" {
			h = []string{"Accept-Language", s.lang}
		}
		resp, body := e.get(nil, url, h...)
		if got := Served(resp); got != s.want || string(body) != s.body {
			e.t.Errorf("step %d (%q): served %q body %q, want %q %q", i, s.lang, got, body, s.want, s.body)
		}
	}
}

func TestVaryVariantsHitIndependently(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedMiss, "hello in fr"},
		{"", ServedMiss, "hello in "}, // no Accept-Language is a variant too
		{"en", ServedHit, "hello in en"},
		{"fr", ServedHit, "hello in fr"},
		{"", ServedHit, "hello in "},
		{"de", ServedMiss, "hello in de"},
	})
	if got := o.requests.Load(); got != 4 {
		t.Errorf("origin requests = %d, want 4", got)
	}
	primary := keyOf(t, url, p)
	if e.rawDoc(ResponsesCollection, primary) != nil {
		t.Errorf("a response is stored under the primary key; want only variants")
	}
	v := e.variantsDoc(primary)
	if v == nil {
		t.Fatal("no variants document under the primary key")
	}
	if want := []string{"Accept-Language"}; !slices.Equal(v.Vary, want) {
		t.Errorf("variants vary = %v, want %v", v.Vary, want)
	}
	var want []string
	for _, lang := range []string{"en", "fr", "", "de"} {
		k := variantKey(t, url, lang, p, "Accept-Language")
		want = append(want, k)
		raw := e.rawDoc(ResponsesCollection, k)
		if raw == nil {
			t.Errorf("variant %q: no response under %s", lang, k)
			continue
		}
		if got, _ := raw.Lookup("vary", "Accept-Language").StringValueOK(); got != lang {
			t.Errorf("variant %q: stored vary.Accept-Language = %q", lang, got)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(v.Keys))
	if !slices.Equal(got, want) {
		t.Errorf("variants keys = %v, want %v", got, want)
	}

	st, err := NewAdmin(e.store, e.db.name, e.clock.Now).Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Count != 4 || st.Varying != 1 {
		t.Errorf("Stats: count %d varying %d, want 4 and 1", st.Count, st.Varying)
	}
}

func TestVaryStarIsNotStored(t *testing.T) {
	var vary atomic.Value
	vary.Store("*")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"en", ServedMiss, "hello in en"},
	})
	primary := keyOf(t, url, p)
	if e.rawDoc(ResponsesCollection, primary) != nil || e.variantsDoc(primary) != nil {
		t.Error("a Vary: * response left a response or variants document")
	}
	if n, _ := e.db.Collection(ResponsesCollection).Count(context.Background(), bson.D{}); n != 0 {
		t.Errorf("responses stored = %d, want 0", n)
	}
}

func TestVaryRevalidatesOneVariant(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedMiss, "hello in fr"},
	})
	e.clock.Advance(61 * time.Second)
	enKey := variantKey(t, url, "en", p, "Accept-Language")
	frKey := variantKey(t, url, "fr", p, "Accept-Language")
	before := e.rawDoc(ResponsesCollection, enKey)
	e.langSteps(url, []langStep{
		{"en", ServedRevalidated, "hello in en"},
		{"en", ServedHit, "hello in en"}, // the 304 made it fresh again
		{"fr", ServedRevalidated, "hello in fr"},
	})
	if got := o.header().Get("If-None-Match"); got != `"fr"` {
		t.Errorf("fr revalidation sent If-None-Match %q, want \"fr\"", got)
	}
	if got := o.notModified.Load(); got != 2 {
		t.Errorf("304s = %d, want 2", got)
	}
	if e.rawDoc(RevalidationsCollection, enKey) == nil || e.rawDoc(RevalidationsCollection, frKey) == nil {
		t.Error("want a revalidation under each variant's key")
	}
	if !slices.Equal(before, e.rawDoc(ResponsesCollection, enKey)) {
		t.Error("the 304 rewrote the en variant's response document")
	}
}

func TestVaryUnsafeMethodInvalidatesAllVariants(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedMiss, "hello in fr"},
		{"fr", ServedHit, "hello in fr"},
	})
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("x=1"))
	req.Header.Set("Accept-Language", "en") // a POST in one language drops them all
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	primary := keyOf(t, url, p)
	if e.variantsDoc(primary) != nil {
		t.Error("variants document survived the POST")
	}
	for _, lang := range []string{"en", "fr"} {
		if e.rawDoc(ResponsesCollection, variantKey(t, url, lang, p, "Accept-Language")) != nil {
			t.Errorf("variant %q survived the POST", lang)
		}
	}
	e.langSteps(url, []langStep{
		{"fr", ServedMiss, "hello in fr"},
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedHit, "hello in fr"},
	})
}

// TestVaryUnlistedVariantIsNotServedAfterInvalidation covers a variant
// that its variants document does not list (a lost concurrent update):
// invalidation cannot delete it, and it must not come back once a new
// variants document names the same headers.
func TestVaryUnlistedVariantIsNotServedAfterInvalidation(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{{"en", ServedMiss, "hello in en"}, {"fr", ServedMiss, "hello in fr"}})
	primary := keyOf(t, url, p)
	frKey := variantKey(t, url, "fr", p, "Accept-Language")
	ctx := context.Background()
	if _, err := e.db.Collection(VariantsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: primary}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "keys", Value: frKey}}}}, false); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e.rawDoc(ResponsesCollection, frKey) == nil {
		t.Fatal("test premise: the unlisted fr variant should still be stored")
	}
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedMiss, "hello in fr"}, // fetched before the new variants document
		{"fr", ServedHit, "hello in fr"},
	})
}

func TestVaryChangedVarySet(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	primary := keyOf(t, url, p)
	e.langSteps(url, []langStep{{"en", ServedMiss, "hello in en"}, {"fr", ServedMiss, "hello in fr"}})

	// The origin now also varies on Accept (and sends a new body, so that
	// the expired entries are refetched rather than confirmed).
	vary.Store("Accept, Accept-Language")
	e.clock.Advance(61 * time.Second)
	e.langSteps(url, []langStep{
		{"en", ServedRevalidated, "hello in en"}, // its ETag still matches
	})
	// A 304 is not a new response: the Vary set changes with the next 200.
	req, _ := http.NewRequestWithContext(WithForceRefresh(context.Background()), http.MethodGet, url, nil)
	req.Header.Set("Accept-Language", "en")
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	v := e.variantsDoc(primary)
	if want := []string{"Accept", "Accept-Language"}; v == nil || !slices.Equal(v.Vary, want) {
		t.Fatalf("variants = %+v, want vary %v", v, want)
	}
	newEn := variantKey(t, url, "en", p, "Accept", "Accept-Language")
	if !slices.Equal(v.Keys, []string{newEn}) {
		t.Errorf("variants keys = %v, want [%s]", v.Keys, newEn)
	}
	for _, lang := range []string{"en", "fr"} {
		if e.rawDoc(ResponsesCollection, variantKey(t, url, lang, p, "Accept-Language")) != nil {
			t.Errorf("variant %q under the old Vary set is still stored", lang)
		}
	}
	e.langSteps(url, []langStep{
		{"en", ServedHit, "hello in en"},
		{"fr", ServedMiss, "hello in fr"},
		{"fr", ServedHit, "hello in fr"},
	})

	// The origin stops varying: one response under the primary key again.
	vary.Store("")
	e.clock.Advance(61 * time.Second)
	req, _ = http.NewRequestWithContext(WithForceRefresh(context.Background()), http.MethodGet, url, nil)
	resp, err = e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e.variantsDoc(primary) != nil {
		t.Error("variants document survived the origin dropping Vary")
	}
	if n, _ := e.db.Collection(ResponsesCollection).Count(context.Background(), bson.D{}); n != 1 {
		t.Errorf("responses stored = %d, want 1 (under the primary key)", n)
	}
	e.langSteps(url, []langStep{{"", ServedHit, "hello in "}, {"fr", ServedHit, "hello in "}})

	// And starts varying again: the plain response makes way.
	vary.Store("Accept-Language")
	req, _ = http.NewRequestWithContext(WithForceRefresh(context.Background()), http.MethodGet, url, nil)
	req.Header.Set("Accept-Language", "de")
	resp, err = e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e.rawDoc(ResponsesCollection, primary) != nil {
		t.Error("the plain response under the primary key survived the origin varying")
	}
	e.langSteps(url, []langStep{{"de", ServedHit, "hello in de"}, {"fr", ServedMiss, "hello in fr"}})
}

// TestVaryCoalescedMissesDoNotShareVariants: concurrent misses for one
// URL are coalesced before the response says it varies; a waiter whose
// header values differ from the leader's must not get the leader's
// variant.
func TestVaryCoalescedMissesDoNotShareVariants(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if r.Header.Get("Accept-Language") == "en" {
			<-release
		}
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello in "+r.Header.Get("Accept-Language"))
	})
	e := newTransportEnv(t, Options{Policy: Policy{CacheControl: true}})
	e.tr.flights.joined = func(string) { close(release) }
	url := o.URL + "/lang"
	var wg sync.WaitGroup
	bodies := map[string]string{}
	var mu sync.Mutex
	get := func(lang string) {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept-Language", lang)
		resp, err := e.tr.RoundTrip(req)
		if err != nil {
			t.Errorf("%s: %v", lang, err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		bodies[lang] = string(b)
		mu.Unlock()
	}
	wg.Add(2)
	go get("en")
	<-arrived // en leads
	go get("fr")
	wg.Wait()
	for _, lang := range []string{"en", "fr"} {
		if want := "hello in " + lang; bodies[lang] != want {
			t.Errorf("%s got %q, want %q", lang, bodies[lang], want)
		}
	}
	e.langSteps(url, []langStep{{"en", ServedHit, "hello in en"}, {"fr", ServedHit, "hello in fr"}})
}

func TestVaryCrawlerPolicyIgnoresVary(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	e := newTransportEnv(t, Options{})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{
		{"en", ServedMiss, "hello in en"},
		{"fr", ServedHit, "hello in en"}, // match_headers, not Vary, keys the crawler policy
	})
	if e.variantsDoc(keyOf(t, url, Policy{})) != nil {
		t.Error("the crawler policy wrote a variants document")
	}
}

func TestVaryAdminPurgeAndClear(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{{"en", ServedMiss, "hello in en"}})
	e.clock.Advance(time.Second)
	e.langSteps(url, []langStep{{"fr", ServedMiss, "hello in fr"}})
	ctx := context.Background()
	admin := NewAdmin(e.store, e.db.name, e.clock.Now)
	list, err := admin.List(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var langs []string
	for _, s := range list {
		langs = append(langs, s.Vary["Accept-Language"])
	}
	slices.Sort(langs)
	if !slices.Equal(langs, []string{"en", "fr"}) {
		t.Errorf("List: vary values %v, want [en fr]", langs)
	}
	entry, _, err := admin.Show(ctx, url)
	if err != nil || entry.Vary["Accept-Language"] != "fr" {
		t.Errorf("Show = %v, %v; want the fr variant (stored last)", entry, err)
	}
	primary := keyOf(t, url, p)
	frKey := variantKey(t, url, "fr", p, "Accept-Language")
	if _, err := admin.deleteEntries(ctx, []string{frKey}, nil); err != nil {
		t.Fatal(err)
	}
	if v := e.variantsDoc(primary); v == nil || slices.Contains(v.Keys, frKey) || len(v.Keys) != 1 {
		t.Errorf("after deleting fr: variants = %+v, want only en listed", v)
	}
	if n, err := admin.Purge(ctx, PurgeOptions{Match: "*/lang"}); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if e.variantsDoc(primary) != nil {
		t.Error("variants document survived purging its last variant")
	}
	e.langSteps(url, []langStep{{"en", ServedMiss, "hello in en"}})
	if _, err := admin.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if e.variantsDoc(primary) != nil {
		t.Error("Clear left a variants document")
	}
}

func TestVarySweepDropsVariantsDocument(t *testing.T) {
	var vary atomic.Value
	vary.Store("Accept-Language")
	o := langOrigin(t, &vary)
	p := Policy{CacheControl: true}
	e := newTransportEnv(t, Options{Policy: p})
	url := o.URL + "/lang"
	e.langSteps(url, []langStep{{"en", ServedMiss, "hello in en"}})
	e.clock.Advance(2 * time.Hour)
	e.langSteps(url, []langStep{{"fr", ServedMiss, "hello in fr"}})
	ctx := context.Background()
	admin := NewAdmin(e.store, e.db.name, e.clock.Now)
	if _, err := admin.SetTTL(ctx, 90*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	primary := keyOf(t, url, p)
	frKey := variantKey(t, url, "fr", p, "Accept-Language")
	if n, err := admin.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("first Sweep = %d, %v; want 1 (en)", n, err)
	}
	if v := e.variantsDoc(primary); v == nil || !slices.Equal(v.Keys, []string{frKey}) {
		t.Errorf("after sweeping en: variants = %+v, want only fr listed", v)
	}
	e.clock.Advance(2 * time.Hour)
	if n, err := admin.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("second Sweep = %d, %v; want 1 (fr)", n, err)
	}
	if e.variantsDoc(primary) != nil {
		t.Error("variants document survived the sweep of its last variant")
	}
}
