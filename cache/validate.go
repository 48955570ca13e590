package cache

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Which stored entry a validation response updates (RFC 9111 §4.3.4,
// §4.3.5).

// roundTrip sends req upstream and gives the response a header map, a
// body and a valid Date (see fixDate).
func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.upstream.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	// Only the Transport says what hash a body has: an origin's (or an
	// upstream crawlcache's) claim is neither stored nor served.
	resp.Header.Del(HeaderBodySHA256)
	fixDate(resp.Header, t.now())
	return resp, nil
}

// discard drains a little of a body we do not use, so that the connection
// can be reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// isWeak reports whether an entity-tag is weak (W/"...").
func isWeak(tag string) bool { return strings.HasPrefix(tag, "W/") }

// opaque is an entity-tag without its weakness indicator.
func opaque(tag string) string { return strings.TrimPrefix(tag, "W/") }

// selects304 reports whether a 304 with header h selects the stored
// response with header stored for update (RFC 9111 §4.3.4), the first rule
// that applies deciding:
//   - a strong ETag in the 304: only a stored entry with the same
//     strong ETag (strong comparison, RFC 9110 §8.8.3.2);
//   - else a Last-Modified: a stored entry with the same date;
//   - else a weak ETag: a stored entry whose tag matches weakly;
//   - else (no validator at all): the 304 answers the conditional request
//     made from this response's own validators, and there is only one
//     stored entry for the request, so it is updated. §4.3.4 reserves
//     this case for a stored entry without validators; an origin that
//     drops ETag from its 304s is common enough that refetching every
//     body would make revalidation useless there.
func selects304(stored, h http.Header) bool {
	etag, storedTag := strings.TrimSpace(h.Get("ETag")), strings.TrimSpace(stored.Get("ETag"))
	if etag != "" && !isWeak(etag) {
		return !isWeak(storedTag) && storedTag == etag
	}
	if lm := h.Values("Last-Modified"); len(lm) > 0 {
		return sameDate(lm, stored.Values("Last-Modified"))
	}
	if etag != "" {
		return storedTag != "" && opaque(storedTag) == opaque(etag)
	}
	return true
}

// sameDate reports whether two Last-Modified fields hold the same valid
// HTTP-date.
func sameDate(a, b []string) bool {
	ta, ok1 := parseHTTPDateField(a, time.Time{})
	tb, ok2 := parseHTTPDateField(b, time.Time{})
	return ok1 && ok2 && ta.Equal(tb)
}

// headMatches reports whether a 200 to a HEAD request (header h) may
// freshen the stored GET response st (RFC 9111 §4.3.5): every validator
// the HEAD response has (ETag, Last-Modified) equals the stored one, at
// least one does, and its Content-Length, if any, is the stored body's.
// It returns ok false, with stale true, when the HEAD response shows
// that the stored entry is outdated.
func headMatches(st *storedEntry, h http.Header) (ok, stale bool) {
	etag, lm := strings.TrimSpace(h.Get("ETag")), h.Values("Last-Modified")
	if etag == "" && len(lm) == 0 {
		return false, false // nothing to compare: leave the GET alone
	}
	if etag != "" && strings.TrimSpace(st.e.header.Get("ETag")) != etag {
		return false, true
	}
	if len(lm) > 0 && !sameDate(lm, st.e.header.Values("Last-Modified")) {
		return false, true
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n != storedLength(st) {
			return false, true
		}
	}
	return true, false
}

// storedLength is the Content-Length the origin sent with the stored
// response, or the stored body's length.
func storedLength(st *storedEntry) int64 {
	if n, err := strconv.ParseInt(st.e.header.Get("Content-Length"), 10, 64); err == nil {
		return n
	}
	return int64(len(st.e.body))
}

// freshenFromHead applies a 200 to the HEAD request c (header h) to the
// stored GET response of the same URL (RFC 9111 §4.3.5): when the
// validators match, its headers are updated and it counts as validated
// now; when they show it is outdated, it is invalidated. A HEAD response
// without validators changes nothing.
func (t *Transport) freshenFromHead(c *call, h http.Header) {
	if !t.storeOK() {
		return
	}
	greq := c.req.Clone(c.req.Context())
	greq.Method = http.MethodGet
	gc := &call{req: greq, body: c.body, norm: c.norm, reqCC: c.reqCC, flags: c.flags, cred: c.cred}
	gc.key = t.keyOf(gc, nil)
	gc.primary = gc.key
	st, hadRev := t.lookup(gc)
	if st == nil {
		return
	}
	switch ok, stale := headMatches(st, h); {
	case ok:
		t.freshen(gc, st, h, hadRev)
	case stale:
		if err := t.coll.invalidateResponse(c.req.Context(), gc.key); err != nil {
			t.storeError(err)
		}
	}
}
