package cache

import (
	"errors"
	"net/http"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// A head is what the store says of a stored response without its body:
// its Page, which names the body's hash and the response's validators. A
// caller that keeps its own result of a body under that hash (the
// crawler's parse records) can use a fresh hit without the body ever
// being read or decoded, which on the embedded store is most of a hit's
// cost (the body's overflow pages), and can revalidate an expired one
// with a conditional request made from the Page: a 304 is recorded as
// RoundTrip records it (a Revalidation and a new Page), and the body is
// never read either (RevalidateHead).
//
// A Page describes the body of its entry: it is written after the entry,
// and deleted before an entry is replaced (save) or deleted (sweeps,
// purges), so a process stopped between two writes leaves no Page, never
// one naming another body. A Revalidation is written before the Page
// of its 304, so a Page whose validated_at is not its revalidation's is
// left to RoundTrip. What is not covered: two processes storing
// different responses for one key in the same milliseconds can leave the
// Page of one with the entry of the other until the key is next stored or
// confirmed (docs/readme/crawler.md).

// Head is a stored response, as its Page describes it.
type Head struct {
	// Key is the response's cache key; URL its normalized URL.
	Key, URL string
	Status   int
	// BodySHA256 is the hex SHA-256 of the body as it would be served;
	// Size its length (0 in a Page of an earlier release).
	BodySHA256 string
	Size       int64
	// Due says the response is not fresh: RevalidateHead revalidates it.
	// A Head that is not Due is a fresh hit: its user counts it
	// (UsedHead).
	Due bool

	c      *call
	st     *storedEntry // built from the Page: validators, no body
	hadRev bool
	fr     freshness
}

// HeadRead is the read of a request's head: Lookup (its Page) and Rev
// (its Revalidation) are read by the caller (store.GetAll, with its own
// documents) and passed to JudgeHead.
type HeadRead struct {
	// Key is the cache key of the request.
	Key         string
	Lookup, Rev store.Lookup
	c           *call
}

// ReadHead prepares the read of req's head. ok is false when a Page
// cannot decide for req, which then takes the ordinary way: the cache is
// shared or follows RFC 9111 (headers decide freshness there), the
// request is not a plain GET (a body, credentials, conditionals, a forced
// refetch or offline mode), its URL is not cacheable, or the store is
// failing. A request to revalidate (WithRefresh) makes a head Due.
func (t *Transport) ReadHead(req *http.Request) (HeadRead, bool) {
	if t.shared || t.policy.CacheControl || !t.storeOK() || req.URL == nil ||
		methodOf(req) != http.MethodGet || !slices.Contains(t.allowMethod, http.MethodGet) ||
		(req.Body != nil && req.Body != http.NoBody) || hasClientConditional(req.Header) || bypasses(req.Header) {
		return HeadRead{}, false
	}
	c := &call{req: req, flags: flagsOf(req.Context())}
	if c.flags.forceRefresh || c.flags.onlyIfCached || t.policy.OnlyIfCached {
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
	return HeadRead{
		Key:    c.key,
		Lookup: store.Lookup{Coll: t.coll.pages, ID: c.key},
		Rev:    store.Lookup{Coll: t.coll.revalidations, ID: c.key},
		c:      c,
	}, true
}

// JudgeHead judges page and rev, the reads of r.Lookup and r.Rev (rev
// may be left unread, the zero Lookup: a due head is then not ok). ok is
// true when the Page decides: a fresh hit (Due false), with the same
// precedence of freshness as RoundTrip's, or an expired response that
// RevalidateHead may revalidate (Due true). It is false when the Page
// cannot tell: none, one without the body's hash (written by an earlier
// release, or for an entry bound to credentials), a read that failed; or
// when an expired response needs its entry: no validator in the Page, a
// revalidation newer than the Page, stale_while_revalidate (which serves
// the stored body at once), or an adaptive
// expiry that compares bodies with the job's own rules. The caller then
// makes the request as usual.
func (t *Transport) JudgeHead(r HeadRead, page, rev store.Lookup) (Head, bool) {
	if r.c == nil || page.Err != nil || page.ID != r.Key {
		return Head{}, false
	}
	p := new(Page)
	if decodePage(page.Raw, p) != nil || p.ID != r.Key || p.BodySHA256 == "" || p.ValidatedAt.IsZero() {
		return Head{}, false
	}
	st := &storedEntry{
		e:           &decodedEntry{status: p.Status, header: p.validators(), sha256: p.BodySHA256},
		page:        p,
		validatedAt: p.ValidatedAt,
		interval:    storedInterval(p.IntervalSeconds),
	}
	h := Head{Key: r.Key, URL: p.URL, Status: p.Status, BodySHA256: p.BodySHA256, Size: p.Size, c: r.c, st: st}
	fr := t.freshness(r.c, st, t.now())
	if fr.fresh {
		return h, true
	}
	h.Due, h.fr = true, fr
	if len(st.e.header) == 0 || fr.staleOK || fr.swr > 0 || rev.ID != r.Key ||
		(t.policy.Adaptive.Unchanged != nil && t.policy.crawlerExpiry(r.c.norm).Kind == ExpireAdaptive) {
		return Head{}, false
	}
	switch {
	case errors.Is(rev.Err, store.ErrNotFound):
	case rev.Err != nil:
		return Head{}, false
	default:
		st.rev = new(Revalidation)
		if bson.Unmarshal(rev.Raw, st.rev) != nil || st.rev.ID != r.Key || !st.rev.ValidatedAt.Equal(p.ValidatedAt) {
			return Head{}, false // a Page behind its revalidation: its entry decides
		}
		st.interval = storedInterval(st.rev.IntervalSeconds)
		h.hadRev = true
	}
	return h, true
}

// UsedHead counts a hit the caller served from a fresh head in Stats,
// as RoundTrip counts the hits it serves.
func (t *Transport) UsedHead(h Head) {
	t.hits.Add(1)
	t.savedBytes.Add(h.Size)
}

// HeadAnswer is what RevalidateHead got.
type HeadAnswer struct {
	// NotModified says the origin confirmed the Head's body with a 304
	// (RFC 9111 §4.3.4: its validators select it). The 304 is recorded
	// and counted as RoundTrip records and counts one, and the Head
	// describes the body as before.
	NotModified bool
	// Stale says the origin failed (an error, or a 5xx) where
	// stale_if_error serves the stored body instead (RFC 5861 §4): the
	// Head's body stands, counted as RoundTrip counts a stale answer,
	// and the failure replaced nothing.
	Stale bool
	// Response is the answer otherwise, as RoundTrip would have served it:
	// stored when the policy allows, body read. Err is set when the
	// network gave no response.
	Response *http.Response
	Err      error
}

// RevalidateHead sends the conditional request of h, a Due head, with the
// validators of its Page. The stored body is never read: on a 304 the
// caller uses what it keeps of the body; any other answer is stored (the
// entry replaced) and returned as RoundTrip returns it, on the request
// ReadHead was given. It is not coalesced with RoundTrip's requests for
// the same key.
func (t *Transport) RevalidateHead(h Head) HeadAnswer {
	if h.c == nil || !h.Due {
		return HeadAnswer{Err: errors.New("cache: RevalidateHead of a head that is not due")}
	}
	// An error response that stale-if-error answers with the stored
	// body must not replace it (as in fromNetwork).
	h.c.keepOnError = t.staleIfError(h.fr, errFlightAborted, nil)
	res, err := t.fetch(h.c, h.st, h.hadRev)
	switch {
	case t.staleIfError(h.fr, err, res):
		if res != nil && res.stream != nil {
			_ = res.stream.Body.Close()
		}
		t.stale.Add(1)
		t.savedBytes.Add(h.Size)
		return HeadAnswer{Stale: true}
	case err != nil:
		return HeadAnswer{Err: err}
	case res.served == ServedRevalidated:
		t.revalidated.Add(1)
		t.savedBytes.Add(h.Size)
		return HeadAnswer{NotModified: true}
	}
	return HeadAnswer{Response: t.answer(h.c, res)}
}
