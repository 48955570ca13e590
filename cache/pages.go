package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// The pages collection is for people, not for the transport: one small
// Page per stored entry, under the response's key, holding what people
// filter on in Compass or mongosh. The embedded server decodes every
// document of a collection for any filter other than _id, at a cost per
// document that grows with its number of fields: a 40 KB response costs
// tens of times more than a Page (docs/readme/store.md has the figures).
// The transport writes a Page with every response it stores and every 304
// it records, and never reads one: a hit is still one lookup by _id.

// Page is the summary of one stored entry in the pages collection,
// under the same _id as its Entry. ValidatedAt is effective: the last
// time the body was fetched or confirmed by a 304 (which the responses
// collection does not show on the embedded store, where a 304 is written
// to revalidations). BodySHA256 and IntervalSeconds are the entry's
// (IntervalSeconds the effective learned interval): with ValidatedAt
// they let a fresh hit be judged without reading the body (head.go);
// ETag and LastModified, the validators of the response as it is served
// (a 304's merged in), let an expired one be revalidated without it, and
// Size counts the bytes such a hit saved. Keep it to these few short
// fields: every field makes every query of the collection slower on the
// embedded server.
type Page struct {
	ID          string    `bson:"_id"`
	URL         string    `bson:"url"`
	Status      int       `bson:"status"`
	ValidatedAt time.Time `bson:"validated_at"`
	// BodySHA256 is absent in Pages written by releases before heads,
	// and for entries bound to credentials (their binding is checked on
	// the entry itself).
	BodySHA256      string `bson:"body_sha256,omitempty"`
	IntervalSeconds int64  `bson:"interval_seconds,omitempty"`
	// Size is the body's length. ETag is the response's ETag field and
	// LastModified its Last-Modified as a date (whose IMF-fixdate text is
	// the field's). All three are absent where BodySHA256 is, and in
	// Pages of releases before them; the validators are absent too when
	// the response has none, or one a Page cannot hold exactly (a field
	// sent twice, a date in another form): such a response is
	// revalidated from its entry (head.go).
	Size         int64    `bson:"size,omitempty"`
	ETag         string   `bson:"etag,omitempty"`
	LastModified HTTPDate `bson:"last_modified,omitempty"`
}

// setValidators sets p's ETag and LastModified to h's, or leaves both
// empty when h has one p cannot hold exactly: a conditional request made
// from p sends what one made from h would.
func (p *Page) setValidators(h http.Header) {
	etags, lms := h.Values("ETag"), h.Values("Last-Modified")
	if len(etags) > 1 || len(lms) > 1 {
		return
	}
	var lm HTTPDate
	if len(lms) == 1 {
		lm = httpDateOf(lms, time.Time{})
		if lm.IsZero() || lm.Format(http.TimeFormat) != lms[0] {
			return
		}
	}
	if len(etags) == 1 {
		p.ETag = etags[0]
	}
	p.LastModified = lm
}

// validators is the header of p's validators, as setValidators took
// them.
func (p *Page) validators() http.Header {
	h := http.Header{}
	if p.ETag != "" {
		h.Set("ETag", p.ETag)
	}
	if !p.LastModified.IsZero() {
		h.Set("Last-Modified", p.LastModified.UTC().Format(http.TimeFormat))
	}
	return h
}

// headable reports whether entry's Page may name its body (and
// validators): not for an entry bound to a credential or to the Vary
// values of a request, which is judged on the entry itself.
func headable(entry *Entry) bool {
	return CredentialOf(entry) == nil && len(entry.Vary) == 0
}

// pageOf is the Page of an Entry just stored.
func pageOf(entry *Entry) *Page {
	p := &Page{ID: entry.ID, URL: entry.URL, Status: entry.Status, ValidatedAt: entry.ValidatedAt, IntervalSeconds: entry.IntervalSeconds}
	if headable(entry) {
		p.BodySHA256 = validSHA256(entry.BodySHA256)
	}
	if p.BodySHA256 != "" {
		p.Size = entry.Size
		if h, err := decodeHeader(entry.Headers); err == nil {
			p.setValidators(h)
		}
	}
	return p
}

// pageIndexes are the indexes of the pages collection on servers that use
// them (MongoDB): what people filter on.
var pageIndexes = []string{"status", "url", "validated_at"}

// savePage records p, inserting when isNew (cheaper on the embedded
// server), replacing otherwise or when another writer inserted it first.
// A Page is derived data: callers count a failure as a store error and go
// on.
func (c *collections) savePage(ctx context.Context, p *Page, isNew bool) error {
	var err error
	if isNew {
		err = c.insertOne(ctx, c.pages, p)
	}
	if !isNew || errors.Is(err, store.ErrDuplicateID) {
		err = c.upsert(ctx, c.pages, p.ID, p)
	}
	if err != nil {
		return fmt.Errorf("store page summary %s: %w", p.ID, err)
	}
	return nil
}

// recordPage writes the Page of a 304 that confirmed the response under
// key (url and status are the stored entry's). It runs after the
// revalidation was stored, with its own timeout.
func (c *collections) recordPage(ctx context.Context, p *Page) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	return c.savePage(ctx, p, false)
}

// ensurePageIndexes creates the pages indexes where the server uses them,
// and drops them where it does not (see ensureIndexes).
func ensurePageIndexes(ctx context.Context, pages indexes) error {
	for _, f := range pageIndexes {
		if err := pages.EnsureIndex(ctx, f, bson.D{{Key: f, Value: 1}}); err != nil {
			return err
		}
	}
	return nil
}

// pageOf304 is the Page of the response st, stored under c.key, after a
// 304 at now that learned the interval iv, confirmed the body of hash
// sha and left the response with the header merged.
func pageOf304(c *call, st *storedEntry, now time.Time, iv time.Duration, sha string, merged http.Header) *Page {
	p := &Page{ID: c.key, URL: c.norm, Status: st.e.status, ValidatedAt: now, IntervalSeconds: seconds(iv)}
	switch {
	case st.page != nil: // revalidated from its Page (head.go)
		p.URL, p.BodySHA256, p.Size = st.page.URL, sha, st.page.Size
	case st.entry != nil:
		p.URL = st.entry.URL
		if headable(st.entry) {
			p.BodySHA256, p.Size = sha, int64(len(st.e.body))
		}
	}
	if p.BodySHA256 != "" {
		p.setValidators(merged)
	}
	return p
}
