package cache

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A client's own conditional and range requests (RFC 9110 §13, §14),
// answered from a stored full response instead of bypassing the cache.
// The cache evaluates If-None-Match, If-Modified-Since, Range and If-Range
// against the response it would otherwise serve (fresh, allowed stale, or
// just revalidated with the cache's own validators). If-Match and
// If-Unmodified-Since are preconditions meant for the origin (RFC 9111
// §4.3.2): such requests still go there untouched.

// clientConditionals are the request fields the cache answers itself.
var clientConditionals = []string{"If-None-Match", "If-Modified-Since", "Range", "If-Range"}

// hasClientConditional reports whether h carries one of
// clientConditionals.
func hasClientConditional(h http.Header) bool {
	for _, name := range clientConditionals {
		if len(h.Values(name)) > 0 {
			return true
		}
	}
	return false
}

// withoutClientConditionals is a copy of h without clientConditionals:
// the request the cache sends upstream to fill or revalidate its entry
// asks for the whole current representation.
func withoutClientConditionals(h http.Header) http.Header {
	h = h.Clone()
	for _, name := range clientConditionals {
		delete(h, name)
	}
	return h
}

// notModifiedFields are the fields a 304 carries (RFC 9110 §15.4.5: those
// a 200 would have had among Content-Location, Date, ETag, Vary,
// Cache-Control and Expires; Last-Modified to guide caches without ETag;
// Age because it comes from storage).
var notModifiedFields = []string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Last-Modified", "Age", HeaderServed}

// conditional answers c's conditionals from resp, the full response the
// cache would serve (e its stored form, nil when the body streams): a
// 304 when If-None-Match or If-Modified-Since says the client has it, a
// 206 or 416 for a single byte range. Anything else, or a status other
// than 200, is served whole. It never fails: a field it cannot use is
// ignored, as RFC 9110 requires of a server.
func (t *Transport) conditional(c *call, e *decodedEntry, resp *http.Response) *http.Response {
	if !c.cond || resp.StatusCode != http.StatusOK {
		return resp
	}
	method := methodOf(c.req)
	if notModified(c.req.Header, resp.Header) {
		out := *resp
		out.StatusCode, out.Status = http.StatusNotModified, "304 Not Modified"
		out.Header = http.Header{}
		for _, name := range notModifiedFields {
			if v := resp.Header.Values(name); len(v) > 0 {
				out.Header[http.CanonicalHeaderKey(name)] = v
			}
		}
		_ = resp.Body.Close()
		out.Body, out.ContentLength = http.NoBody, 0
		return &out
	}
	if method != http.MethodGet || e == nil || len(c.req.Header.Values("Range")) != 1 || !ifRangeHolds(c.req.Header, resp.Header) {
		return resp
	}
	first, last, ok, satisfiable := byteRange(c.req.Header.Get("Range"), int64(len(e.body)))
	if !ok {
		return resp // not one well-formed byte range: the whole response
	}
	size := strconv.Itoa(len(e.body))
	out := *resp
	out.Header = resp.Header.Clone()
	out.Header.Del(HeaderBodySHA256) // the hash is of the whole body, not of a part
	_ = resp.Body.Close()
	if !satisfiable {
		out.StatusCode, out.Status = http.StatusRequestedRangeNotSatisfiable, "416 Range Not Satisfiable"
		out.Header.Set("Content-Range", "bytes */"+size)
		out.Header.Set("Content-Length", "0")
		out.Header.Del("Content-Type")
		out.Body, out.ContentLength = http.NoBody, 0
		return &out
	}
	part := e.body[first : last+1]
	out.StatusCode, out.Status = http.StatusPartialContent, "206 Partial Content"
	out.Header.Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+size)
	out.Header.Set("Content-Length", strconv.Itoa(len(part)))
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(part)), int64(len(part))
	return &out
}

// notModified evaluates steps 3 and 4 of RFC 9110 §13.2.2 for a GET or
// HEAD whose selected representation has header h: If-None-Match when
// present (weak comparison, §13.1.2), else If-Modified-Since (§13.1.3;
// ignored unless it is one valid HTTP-date and h has a valid
// Last-Modified).
func notModified(req, h http.Header) bool {
	if inm := req.Values("If-None-Match"); len(inm) > 0 {
		etag := strings.TrimSpace(h.Get("ETag"))
		for _, v := range inm {
			for tag := range strings.SplitSeq(v, ",") {
				tag = strings.Trim(tag, " \t")
				if tag == "*" || (etag != "" && opaque(tag) == opaque(etag)) {
					return true
				}
			}
		}
		return false
	}
	ims, ok := parseHTTPDateField(req.Values("If-Modified-Since"), time.Time{})
	if !ok {
		return false
	}
	lm, ok := parseHTTPDateField(h.Values("Last-Modified"), time.Time{})
	return ok && !lm.After(ims)
}

// ifRangeHolds evaluates If-Range (RFC 9110 §13.1.5): an entity-tag must
// match h's ETag by strong comparison; a date must equal h's
// Last-Modified exactly, and that Last-Modified must be strong (at least a
// second before Date, §8.8.2.2). No If-Range holds.
func ifRangeHolds(req, h http.Header) bool {
	v := req.Values("If-Range")
	if len(v) == 0 {
		return true
	}
	if len(v) > 1 {
		return false
	}
	cond := strings.Trim(v[0], " \t")
	if strings.HasPrefix(cond, `"`) || strings.HasPrefix(cond, "W/") {
		etag := strings.TrimSpace(h.Get("ETag"))
		return !isWeak(cond) && !isWeak(etag) && cond == etag
	}
	d, ok := parseHTTPDate(cond, time.Time{})
	lm, ok2 := parseHTTPDateField(h.Values("Last-Modified"), time.Time{})
	date, ok3 := parseHTTPDateField(h.Values("Date"), time.Time{})
	return ok && ok2 && ok3 && d.Equal(lm) && date.Sub(lm) >= time.Second
}

// byteRange parses a Range field holding a single byte range (RFC 9110
// §14.1.2: "bytes=first-last", "bytes=first-" or "bytes=-suffix") against
// a representation of size bytes. ok is false when the field is not one
// well-formed byte range (another unit, several ranges, last before
// first): the server then ignores it and sends the whole representation.
// satisfiable is false when the range lies past the end (a 416).
func byteRange(v string, size int64) (first, last int64, ok, satisfiable bool) {
	unit, spec, found := strings.Cut(strings.Trim(v, " \t"), "=")
	if !found || !strings.EqualFold(strings.Trim(unit, " \t"), "bytes") || size == 0 {
		return 0, 0, false, false
	}
	spec = strings.Trim(spec, " \t")
	if strings.Contains(spec, ",") {
		return 0, 0, false, false // several ranges: served whole
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" { // suffix: the last b bytes
		n, ok := rangeInt(b)
		if !ok {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, true, false
		}
		return max(0, size-n), size - 1, true, true
	}
	first, ok = rangeInt(a)
	if !ok {
		return 0, 0, false, false
	}
	last = size - 1
	if b != "" {
		l, ok := rangeInt(b)
		if !ok || l < first {
			return 0, 0, false, false
		}
		last = min(l, size-1)
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, last, true, true
}

// rangeInt parses the digits of a range position; values past int64 are
// capped (they lie past any stored body).
func rangeInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 1<<63 - 1, true
	}
	return n, true
}
