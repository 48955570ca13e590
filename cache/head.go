package cache

import (
	"net/http"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// A head is what the store says of a stored response without its body:
// its Page, which names the body's hash. A caller that keeps its own
// result of a body under that hash (the crawler's parse records) can use
// a fresh hit without the body ever being read or decoded, which on the
// embedded store is most of a hit's cost (the body's overflow pages).
//
// A Page describes the body of its entry: it is written after the entry,
// and deleted before an entry is replaced (save) or deleted (sweeps,
// purges), so a process stopped between two writes leaves no Page, never
// one naming another body. What is not covered: two processes storing
// different responses for one key in the same milliseconds can leave the
// Page of one with the entry of the other until the key is next stored or
// confirmed (docs/readme/crawler.md).

// Head is a fresh stored response, as its Page describes it.
type Head struct {
	// Key is the response's cache key; URL its normalized URL.
	Key, URL string
	Status   int
	// BodySHA256 is the hex SHA-256 of the body as it would be served.
	BodySHA256 string
}

// HeadRead is the read of a request's head: Lookup is read by the
// caller (store.GetAll, with its own documents) and passed to FreshHead.
type HeadRead struct {
	// Key is the cache key of the request.
	Key    string
	Lookup store.Lookup
	c      *call
}

// ReadHead prepares the read of req's head. ok is false when a Page
// cannot decide for req, which then takes the ordinary way: the cache is
// shared or follows RFC 9111 (headers decide freshness there), the
// request is not a plain GET (a body, credentials, conditionals, a
// refresh or offline mode), its URL is not cacheable, or the store is
// failing.
func (t *Transport) ReadHead(req *http.Request) (HeadRead, bool) {
	if t.shared || t.policy.CacheControl || !t.storeOK() || req.URL == nil ||
		methodOf(req) != http.MethodGet || !slices.Contains(t.allowMethod, http.MethodGet) ||
		(req.Body != nil && req.Body != http.NoBody) || hasClientConditional(req.Header) || bypasses(req.Header) {
		return HeadRead{}, false
	}
	c := &call{req: req, flags: flagsOf(req.Context())}
	if c.flags.refresh || c.flags.forceRefresh || c.flags.onlyIfCached || t.policy.OnlyIfCached {
		return HeadRead{}, false
	}
	norm, err := NormalizeURL(req.URL.String(), t.policy.ignoredParameters())
	if err != nil || t.policy.crawlerExpiry(norm).Kind == ExpireDoNotCache {
		return HeadRead{}, false
	}
	c.norm = norm
	if c.cred = t.cred.bindingOf(req); c.cred.info != nil {
		return HeadRead{}, false // bound entries are checked against their entry
	}
	c.key = t.keyOf(c, nil)
	c.primary = c.key
	return HeadRead{Key: c.key, Lookup: store.Lookup{Coll: t.coll.pages, ID: c.key}, c: c}, true
}

// FreshHead judges l, the read of r.Lookup: the head of the response when
// the transport would serve it as a fresh hit (the same precedence of
// freshness as RoundTrip's); a caller that uses it counts it (UsedHead).
// ok is false when it would
// not, or when the Page cannot tell: none, one without the body's hash
// (written by an earlier release, or for an entry bound to credentials),
// or a read that failed. The caller then makes the request as usual.
func (t *Transport) FreshHead(r HeadRead, l store.Lookup) (Head, bool) {
	if r.c == nil || l.Err != nil || l.ID != r.Key {
		return Head{}, false
	}
	var p Page
	if bson.Unmarshal(l.Raw, &p) != nil || p.ID != r.Key || p.BodySHA256 == "" || p.ValidatedAt.IsZero() {
		return Head{}, false
	}
	st := &storedEntry{validatedAt: p.ValidatedAt, interval: storedInterval(p.IntervalSeconds)}
	if !t.freshness(r.c, st, t.now()).fresh {
		return Head{}, false
	}
	return Head{Key: r.Key, URL: p.URL, Status: p.Status, BodySHA256: p.BodySHA256}, true
}

// UsedHead counts a hit the caller served from a head (FreshHead) in
// Stats, as RoundTrip counts the hits it serves.
func (t *Transport) UsedHead() { t.hits.Add(1) }
