package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"crawlcache/store"
)

// Record is one entry with its body and the request that
// produced it, as Export yields it and Import takes it (the form archive
// formats such as WARC are made from and read into).
type Record struct {
	// Key is the entry's cache key (set by Export; Import computes it).
	Key string
	// URL is the URL requested: the stored request's URL, with secret
	// query parameters REDACTED (Export), or the URL to store under
	// (Import).
	URL string
	// Method is the request method (Import accepts only GET).
	Method string
	// RequestHeader is the request's header as stored: Authorization,
	// Cookie and Proxy-Authorization values REDACTED.
	RequestHeader http.Header
	// Status, Reason and Proto make the status line; Reason is "" for the
	// standard phrase of Status, and Proto "" for HTTP/1.1.
	Status int
	Reason string
	Proto  string
	// Header is the response header, with the headers of a later 304
	// merged in (what the cache serves).
	Header http.Header
	// Body is the exact body the cache serves.
	Body []byte
	// Uncompressed is Entry.Uncompressed: the origin sent the body
	// gzip-encoded, and Body is decoded (Header has no Content-Encoding).
	Uncompressed bool
	// CreatedAt is when the body was fetched and ValidatedAt when the
	// origin last sent or confirmed it (the effective validated_at).
	CreatedAt, ValidatedAt time.Time
	// Credential says whom an entry fetched with credentials is served to
	// (nil for a public entry). Import refuses records with credentials.
	Credential *CredentialInfo
}

// ExportOptions selects the entries Export yields. The zero value selects
// every entry.
type ExportOptions struct {
	// Match keeps entries whose URL matches this glob (as ListOptions).
	Match string
	// Since keeps entries whose effective validated_at is at or after it;
	// zero means no bound.
	Since time.Time
}

// ExportStats counts what Export did.
type ExportStats struct {
	// Exported is the number of records passed to fn.
	Exported int
	// Skipped counts entries that do not decode or were deleted while
	// the export ran.
	Skipped int
}

// Export calls fn with every entry opts selects, in URL order, one at a
// time: bodies are read one by one, never all at once. It stops at fn's
// first error and returns it. Export scans the responses collection once
// (without bodies) and then reads each entry by its _id.
func (a *Admin) Export(ctx context.Context, opts ExportOptions, fn func(*Record) error) (ExportStats, error) {
	var st ExportStats
	var keys []EntrySummary
	_, err := a.eachEntry(ctx, func(e EntrySummary) {
		if (opts.Match != "" && !urlMatches(opts.Match, e.URL)) || (!opts.Since.IsZero() && e.ValidatedAt.Before(opts.Since)) {
			return
		}
		keys = append(keys, e)
	})
	if err != nil {
		return st, err
	}
	slices.SortFunc(keys, func(x, y EntrySummary) int {
		return cmp.Or(strings.Compare(x.URL, y.URL), strings.Compare(x.Method, y.Method), strings.Compare(x.Key, y.Key))
	})
	for _, k := range keys {
		rec, err := a.record(ctx, k.Key)
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
			st.Skipped++
			continue
		case err != nil:
			return st, err
		}
		if err := fn(rec); err != nil {
			return st, err
		}
		st.Exported++
	}
	return st, nil
}

// record reads the entry stored under key as a Record.
func (a *Admin) record(ctx context.Context, key string) (*Record, error) {
	entry, rev, err := a.byKey(ctx, key)
	if err != nil {
		return nil, err
	}
	e, validatedAt, _, err := decodeEntry(entry, rev)
	if err != nil {
		return nil, err
	}
	reqHeader, err := decodeHeader(entry.Request.Headers)
	if err != nil {
		return nil, fmt.Errorf("decode cached request %s: %w", key, err)
	}
	return &Record{
		Key: entry.ID, URL: cmp.Or(entry.Request.URL, entry.URL), Method: cmp.Or(entry.Method, http.MethodGet),
		RequestHeader: reqHeader, Status: e.status, Reason: e.reason, Proto: e.proto,
		Header: e.header, Body: e.body, Uncompressed: e.uncompressed,
		CreatedAt: entry.CreatedAt, ValidatedAt: validatedAt, Credential: CredentialOf(entry),
	}, nil
}

// byKey finds the response stored under key and its revalidation (nil if
// none). It returns an error wrapping ErrNotFound when there is none.
func (a *Admin) byKey(ctx context.Context, key string) (*Entry, *Revalidation, error) {
	var entry Entry
	err := getDoc(ctx, a.responses, key, &entry)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, fmt.Errorf("cached response %s: %w", key, ErrNotFound)
	case err != nil:
		return nil, nil, fmt.Errorf("find cached response %s: %w", key, err)
	}
	var rev Revalidation
	err = getDoc(ctx, a.revalidations, key, &rev)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &entry, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("find revalidation %s: %w", key, err)
	}
	return &entry, &rev, nil
}

// Errors returned by Import, checked with errors.Is.
var (
	// ErrNotGet: only responses to GET requests are imported.
	ErrNotGet = errors.New("not a response to a GET request")
	// ErrHasCredentials: the request carried Authorization, Cookie or
	// Proxy-Authorization. Its response belongs to that credential, which
	// the record does not hold (it is redacted or must not be stored), so
	// it cannot be bound again.
	ErrHasCredentials = errors.New("request carried credentials")
)

// Import stores rec as the entry a plain GET of rec.URL uses under the
// default policy (the key `cache show` looks up; cache.ignored_parameters
// at their default), as if fetched at rec.ValidatedAt: validators
// (ETag, Last-Modified) come from rec.Header, and an existing revalidation
// is dropped. It returns false, nil and stores nothing when the cache
// already holds that entry validated at or after rec.ValidatedAt. It
// returns ErrNotGet or ErrHasCredentials (wrapped) for a record it must not
// store.
func (a *Admin) Import(ctx context.Context, rec *Record) (stored bool, err error) {
	if m := cmp.Or(rec.Method, http.MethodGet); m != http.MethodGet {
		return false, fmt.Errorf("import %s: %w (%s)", rec.URL, ErrNotGet, m)
	}
	for _, h := range secretHeaders {
		if _, ok := rec.RequestHeader[h]; ok || rec.Credential != nil {
			return false, fmt.Errorf("import %s: %w", rec.URL, ErrHasCredentials)
		}
	}
	if rec.Status < 100 || rec.Status > 999 || rec.ValidatedAt.IsZero() {
		return false, fmt.Errorf("import %s: status %d at %v: %w", rec.URL, rec.Status, rec.ValidatedAt, ErrCorrupt)
	}
	u, err := url.Parse(rec.URL)
	if err != nil {
		return false, fmt.Errorf("import %s: %w", rec.URL, err)
	}
	key, err := KeyForURL(http.MethodGet, rec.URL, Policy{})
	if err != nil {
		return false, fmt.Errorf("import %s: %w", rec.URL, err)
	}
	norm, err := NormalizeURL(rec.URL, DefaultIgnoredParameters)
	if err != nil {
		return false, fmt.Errorf("import %s: %w", rec.URL, err)
	}
	entry, rev, err := a.byKey(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return false, err
	default:
		if _, validatedAt, _, derr := decodeEntry(entry, rev); derr == nil && !validatedAt.Before(rec.ValidatedAt) {
			return false, nil
		}
	}
	req := &http.Request{Method: http.MethodGet, URL: u, Header: rec.RequestHeader}
	e := &decodedEntry{status: rec.Status, proto: rec.Proto, header: rec.Header, body: rec.Body, uncompressed: rec.Uncompressed, reason: rec.Reason}
	if e.header == nil {
		e.header = http.Header{}
	}
	at := rec.ValidatedAt.UTC().Truncate(time.Millisecond)
	d := newEntry(key, norm, req, e, Policy{}, at, nil, nil, false)
	if !rec.CreatedAt.IsZero() && rec.CreatedAt.Before(at) {
		d.CreatedAt = rec.CreatedAt.UTC().Truncate(time.Millisecond)
	}
	// The Page of a replaced entry goes first (see collections.save).
	if err := a.pages.Delete(ctx, key); err != nil {
		return false, fmt.Errorf("delete page summary %s: %w", key, err)
	}
	if err := a.responses.Upsert(ctx, key, d); err != nil {
		return false, fmt.Errorf("store imported response %s: %w", key, err)
	}
	if err := a.revalidations.Delete(ctx, key); err != nil {
		return false, fmt.Errorf("delete revalidation %s: %w", key, err)
	}
	if err := a.pages.Upsert(ctx, key, pageOf(d)); err != nil {
		return false, fmt.Errorf("store page summary %s: %w", key, err)
	}
	return true, nil
}
