package cache

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// fixtureHost is where the release fixture's pages were fetched from.
const fixtureHost = "http://127.0.0.1:18089"

// TestMigrationOnReleaseFixture: a data directory written by the previous
// release (no pages collection, last_modified as header text) is upgraded
// to schema version 2: a Page for every response, last_modified a date,
// headers untouched; and the cache then lists, shows, hits and
// revalidates as before.
func TestMigrationOnReleaseFixture(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixtureWith(t, storetest.FixtureE6C68C8, Migrations()...)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 2 {
		t.Fatalf("schema version = %d, %v; want 2", v, err)
	}
	var docs []bson.Raw
	err := s.Collection(DefaultDatabase, ResponsesCollection).Scan(ctx, bson.D{}, store.FindOptions{}, func(raw bson.Raw) error {
		docs = append(docs, slices.Clone(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 10 {
		t.Fatalf("fixture holds %d responses, want 10", len(docs))
	}
	dated := 0
	for _, raw := range docs {
		var doc Document
		if err := bson.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("decode migrated response: %v", err)
		}
		lm := raw.Lookup("last_modified")
		header := raw.Lookup("headers", "Last-Modified")
		switch {
		case lm.Type == bson.TypeDateTime:
			dated++
			want, ok := parseHTTPDate(header.StringValue(), time.Now())
			if !ok || !lm.Time().Equal(want) {
				t.Errorf("%s: last_modified %v, want the header %q as a date", doc.URL, lm.Time(), header.StringValue())
			}
		case lm.Type != 0:
			t.Errorf("%s: last_modified is %s, want a date", doc.URL, lm.Type)
		case header.Type != 0:
			t.Errorf("%s: last_modified dropped, but headers hold Last-Modified %q", doc.URL, header.StringValue())
		}
		var p Page
		pageRaw, err := s.Collection(DefaultDatabase, PagesCollection).Get(ctx, doc.ID)
		if err == nil {
			err = bson.Unmarshal(pageRaw, &p)
		}
		if err != nil {
			t.Errorf("%s: no page summary: %v", doc.URL, err)
			continue
		}
		if p.URL != doc.URL || p.Status != doc.Status || !p.ValidatedAt.Equal(doc.ValidatedAt) {
			t.Errorf("page = %+v, want url %s, status %d, validated_at %v", p, doc.URL, doc.Status, doc.ValidatedAt)
		}
	}
	if dated == 0 {
		t.Error("no migrated response has a last_modified date: the fixture's pages carry Last-Modified")
	}

	// The migrated cache works: list, show, a hit, a 304.
	admin := NewAdmin(s, DefaultDatabase, nil)
	entries, err := admin.List(ctx, ListOptions{})
	if err != nil || len(entries) != 10 {
		t.Fatalf("list: %d entries, %v; want 10", len(entries), err)
	}
	shown, _, err := admin.Show(ctx, fixtureHost+"/products/1")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	if _, err := DecodeResponse(shown, nil, nil); err != nil {
		t.Fatalf("show: %v", err)
	}

	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" {
			t.Errorf("%s: unconditional request, want a revalidation", r.URL)
		}
		w.WriteHeader(http.StatusNotModified) // RFC 9110 §15.4.5
	})
	e := newTransportEnvOn(t, s, Options{Upstream: hostRewriter{o}, Now: time.Now})
	url := fixtureHost + "/products/1"
	hit := e.expectServed(url, ServedHit)
	req, _ := http.NewRequestWithContext(WithRefresh(ctx), http.MethodGet, url, nil)
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if Served(resp) != ServedRevalidated {
		t.Fatalf("refresh: served %q, want revalidated", Served(resp))
	}
	if p := e.page(keyOf(t, url, Policy{})); p == nil || time.Since(p.ValidatedAt) > time.Minute {
		t.Errorf("after the 304: page %+v, want validated_at now", p)
	}
	if again := e.expectServed(url, ServedHit); string(again) != string(hit) {
		t.Error("the body changed across the 304")
	}
}
