package cache

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// page reads the Page stored under key; nil when there is none.
func (e *transportEnv) page(key string) *Page {
	e.t.Helper()
	raw := e.rawDoc(PagesCollection, key)
	if raw == nil {
		return nil
	}
	var p Page
	if err := bson.Unmarshal(raw, &p); err != nil {
		e.t.Fatalf("decode page %s: %v", key, err)
	}
	return &p
}

// TestPagesFollowStoredResponses: the pages collection holds one summary
// per stored response, with the last validation a 304 made (which the
// response document does not show on the embedded store), and loses it
// when the response goes.
func TestPagesFollowStoredResponses(t *testing.T) {
	var status = http.StatusOK
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Method == http.MethodGet && r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified) // RFC 9110 §15.4.5
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		io.WriteString(w, "<p>page</p>")
	})
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour}}})
	url := o.URL + uniquePath(t)
	key := keyOf(t, url, Policy{})
	wantPage := func(step string, want *Page) {
		t.Helper()
		got := e.page(key)
		switch {
		case want == nil && got != nil:
			t.Errorf("%s: page = %+v, want none", step, *got)
		case want != nil && got == nil:
			t.Errorf("%s: no page, want %+v", step, *want)
		case want != nil && (got.URL != want.URL || got.Status != want.Status || !got.ValidatedAt.Equal(want.ValidatedAt)):
			t.Errorf("%s: page = %+v, want %+v", step, *got, *want)
		}
	}

	fetched := e.clock.Now().Truncate(time.Millisecond)
	e.expectServed(url, ServedMiss)
	wantPage("miss", &Page{URL: url, Status: 200, ValidatedAt: fetched})

	e.clock.Advance(2 * time.Hour)
	confirmed := e.clock.Now().Truncate(time.Millisecond)
	e.expectServed(url, ServedRevalidated) // RFC 9111 §4.3.4
	wantPage("304", &Page{URL: url, Status: 200, ValidatedAt: confirmed})
	var entry Entry
	if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, key), &entry); err != nil {
		t.Fatal(err)
	}
	if !e.store.Capabilities().TTLIndexes && !entry.ValidatedAt.Equal(fetched) {
		t.Errorf("the 304 rewrote the response document (validated_at %v, want %v): pages exist so that it need not", entry.ValidatedAt, fetched)
	}

	status = http.StatusNotFound // stored: in allowable_codes
	e.clock.Advance(time.Minute)
	refetched := e.clock.Now().Truncate(time.Millisecond)
	req, _ := http.NewRequestWithContext(WithForceRefresh(context.Background()), http.MethodGet, url, nil)
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantPage("a new response", &Page{URL: url, Status: 404, ValidatedAt: refetched})

	admin := NewAdmin(e.db.s, e.db.name, e.clock.Now)
	if n, err := admin.Purge(context.Background(), PurgeOptions{Match: strings.TrimPrefix(url, "http://")}); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1 deleted", n, err)
	}
	wantPage("purged", nil)

	e.expectServed(url, ServedMiss)
	if _, err := admin.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantPage("cleared", nil)
}

// TestPagesInvalidatedByUnsafeRequest: RFC 9111 §4.4, a successful POST
// invalidates the stored response of its URL, and its Page with it.
func TestPagesInvalidatedByUnsafeRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "body")
	})
	e := newTransportEnv(t, Options{Policy: Policy{CacheControl: true}})
	url := o.URL + uniquePath(t)
	key := keyOf(t, url, Policy{CacheControl: true})
	e.expectServed(url, ServedMiss)
	if e.page(key) == nil {
		t.Fatal("no page after the response was stored")
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("x"))
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := e.page(key); p != nil {
		t.Errorf("after a POST: page = %+v, want none", *p)
	}
}
