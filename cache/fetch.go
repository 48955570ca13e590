package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// fetchedEntry is an entry fetched from the origin (a 200, or a 304 merged
// into the storedEntry it revalidated), shared by coalesced callers.
//
// Bodies are read completely (up to MaxBodySize) before anything is stored
// or returned, rather than streamed to the caller while being recorded:
// coalesced waiters need the bytes too, a failed or truncated read is known
// before the store is touched (so it can never produce an entry), the store
// write is one insert, and the crawler reads whole bodies into memory
// anyway, so nothing is lost but time-to-first-byte. Only a body over the
// limit is streamed, uncached, to the leader.
type fetchedEntry struct {
	e      *decodedEntry
	served string // ServedMiss or ServedRevalidated
	// vary are the leader's values of the headers e varies on (RFC
	// mode): a waiter whose request differs fetches for itself.
	vary    bson.M
	bodyErr error // the body read failed after len(e.body) bytes
	// stream is a response whose body is over MaxBodySize, streaming from
	// upstream. Only the leader may take it; waiters fetch for themselves.
	stream *http.Response
	// validatedAt is when a 304 refreshed e (ServedRevalidated): the
	// response time its Age is computed from.
	validatedAt time.Time
}

// fromNetwork fetches for c, coalesced with identical concurrent requests,
// revalidating st when it is set.
func (t *Transport) fromNetwork(c *call, st *storedEntry, hadRev bool, fr freshness) (*http.Response, error) {
	if resp, err, joined := t.joinStream(c); joined {
		return resp, err
	}
	ctx := c.req.Context()
	// An error response that stale-if-error will answer with st must not
	// replace it in the store (RFC 5861 §4).
	c.keepOnError = st != nil && t.staleIfError(fr, errFlightAborted, nil)
	res, err, leader := t.flights.do(ctx, c.key, func() (*fetchedEntry, error) {
		return t.fetch(c, st, hadRev)
	})
	if !leader && ctx.Err() == nil && (errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errFlightAborted)) {
		// The leader's own request ended early; ours has not.
		res, err = t.fetch(c, st, hadRev)
		leader = true
	}
	if !leader && err == nil && res.e != nil && ((t.varies() && !varyMatches(c.req, res.vary)) || !t.shareable(res.e)) {
		// The leader's response varies on headers whose values differ
		// in our request (or on "*"), or is for its client alone
		// (shared role): it is not ours to share.
		res, err = t.fetch(c, st, hadRev)
		leader = true
	}
	if st != nil && t.staleIfError(fr, err, res) {
		if res != nil && res.stream != nil && leader {
			_ = res.stream.Body.Close()
		}
		return t.fromStore(c, st, ServedStale), nil
	}
	if err != nil {
		return nil, err
	}
	if res.stream != nil && !leader {
		if resp, err, joined := t.joinStream(c); joined {
			return resp, err
		}
		return t.passThrough(c.outgoing(nil, nil))
	}
	return t.answer(c, res), nil
}

// answer is the response to c of what its leader fetched, counted.
func (t *Transport) answer(c *call, res *fetchedEntry) *http.Response {
	if res.stream != nil {
		t.misses.Add(1)
		// Sent whole even to a conditional or range request: answering
		// it would mean closing the body, and with it the copy being
		// stored (or reading a body too large to keep just to drop it).
		return res.stream
	}
	switch res.served {
	case ServedRevalidated:
		t.revalidated.Add(1)
		t.savedBytes.Add(int64(len(res.e.body)))
	default:
		t.misses.Add(1)
	}
	resp := res.e.response(c.req, res.served)
	if res.served == ServedRevalidated {
		setAge(resp.Header, res.validatedAt, t.now())
	}
	if res.bodyErr != nil {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(res.e.body), errReader{res.bodyErr}))
		resp.ContentLength = -1
		return resp
	}
	return t.conditional(c, res.e, resp)
}

// staleIfError reports whether a failed revalidation (error or 5xx) may be
// answered with the stale entry.
func (t *Transport) staleIfError(fr freshness, err error, res *fetchedEntry) bool {
	sie := fr.sie
	if sie == 0 || fr.mustRevalidate {
		return false
	}
	failed := err != nil || (res != nil && res.e != nil && res.e.status >= 500)
	if !failed {
		return false
	}
	return sie < 0 || t.now().Before(fr.expiresAt.Add(sie))
}

// fetch does the network request for c: conditional when st has a
// validator. A 304 becomes st's response with merged headers; anything
// else is read, stored when the policy allows, and returned.
func (t *Transport) fetch(c *call, st *storedEntry, hadRev bool) (*fetchedEntry, error) {
	var extra http.Header
	if st != nil {
		if etag := st.e.header.Get("ETag"); etag != "" {
			extra = http.Header{"If-None-Match": {etag}}
		}
		if lm := st.e.header.Get("Last-Modified"); lm != "" {
			if extra == nil {
				extra = http.Header{}
			}
			extra["If-Modified-Since"] = []string{lm}
		}
	}
	resp, err := t.roundTrip(c.outgoing(nil, extra))
	if err != nil {
		return nil, err
	}
	if extra != nil && resp.StatusCode == http.StatusNotModified {
		if selects304(st.e.header, resp.Header) {
			return t.merge304(c, st, resp, hadRev), nil
		}
		// RFC 9111 §4.3.4: a 304 whose validators are not the stored
		// response's updates nothing. Ask again without conditions.
		discard(resp)
		if resp, err = t.roundTrip(c.outgoing(nil, nil)); err != nil {
			return nil, err
		}
	}
	if res := t.streamFetch(c, st, hadRev, resp); res != nil {
		return res, nil
	}
	body, readErr := readLimited(resp.Body, resp.ContentLength, t.maxBody)
	t.networkBytes.Add(int64(len(body)))
	if readErr == nil && int64(len(body)) > t.maxBody {
		t.tooLarge.Add(1)
		t.notStored.Add(1)
		rest := &countingReader{r: resp.Body, n: &t.networkBytes}
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), rest), resp.Body}
		// ContentLength stays: the prefix and the rest are the whole body.
		resp.Header.Set(HeaderServed, ServedMiss)
		return &fetchedEntry{stream: resp, served: ServedMiss}, nil
	}
	// The upstream body is closed once the response is stored, not when
	// it has been read: a request slot below (the crawler's politeness)
	// is held until then, so that a process killed at any instant has at
	// most that many responses received but not yet durable.
	defer resp.Body.Close()
	resp.Header.Del(HeaderServed) // an upstream crawlcache's verdict is not ours
	e := &decodedEntry{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: body, uncompressed: resp.Uncompressed, reason: ReasonPhrase(resp.StatusCode, resp.Status)}
	if readErr != nil {
		t.notStored.Add(1) // never store a truncated body
		return &fetchedEntry{e: e, served: ServedMiss, bodyErr: readErr, vary: varyValues(c.req, e.header)}, nil
	}
	t.store(c, st, e, hadRev)
	if t.policy.CacheControl && methodOf(c.req) == http.MethodHead && e.status == http.StatusOK {
		t.freshenFromHead(c, e.header)
	}
	res := &fetchedEntry{e: e, served: ServedMiss}
	if t.varies() {
		res.vary = varyValues(c.req, e.header)
	}
	return res, nil
}

// merge304 records a 304 in the revalidations collection (the Entry
// is not rewritten) and returns the stored entry with the
// 304's headers merged in.
func (t *Transport) merge304(c *call, st *storedEntry, resp *http.Response, hadRev bool) *fetchedEntry {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	defer resp.Body.Close() // once recorded: see fetch
	resp.Header.Del(HeaderServed)
	merged, now, sha := t.freshen(c, st, resp.Header, hadRev)
	res := &fetchedEntry{
		e:           &decodedEntry{status: st.e.status, proto: st.e.proto, header: merged, body: st.e.body, uncompressed: st.e.uncompressed, reason: st.e.reason, sha256: sha},
		served:      ServedRevalidated,
		validatedAt: now,
	}
	if st.entry != nil {
		res.vary = st.entry.Vary
	}
	return res
}

// freshen records that a 304 (or a HEAD response, RFC 9111 §4.3.5) with
// header h confirmed st: a revalidation under c.key, not a rewrite of the
// Entry. It returns st's headers with h's merged in (§3.2), the time of
// the validation and the body's hash (revalidationHash).
func (t *Transport) freshen(c *call, st *storedEntry, h http.Header, hadRev bool) (http.Header, time.Time, string) {
	merged := st.e.header.Clone()
	merged.Del("Age") // the age restarts at the 304 (RFC 9111 §4.2.3)
	mergeHeader(merged, h)
	// The revalidation keeps every 304 header since the body was stored.
	delta := http.Header{}
	if st.rev != nil {
		if old, err := decodeHeader(st.rev.Headers); err == nil {
			delta = old
		}
	}
	mergeHeader(delta, t.storableHeader(h))
	now := t.now()
	iv := t.learned(c, st, st.e.status, nil, true, now)
	expires, _ := t.expiry(c, merged, st.e.status, now, iv)
	sha, keep := revalidationHash(st)
	rev := &Revalidation{ID: c.key, ValidatedAt: now, Expires: expires, IntervalSeconds: seconds(iv), Headers: encodeHeader(delta)}
	if keep {
		rev.BodySHA256 = sha
	}
	if t.storeOK() {
		if err := t.coll.save304(c.req.Context(), rev, !hadRev, pageOf304(c, st, now, iv, sha, merged)); err != nil {
			t.storeError(err)
		}
	}
	return merged, now, sha
}

// revalidationHash is the hash of st's body served after a 304, and
// whether the revalidation keeps it (Revalidation.BodySHA256): an entry
// stored without body_sha256 (by an earlier release) gets it at its first
// 304, computed here once, instead of being rewritten. st is not modified:
// a background revalidation shares it with the response served meanwhile.
func revalidationHash(st *storedEntry) (sha string, keep bool) {
	if st.page != nil {
		// The Page names the entry's hash, or the one its revalidation
		// keeps for it.
		return st.page.BodySHA256, st.rev != nil && st.rev.BodySHA256 != ""
	}
	if st.entry == nil || st.entry.BodySHA256 != "" {
		return st.e.sha256, false
	}
	if st.e.sha256 != "" {
		return st.e.sha256, true // from an earlier revalidation
	}
	return bodySHA256(st.e.body), true
}

// expiry is the expires field for a response validated at now (with the
// learned interval iv under expire_after: adaptive, else 0), and the Vary
// values to record (RFC mode only).
func (t *Transport) expiry(c *call, h http.Header, status int, now time.Time, iv time.Duration) (*time.Time, bson.M) {
	if !t.policy.CacheControl {
		var vary bson.M
		if t.varies() {
			vary = varyValues(c.req, h)
		}
		return t.expiresAt(c, iv, now), vary
	}
	x := t.rfcFreshness(h, status, now).expiresAt(now)
	return &x, varyValues(c.req, h)
}

// store writes e under c.key when the policy allows, or records a
// redirect hop.
func (t *Transport) store(c *call, st *storedEntry, e *decodedEntry, hadRev bool) {
	switch {
	case !t.policy.CacheControl && !slices.Contains(t.allowCodes, e.status):
		if !t.policy.CacheControl && e.status >= 300 && e.status < 400 && e.header.Get("Location") != "" && t.forRole(c, e) != nil {
			t.recordRedirect(c, st, e)
			return
		}
		t.notStored.Add(1)
		return
	case t.policy.CacheControl && !t.rfcStorable(c.reqCC, t.responseCC(e.header), e.status), !t.storeOK(),
		c.keepOnError && e.status >= 500:
		t.notStored.Add(1)
		return
	}
	fetched := e
	if e = t.forRole(c, e); e == nil {
		t.notStored.Add(1)
		return
	}
	now := t.now()
	iv := t.learned(c, st, e.status, e.body, false, now)
	expires, vary := t.expiry(c, e.header, e.status, now, iv)
	key, names := t.storeKey(c, e)
	isNew := c.absent
	if key != c.key { // another variant than the one looked up
		isNew, hadRev = false, true
	}
	entry := newEntry(key, c.norm, c.req, e, t.policy, now, expires, vary, t.compress)
	entry.Credential = c.cred.info
	entry.IntervalSeconds = seconds(iv)
	if err := t.coll.save(c.req.Context(), entry, isNew, hadRev); err != nil {
		t.storeError(err)
		return
	}
	fetched.sha256 = entry.BodySHA256 // served with the miss: HeaderBodySHA256
	if t.varies() {
		t.updateVariants(c, key, names, now)
	}
}

// recordRedirect stores a redirect whose status is not stored as a
// response (302, 303, 307 by default): hop key → the key of the request
// the client will make next, so a re-crawl replays the chain without
// network. A RoundTripper does not follow redirects; the client's next
// request, for the target, is then a hit of its own.
func (t *Transport) recordRedirect(c *call, st *storedEntry, e *decodedEntry) {
	loc := e.header.Get("Location")
	target, err := c.req.URL.Parse(loc)
	if err != nil || !t.storeOK() {
		t.notStored.Add(1)
		return
	}
	treq := &http.Request{Method: methodOf(c.req), URL: target, Header: c.req.Header}
	now := t.now()
	r := &Redirect{
		ID:        c.key,
		URL:       c.norm,
		Target:    c.cred.bind(Key(treq, nil, t.policy, nil)),
		CreatedAt: now,
		Status:    e.status,
		Location:  loc,
		Expires:   t.expiresAt(c, t.learned(c, nil, 0, nil, false, now), now),

		KeyVersion: RedirectKeyVersion,
		Credential: c.cred.info,
	}
	if err := t.coll.saveRedirect(c.req.Context(), r); err != nil {
		t.storeError(err)
		return
	}
	if st != nil { // the URL used to answer with a page; the hop replaces it
		if err := t.coll.invalidateResponse(c.req.Context(), c.key); err != nil {
			t.storeError(err)
		}
	}
}

// fromRedirect replays a recorded redirect hop.
func (t *Transport) fromRedirect(c *call, offline bool) (*http.Response, bool) {
	r, err := t.coll.findRedirect(c.req.Context(), c.key)
	if err != nil {
		t.storeError(err)
		return nil, false
	}
	if r == nil || r.KeyVersion < RedirectKeyVersion {
		return nil, false // an older hop may have been fetched with credentials
	}
	served := ServedHit
	if c.flags.refresh || (r.Expires != nil && t.hopDue(c, *r.Expires)) {
		if !offline {
			return nil, false
		}
		served = ServedStale
	}
	st := &storedEntry{e: &decodedEntry{
		status: r.Status,
		proto:  "HTTP/1.1",
		header: http.Header{"Location": {r.Location}, "Content-Length": {"0"}},
	}, validatedAt: r.CreatedAt}
	return t.fromStore(c, st, served), true
}

// hopDue reports whether a redirect hop that expires at exp is due, with
// the same tolerance at the run's start as pages (dueAtRun): under a
// duration, of the duration; under expire_after: adaptive a hop keeps the
// initial interval.
func (t *Transport) hopDue(c *call, exp time.Time) bool {
	now := t.now()
	switch e := t.policy.crawlerExpiry(c.norm); e.Kind {
	case ExpireAdaptive:
		return dueAtRun(exp, t.policy.Adaptive.interval(0), now, t.runStart)
	case ExpireAfter:
		return dueAtRun(exp, e.After, now, t.runStart)
	}
	return !now.Before(exp)
}

// startBackground refreshes st in the background for
// stale_while_revalidate. It returns false when the refresh must happen in
// the foreground instead (all slots busy, or the Transport is closed).
func (t *Transport) startBackground(c *call, st *storedEntry, hadRev bool) bool {
	if t.flights.busy(c.key) {
		return true // a refresh for this key is already running
	}
	select {
	case t.bgSlots <- struct{}{}:
	default:
		return false
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.bgSlots
		return false
	}
	t.bg.Add(1)
	t.mu.Unlock()
	// The caller may reuse its request once it has the response: work on
	// a copy, detached from the caller's cancellation.
	ctx := context.WithoutCancel(c.req.Context())
	bc := *c
	bc.req = c.req.Clone(ctx)
	go func() {
		defer t.bg.Done()
		defer func() { <-t.bgSlots }()
		res, err, leader := t.flights.do(ctx, bc.key, func() (*fetchedEntry, error) {
			return t.fetch(&bc, st, hadRev)
		})
		if err != nil {
			t.log.Debug("background revalidation failed", "url", bc.norm, "err", err)
			return
		}
		if leader && res.stream != nil {
			discardStream(res.stream)
		}
	}()
	return true
}

// passThrough sends req upstream without the cache.
func (t *Transport) passThrough(req *http.Request) (*http.Response, error) {
	if h, stripped := withoutHopCredential(req.Header); stripped {
		req = req.WithContext(req.Context())
		req.Header = h
	}
	resp, err := t.upstream.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.misses.Add(1)
	t.notStored.Add(1)
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	resp.Header.Del(HeaderBodySHA256) // an origin's claim, not the hash of a body we stored
	resp.Header.Set(HeaderServed, ServedMiss)
	if resp.Body != nil {
		resp.Body = readCloser{&countingReader{r: resp.Body, n: &t.networkBytes}, resp.Body}
	}
	return resp, nil
}

// passThroughInvalidate sends an unsafe request upstream and, when it
// succeeds, drops the stored GET and HEAD responses for its URL and for
// same-host Location and Content-Location (RFC 9111 §4.4).
func (t *Transport) passThroughInvalidate(req *http.Request) (*http.Response, error) {
	resp, err := t.passThrough(req)
	if err != nil || resp.StatusCode >= 400 {
		return resp, err
	}
	targets := []string{req.URL.String()}
	for _, h := range []string{"Location", "Content-Location"} {
		if v := resp.Header.Get(h); v != "" {
			if u, err := req.URL.Parse(v); err == nil && u.Host == req.URL.Host {
				targets = append(targets, u.String())
			}
		}
	}
	if !t.storeOK() {
		return resp, nil
	}
	for _, raw := range targets {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r, err := http.NewRequestWithContext(req.Context(), m, raw, nil)
			if err != nil {
				continue
			}
			r.Header = req.Header
			key := Key(r, nil, t.policy, nil)
			keys := []string{key}
			if b := t.cred.bindingOf(req); b.mac != "" {
				keys = append(keys, b.bind(key)) // the requester's own entries too
			}
			for _, k := range keys {
				if err := t.coll.invalidate(req.Context(), k); err != nil {
					t.storeError(err)
				}
			}
		}
	}
	return resp, nil
}

// readLimited reads up to limit+1 bytes, so that a result longer than
// limit means "too large".
func readLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if contentLength > 0 {
		buf.Grow(int(min(contentLength, limit) + 1))
	}
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	return buf.Bytes(), err
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
