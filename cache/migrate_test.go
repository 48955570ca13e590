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
// to schema version 2 (a Page for every response, last_modified a date,
// headers untouched) and on to 3 (heads: TestHeadsOnPreviousReleaseData);
// and the cache then lists, shows, hits and revalidates as before.
func TestMigrationOnReleaseFixture(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixtureWith(t, storetest.FixtureE6C68C8, Migrations()...)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 3 {
		t.Fatalf("schema version = %d, %v; want 3", v, err)
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
		var entry Entry
		if err := bson.Unmarshal(raw, &entry); err != nil {
			t.Fatalf("decode migrated response: %v", err)
		}
		lm := raw.Lookup("last_modified")
		header := raw.Lookup("headers", "Last-Modified")
		switch {
		case lm.Type == bson.TypeDateTime:
			dated++
			want, ok := parseHTTPDate(header.StringValue(), time.Now())
			if !ok || !lm.Time().Equal(want) {
				t.Errorf("%s: last_modified %v, want the header %q as a date", entry.URL, lm.Time(), header.StringValue())
			}
		case lm.Type != 0:
			t.Errorf("%s: last_modified is %s, want a date", entry.URL, lm.Type)
		case header.Type != 0:
			t.Errorf("%s: last_modified dropped, but headers hold Last-Modified %q", entry.URL, header.StringValue())
		}
		var p Page
		pageRaw, err := s.Collection(DefaultDatabase, PagesCollection).Get(ctx, entry.ID)
		if err == nil {
			err = bson.Unmarshal(pageRaw, &p)
		}
		if err != nil {
			t.Errorf("%s: no page summary: %v", entry.URL, err)
			continue
		}
		if p.URL != entry.URL || p.Status != entry.Status || !p.ValidatedAt.Equal(entry.ValidatedAt) {
			t.Errorf("page = %+v, want url %s, status %d, validated_at %v", p, entry.URL, entry.Status, entry.ValidatedAt)
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

// TestMigrationOldForms: responses in the form earlier releases wrote, as
// the step meets them: a revalidation newer than the body (the page's
// validated_at is the 304's), a last_modified text that is no HTTP-date
// (unset; the header stays), a document without last_modified. Run twice,
// as after a crash before the version was recorded: the same outcome.
func TestMigrationOldForms(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	if err := s.EnsureCollections(ctx, DefaultDatabase, ResponsesCollection, RevalidationsCollection); err != nil {
		t.Fatal(err)
	}
	responses := s.Collection(DefaultDatabase, ResponsesCollection)
	fetched := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	confirmed := fetched.Add(48 * time.Hour)
	old := func(id, lastModified string) bson.D {
		d := bson.D{{Key: "_id", Value: id}, {Key: "url", Value: "http://example.test/" + id}, {Key: "method", Value: "GET"},
			{Key: "status", Value: 200}, {Key: "headers", Value: bson.D{{Key: "Last-Modified", Value: lastModified}}},
			{Key: "body", Value: "x"}, {Key: "size", Value: int64(1)}, {Key: "created_at", Value: fetched}, {Key: "validated_at", Value: fetched}}
		if lastModified != "" {
			d = append(d, bson.E{Key: "last_modified", Value: lastModified})
		}
		return d
	}
	for _, d := range []bson.D{old("revalidated", "Mon, 02 Mar 2026 10:00:00 GMT"), old("garbage", "yesterday"), old("none", "")} {
		if err := responses.Insert(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rev := Revalidation{ID: "revalidated", ValidatedAt: confirmed}
	if err := s.Collection(DefaultDatabase, RevalidationsCollection).Insert(ctx, rev); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id        string
		validated time.Time
		lm        bson.Type // 0: absent
	}{
		{"revalidated", confirmed, bson.TypeDateTime},
		{"garbage", fetched, 0},
		{"none", fetched, 0},
	}
	for run := 1; run <= 2; run++ {
		if err := migratePages(ctx, s); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		for _, tc := range tests {
			raw, err := responses.Get(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got := raw.Lookup("last_modified").Type; got != tc.lm {
				t.Errorf("run %d, %s: last_modified is %v, want %v", run, tc.id, got, tc.lm)
			}
			if raw.Lookup("headers", "Last-Modified").Type == 0 && tc.id != "none" {
				t.Errorf("run %d, %s: the Last-Modified header was dropped", run, tc.id)
			}
			var entry Entry
			if err := bson.Unmarshal(raw, &entry); err != nil {
				t.Errorf("run %d, %s: migrated response does not decode: %v", run, tc.id, err)
			}
			var p Page
			pageRaw, err := s.Collection(DefaultDatabase, PagesCollection).Get(ctx, tc.id)
			if err == nil {
				err = bson.Unmarshal(pageRaw, &p)
			}
			if err != nil || !p.ValidatedAt.Equal(tc.validated) || p.Status != 200 {
				t.Errorf("run %d, %s: page %+v (%v), want status 200, validated_at %v", run, tc.id, p, err, tc.validated)
			}
		}
	}
}
