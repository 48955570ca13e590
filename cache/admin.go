package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Admin inspects and maintains the cache stored in one database: TTL,
// sweeping, statistics, listing and purging. Its scans read every
// document of a collection, which is fine for admin work but never for a
// per-request path (the embedded server pushes down only _id equality).
// It is safe for concurrent use, including alongside Transports writing to
// the same database.
type Admin struct {
	db            string
	responses     collection
	revalidations collection
	redirects     collection
	variants      collection
	pages         collection
	settings      collection
	supportsTTL   bool
	now           func() time.Time
	// afterScan, if set, runs between a sweep's scan and its deletes
	// (tests: a 304 that lands meanwhile).
	afterScan func()
}

// NewAdmin returns an Admin over the cache in database db of st (usually
// DefaultDatabase). On a server without TTL indexes (the embedded store)
// the TTL is kept in the settings collection and enforced by Sweep. now is
// the clock; nil means time.Now.
func NewAdmin(st *store.Store, db string, now func() time.Time) *Admin {
	if now == nil {
		now = time.Now
	}
	a := &Admin{
		db:            db,
		responses:     st.Collection(db, ResponsesCollection),
		revalidations: st.Collection(db, RevalidationsCollection),
		redirects:     st.Collection(db, RedirectsCollection),
		variants:      st.Collection(db, VariantsCollection),
		pages:         st.Collection(db, PagesCollection),
		settings:      st.Collection(db, SettingsCollection),
		now:           now,
	}
	a.supportsTTL = a.responses.TTLIndexes()
	return a
}

// EntrySummary is one entry without its body, as listed by
// List. ValidatedAt and Expires are effective: taken from the entry's
// revalidation when that is newer.
type EntrySummary struct {
	Key         string
	URL         string
	Method      string
	Status      int
	ContentType string
	Size        int64
	CreatedAt   time.Time
	ValidatedAt time.Time
	// Expires is when the entry stops being fresh; nil means never.
	Expires *time.Time
	// Vary holds the request header values this variant was stored for
	// (RFC mode, a response with Vary); several entries of one URL and
	// method differ here. nil when the response does not vary.
	Vary map[string]string
	// Credential is set when the entry was fetched with credentials
	// (CredentialOf): whom it is served to, never the credential itself.
	Credential *CredentialInfo
	// Revalidated is true when a 304 confirmed the entry after its body
	// was stored.
	Revalidated bool
	// Stale is true when Expires has passed: the next use revalidates it
	// (or fetches it again).
	Stale bool
	// Expired is true when ValidatedAt is older than the TTL: the sweeper
	// or the TTL index deletes it.
	Expired bool
}

// CollectionStats summarises the cache.
type CollectionStats struct {
	// Database is the name of the cache's database.
	Database string
	// Count is the number of stored entries (each Vary variant counts
	// as one) and TotalSize the sum of their body sizes in bytes.
	Count     int64
	TotalSize int64
	// Stale counts entries past their expires (they are revalidated on
	// next use); Expired counts entries older than the TTL (deleted by the
	// next sweep or by the TTL index).
	Stale   int64
	Expired int64
	// Revalidations and Redirects count documents in the side collections.
	Revalidations int64
	Redirects     int64
	// Varying counts the URLs stored with Vary variants (documents in the
	// variants collection); their variants are counted in Count.
	Varying int64
	// TTL is the TTL in force and its mechanism.
	TTL TTLInfo
	// Oldest and Newest are the earliest and latest effective validated_at
	// (zero when the cache is empty).
	Oldest time.Time
	Newest time.Time
	// ByStatus counts entries by HTTP status.
	ByStatus map[int]int64
}

// ListOptions selects entries for List. The zero value lists every entry.
type ListOptions struct {
	// Expired keeps only entries older than the TTL (none when no TTL is set).
	Expired bool
	// Stale keeps only entries past their expires.
	Stale bool
	// Match keeps only entries whose URL matches this glob: '*' is any run
	// of characters (including '/'), '?' one character; the scheme is
	// optional ("example.org/news/*"), and a bare host matches its pages.
	Match string
	// Limit caps the number of entries returned; 0 means no limit.
	Limit int
}

// PurgeOptions selects entries for Purge. Given criteria are combined: an
// entry is deleted when it meets all of them. At least one is required.
type PurgeOptions struct {
	// Expired selects entries older than the TTL, as Sweep does (whatever
	// the mechanism). With no TTL set nothing is expired.
	Expired bool
	// Stale selects entries past their expires.
	Stale bool
	// OlderThan selects entries whose effective validated_at is older than
	// this; 0 means not used.
	OlderThan time.Duration
	// Match selects entries whose URL matches this glob (as in ListOptions).
	Match string
}

// eachEntry calls fn for every entry, with Stale and Expired set, and
// returns the TTL it judged Expired by.
func (a *Admin) eachEntry(ctx context.Context, fn func(EntrySummary)) (TTLInfo, error) {
	info, err := a.TTL(ctx)
	if err != nil {
		return info, err
	}
	revs, err := a.scanRevalidations(ctx)
	if err != nil {
		return info, err
	}
	now := a.now()
	cutoff := now.Add(-info.TTL)
	return info, a.scanEntries(ctx, nil, revs, func(e EntrySummary) {
		e.Stale = e.Expires != nil && !now.Before(*e.Expires)
		e.Expired = info.Set && e.ValidatedAt.Before(cutoff)
		fn(e)
	})
}

// Stats counts the cache's entries, sizes, stale and expired entries and
// statuses, and reports the TTL. It scans the responses collection.
func (a *Admin) Stats(ctx context.Context) (CollectionStats, error) {
	st := CollectionStats{Database: a.db, ByStatus: map[int]int64{}}
	info, err := a.eachEntry(ctx, func(e EntrySummary) {
		st.Count++
		st.TotalSize += e.Size
		st.ByStatus[e.Status]++
		if e.Stale {
			st.Stale++
		}
		if e.Expired {
			st.Expired++
		}
		if st.Oldest.IsZero() || e.ValidatedAt.Before(st.Oldest) {
			st.Oldest = e.ValidatedAt
		}
		if e.ValidatedAt.After(st.Newest) {
			st.Newest = e.ValidatedAt
		}
	})
	if err != nil {
		return st, err
	}
	st.TTL = info
	if st.Revalidations, err = a.revalidations.Count(ctx, bson.D{}); err != nil {
		return st, fmt.Errorf("count revalidations: %w", err)
	}
	if st.Redirects, err = a.redirects.Count(ctx, bson.D{}); err != nil {
		return st, fmt.Errorf("count redirects: %w", err)
	}
	if st.Varying, err = a.variants.Count(ctx, bson.D{}); err != nil {
		return st, fmt.Errorf("count variants: %w", err)
	}
	return st, nil
}

// List returns the entries that opts selects, ordered by URL, then
// method, then key.
func (a *Admin) List(ctx context.Context, opts ListOptions) ([]EntrySummary, error) {
	var out []EntrySummary
	_, err := a.eachEntry(ctx, func(e EntrySummary) {
		if (opts.Expired && !e.Expired) || (opts.Stale && !e.Stale) ||
			(opts.Match != "" && !urlMatches(opts.Match, e.URL)) {
			return
		}
		out = append(out, e)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y EntrySummary) int {
		return cmp.Or(strings.Compare(x.URL, y.URL), strings.Compare(x.Method, y.Method), strings.Compare(x.Key, y.Key))
	})
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out, nil
}

// Purge deletes the entries that opts selects, with their revalidations
// and the redirects that lead to them, and returns how many responses it
// deleted. It returns ErrNoPurgeCriteria when opts selects nothing.
// Purge with only Expired is a sweep, whatever the TTL mechanism.
func (a *Admin) Purge(ctx context.Context, opts PurgeOptions) (int64, error) {
	if !opts.Expired && !opts.Stale && opts.OlderThan <= 0 && opts.Match == "" {
		return 0, ErrNoPurgeCriteria
	}
	if opts.Expired && !opts.Stale && opts.OlderThan <= 0 && opts.Match == "" {
		info, err := a.TTL(ctx)
		if err != nil || !info.Set {
			return 0, err
		}
		return a.deleteExpired(ctx, info)
	}
	older := a.now().Add(-opts.OlderThan)
	var ids []string
	_, err := a.eachEntry(ctx, func(e EntrySummary) {
		if (opts.Expired && !e.Expired) || (opts.Stale && !e.Stale) ||
			(opts.OlderThan > 0 && !e.ValidatedAt.Before(older)) ||
			(opts.Match != "" && !urlMatches(opts.Match, e.URL)) {
			return
		}
		ids = append(ids, e.Key)
	})
	if err != nil {
		return 0, err
	}
	return a.deleteEntries(ctx, ids, nil)
}

// Clear deletes every entry, revalidation, page summary, redirect and
// variants document; the TTL setting stays. It returns the number of
// responses deleted.
func (a *Admin) Clear(ctx context.Context) (int64, error) {
	// Page summaries first: a Page names its body's hash (head.go) and
	// must not outlive its response if the clear stops midway.
	if _, err := a.pages.DeleteMany(ctx, bson.D{}); err != nil {
		return 0, fmt.Errorf("clear %s: %w", a.pages.Name(), err)
	}
	var n int64
	for i, c := range a.dataCollections() {
		deleted, err := c.DeleteMany(ctx, bson.D{})
		if err != nil {
			return n, fmt.Errorf("clear %s: %w", c.Name(), err)
		}
		if i == 0 {
			n = deleted
		}
	}
	return n, nil
}

// Show returns the stored entry for rawURL and its revalidation (nil
// when the entry was never revalidated). It looks up the key of a plain
// GET under the default policy, and for a URL with Vary variants the
// variant validated most recently (by _id, through its Variants); when
// neither is stored (HEAD, matched-header variants, other ignored
// parameters) it scans for the URL
// and returns the GET entry validated most recently. It returns an error
// wrapping ErrNotFound when no entry is stored for the URL.
func (a *Admin) Show(ctx context.Context, rawURL string) (*Entry, *Revalidation, error) {
	key, err := KeyForURL(http.MethodGet, rawURL, Policy{})
	if err != nil {
		return nil, nil, fmt.Errorf("show %s: %w", rawURL, err)
	}
	var entry *Entry
	var d Entry
	err = getDoc(ctx, a.responses, key, &d)
	switch {
	case err == nil:
		entry = &d
	case errors.Is(err, store.ErrNotFound):
		if entry, err = a.findVariant(ctx, key); err != nil {
			return nil, nil, err
		}
		if entry == nil {
			if entry, err = a.findByURL(ctx, rawURL); err != nil {
				return nil, nil, err
			}
		}
	default:
		return nil, nil, fmt.Errorf("find cached response %s: %w", key, err)
	}
	var rev Revalidation
	err = getDoc(ctx, a.revalidations, entry.ID, &rev)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return entry, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("find revalidation %s: %w", entry.ID, err)
	}
	return entry, &rev, nil
}

// findVariant returns the variant of primary validated most recently
// (by the response's own validated_at), nil when primary has no Variants
// or none of its variants is stored.
func (a *Admin) findVariant(ctx context.Context, primary string) (*Entry, error) {
	var v Variants
	err := getDoc(ctx, a.variants, primary, &v)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("find variants %s: %w", primary, err)
	}
	var best *Entry
	for _, key := range v.Keys {
		var d Entry
		err := getDoc(ctx, a.responses, key, &d)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("find cached response %s: %w", key, err)
		}
		if best == nil || d.ValidatedAt.After(best.ValidatedAt) {
			best = &d
		}
	}
	return best, nil
}

// findByURL scans for the entries stored under rawURL (normalized as the
// transport stores it, with the default or no ignored parameters, or as
// given) and picks the GET validated last.
func (a *Admin) findByURL(ctx context.Context, rawURL string) (*Entry, error) {
	forms := []string{rawURL}
	for _, ignored := range [][]string{DefaultIgnoredParameters, nil} {
		if u, err := NormalizeURL(rawURL, ignored); err == nil && !slices.Contains(forms, u) {
			forms = append(forms, u)
		}
	}
	var docs []Entry
	if err := a.responses.All(ctx, bson.D{{Key: "url", Value: bson.D{{Key: "$in", Value: forms}}}}, store.FindOptions{}, &docs); err != nil {
		return nil, fmt.Errorf("find cached response for %s: %w", rawURL, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: %w", rawURL, ErrNotFound)
	}
	best := slices.MaxFunc(docs, func(x, y Entry) int {
		xGet, yGet := x.Method == http.MethodGet, y.Method == http.MethodGet
		if xGet != yGet {
			if xGet {
				return 1
			}
			return -1
		}
		return x.ValidatedAt.Compare(y.ValidatedAt)
	})
	return &best, nil
}

// urlMatches reports whether a stored URL matches a glob, with the
// semantics of urls_expire_after patterns (globMatch): '*' is any run of
// characters (including '/'), '?' one character, the scheme is optional,
// and a bare host matches every URL on it.
func urlMatches(pattern, rawURL string) bool {
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		rawURL = rest
	}
	return globMatch(pattern, rawURL)
}

// getDoc decodes the document with _id id of coll into v; an error
// wrapping store.ErrNotFound when there is none.
func getDoc(ctx context.Context, coll entries, id string, v any) error {
	raw, err := coll.Get(ctx, id)
	if err != nil {
		return err
	}
	return bson.Unmarshal(raw, v)
}

// Live reports which of keys have an entry in the cache, from the entries'
// page summaries (stored under the same _id, small: the responses, with
// their bodies, are not read). An error is the store's.
func (a *Admin) Live(ctx context.Context, keys []string) (map[string]bool, error) {
	ls := make([]store.Lookup, len(keys))
	for i, k := range keys {
		ls[i] = store.Lookup{Coll: a.pages, ID: k}
	}
	store.GetAll(ctx, ls)
	live := make(map[string]bool, len(keys))
	for _, l := range ls {
		switch {
		case l.Err == nil:
			live[l.ID] = true
		case !errors.Is(l.Err, store.ErrNotFound):
			return nil, fmt.Errorf("look up cache entry %s: %w", l.ID, l.Err)
		}
	}
	return live, nil
}
