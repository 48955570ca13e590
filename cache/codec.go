package cache

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// redacted replaces secrets in stored requests.
const redacted = "REDACTED"

// ErrCorrupt is wrapped by DecodeResponse when a stored entry is not a
// usable response (missing fields, wrong types, a body whose length is not
// its size). Transport treats such an entry as a miss and replaces it.
var ErrCorrupt = errors.New("corrupt cached response")

// secretHeaders never reach a stored request with their values.
var secretHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// decodedEntry is an entry ready to be served (decoded from an Entry, or
// fetched from the origin before it is stored): one body, shared
// read-only by every *http.Response built from it.
type decodedEntry struct {
	status       int
	proto        string
	header       http.Header
	body         []byte
	uncompressed bool   // see Entry.Uncompressed
	reason       string // see Entry.Reason
	sha256       string // see Entry.BodySHA256; "" when not known
}

// response builds an independent *http.Response for req: its own header map
// and its own reader over the shared body bytes. A response served by the
// Transport (served set) carries HeaderServed and, when the body's hash is
// known and req is not a HEAD, HeaderBodySHA256; DecodeResponse's (served
// "") carries neither: it is the response as the origin sent it.
func (e *decodedEntry) response(req *http.Request, served string) *http.Response {
	h := e.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if served != "" {
		h.Set(HeaderServed, served)
	}
	// Headers stored by earlier releases may hold an origin's value.
	delete(h, HeaderBodySHA256)
	if e.sha256 != "" && served != "" && (req == nil || req.Method != http.MethodHead) {
		h[HeaderBodySHA256] = []string{e.sha256}
	}
	proto := e.proto
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		proto, major, minor = "HTTP/1.1", 1, 1
	}
	status := strconv.Itoa(e.status)
	if text := cmp.Or(e.reason, http.StatusText(e.status)); text != "" {
		status += " " + text
	}
	resp := &http.Response{
		Status:        status,
		StatusCode:    e.status,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: int64(len(e.body)),
		Request:       req,
		Uncompressed:  e.uncompressed,
	}
	if len(e.body) > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(e.body))
	}
	if req != nil && req.Method == http.MethodHead {
		resp.ContentLength = -1
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	return resp
}

// DecodeResponse turns a stored entry, and its revalidation if any,
// into the response the origin sent: status, protocol, headers (with the
// headers of a revalidation at least as new merged over them) and the exact body
// bytes. req becomes the response's Request and may be nil. It returns an
// error wrapping ErrCorrupt when the entry is not a usable response.
func DecodeResponse(entry *Entry, rev *Revalidation, req *http.Request) (*http.Response, error) {
	e, _, _, err := decodeEntry(entry, rev)
	if err != nil {
		return nil, err
	}
	return e.response(req, ""), nil
}

// decodeEntry decodes entry once, merging rev when it is newer, and returns
// the effective validated_at and expires.
func decodeEntry(entry *Entry, rev *Revalidation) (e *decodedEntry, validatedAt time.Time, expires *time.Time, err error) {
	if entry == nil {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response: %w: no document", ErrCorrupt)
	}
	if entry.Status < 100 || entry.Status > 999 {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response %s: %w: status %d", entry.ID, ErrCorrupt, entry.Status)
	}
	if entry.ValidatedAt.IsZero() || entry.CreatedAt.IsZero() {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response %s: %w: no created_at/validated_at", entry.ID, ErrCorrupt)
	}
	header, err := decodeHeader(entry.Headers)
	if err != nil {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response %s: headers: %w", entry.ID, err)
	}
	body, err := decodeBody(entry.Body)
	if err == nil && entry.BodyEncoding != "" {
		body, err = decompressBody(body, entry.BodyEncoding, entry.Size)
	}
	if err != nil {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response %s: body: %w", entry.ID, err)
	}
	if int64(len(body)) != entry.Size {
		return nil, time.Time{}, nil, fmt.Errorf("decode cached response %s: %w: body is %d bytes, size says %d", entry.ID, ErrCorrupt, len(body), entry.Size)
	}
	validatedAt, expires = entry.ValidatedAt, entry.Expires
	sha := StoredSHA256(entry, rev)
	if revApplies(entry, rev) {
		revHeader, err := decodeHeader(rev.Headers)
		if err != nil {
			return nil, time.Time{}, nil, fmt.Errorf("decode revalidation %s: headers: %w", entry.ID, err)
		}
		header.Del("Age") // the 200's Age is no age of the 304's (RFC 9111 §4.2.3)
		mergeHeader(header, revHeader)
		validatedAt, expires = rev.ValidatedAt, rev.Expires
	}
	return &decodedEntry{status: entry.Status, proto: entry.Proto, header: header, body: body, uncompressed: entry.Uncompressed,
		reason: entry.Reason, sha256: sha}, validatedAt, expires, nil
}

// StoredSHA256 returns the hash stored for entry's body: its
// Entry.BodySHA256 or, for an entry of an earlier release, the one its
// revalidation keeps (Revalidation.BodySHA256); "" when neither holds one.
// It is the hash served in HeaderBodySHA256.
func StoredSHA256(entry *Entry, rev *Revalidation) string {
	if entry.BodySHA256 != "" {
		return validSHA256(entry.BodySHA256)
	}
	if revApplies(entry, rev) {
		return validSHA256(rev.BodySHA256)
	}
	return ""
}

// bodySHA256 is the hex SHA-256 of body: Entry.BodySHA256.
func bodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// validSHA256 returns s when it is a hex SHA-256 as bodySHA256 writes it
// (64 lowercase hex digits), "" otherwise: a value edited by hand is not
// served as a hash.
func validSHA256(s string) string {
	if len(s) != 2*sha256.Size {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return s
}

// revApplies reports whether rev is newer than entry's body. Equal times
// count as newer: dates are stored with millisecond precision, and a 200
// deletes the revalidation when it replaces the body.
func revApplies(entry *Entry, rev *Revalidation) bool {
	return rev != nil && !rev.ValidatedAt.Before(entry.ValidatedAt)
}

// notMerged are 304 headers that never replace stored ones: they describe
// the 304 message itself, not the stored representation.
var notMerged = map[string]bool{
	"Content-Length":    true,
	"Content-Encoding":  true,
	"Content-Type":      true,
	"Content-Range":     true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Keep-Alive":        true,
	HeaderServed:        true,
	HeaderBodySHA256:    true,
}

// mergeHeader replaces dst's fields with those of a 304's header src
// (RFC 9111 §3.2), skipping notMerged.
func mergeHeader(dst, src http.Header) {
	for name, vs := range src {
		if notMerged[name] {
			continue
		}
		dst[name] = append([]string(nil), vs...)
	}
}

// encodeHeader converts h to a readable sub-document: one value as a
// string, several as an array. Names are escaped so that "." and a leading
// "$" (legal in header names) cannot clash with MongoDB field paths.
func encodeHeader(h http.Header, skip ...string) bson.M {
	if len(h) == 0 {
		return nil
	}
	m := make(bson.M, len(h))
	for name, vs := range h {
		if len(vs) == 0 || containsFold(skip, name) {
			continue
		}
		key := escapeName(name)
		if len(vs) == 1 {
			m[key] = headerValue(vs[0])
			continue
		}
		a := make(bson.A, len(vs))
		for i, v := range vs {
			a[i] = headerValue(v)
		}
		m[key] = a
	}
	return m
}

// headerValue stores a header value as a string, or as binary when it is
// not valid UTF-8 (Latin-1 bytes do occur): BSON strings must be UTF-8, and
// the server would replace the bytes.
func headerValue(v string) any {
	if utf8.ValidString(v) {
		return v
	}
	return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: []byte(v)}
}

func headerString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bson.Binary:
		return string(v.Data), true
	}
	return "", false
}

// decodeHeader is the inverse of encodeHeader; a value that is neither a
// string (or binary) nor an array of them is ErrCorrupt.
func decodeHeader(m bson.M) (http.Header, error) {
	h := make(http.Header, len(m))
	for key, v := range m {
		name := unescapeName(key)
		if s, ok := headerString(v); ok {
			h[name] = []string{s}
			continue
		}
		switch v := v.(type) {
		case bson.A:
			vs := make([]string, len(v))
			for i, x := range v {
				s, ok := headerString(x)
				if !ok {
					return nil, fmt.Errorf("%w: header %s value %d is %T", ErrCorrupt, name, i, x)
				}
				vs[i] = s
			}
			h[name] = vs
		default:
			return nil, fmt.Errorf("%w: header %s is %T", ErrCorrupt, name, v)
		}
	}
	return h, nil
}

func escapeName(name string) string {
	if !strings.ContainsAny(name, ".$") {
		return name
	}
	name = strings.ReplaceAll(name, ".", "\uff0e")
	if strings.HasPrefix(name, "$") {
		name = "\uff04" + name[1:]
	}
	return name
}

func unescapeName(key string) string {
	if !strings.ContainsAny(key, "\uff0e\uff04") {
		return key
	}
	key = strings.ReplaceAll(key, "\uff0e", ".")
	if strings.HasPrefix(key, "\uff04") {
		key = "$" + strings.TrimPrefix(key, "\uff04")
	}
	return key
}

// compressMin is the smallest body worth compressing.
const compressMin = 1024

// compressLarge is the size from which a body is stored gzip-compressed
// even without CompressBodies. Storing a body as a string costs several
// copies of it at once on its way to the store (the document, the wire
// message, and on the embedded server its JSON encoding and SQLite's
// record and pages): storing a 29 MB page of a million links as text
// raised the peak RSS of a crawl by about 700 MB, compressed (3.5 MB) by
// a few MB. A page this large is no easier to read in Compass as a string.
const compressLarge = 4 << 20

// encodeBody stores a body as a string when it is valid UTF-8 text that
// MongoDB tools show readably, else as binary; with compress, bodies of
// compressMin bytes or more, and without it bodies of compressLarge bytes
// or more, are gzip-compressed binary instead (encoding "gzip") when that
// makes them smaller. Every form replays the exact bytes.
func encodeBody(body []byte, h http.Header, compress bool) (v any, encoding string) {
	if len(body) == 0 {
		return nil, ""
	}
	if (compress && len(body) >= compressMin) || len(body) >= compressLarge {
		if z, ok := gzipSmaller(body); ok {
			return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: z}, "gzip"
		}
	}
	return encodeBodyPlain(body, h), ""
}

// compressSample is how much of a large body is compressed first to see
// whether compressing it is worth it.
const compressSample = 64 << 10

// gzipSmaller compresses body, or reports false once the result would not
// be smaller (an image, an archive), without buffering more than body. A
// body of more than four samples whose first sample does not shrink by a
// tenth is not compressed at all.
func gzipSmaller(body []byte) ([]byte, bool) {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	if len(body) > 4*compressSample {
		sample := &cappedBuffer{max: compressSample * 9 / 10}
		zw.Reset(sample)
		if _, err := zw.Write(body[:compressSample]); err != nil || zw.Close() != nil {
			return nil, false
		}
	}
	w := &cappedBuffer{max: len(body) - 1}
	zw.Reset(w)
	if _, err := zw.Write(body); err != nil {
		return nil, false
	}
	if zw.Close() != nil {
		return nil, false
	}
	return w.b, true
}

// errCapped stops a compression whose output would not be smaller.
var errCapped = errors.New("compressed body not smaller")

// cappedBuffer collects at most max bytes.
type cappedBuffer struct {
	b   []byte
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if len(c.b)+len(p) > c.max {
		return 0, errCapped
	}
	c.b = append(c.b, p...)
	return len(p), nil
}

func encodeBodyPlain(body []byte, h http.Header) any {
	if StoredAsText(body, h) {
		return string(body)
	}
	return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: body}
}

// StoredAsText reports whether the cache stores body, a response body with
// header h, as a string (text that MongoDB tools show readably) when it
// stores it uncompressed, rather than as binary: valid UTF-8 text without
// a NUL byte or a Content-Encoding. A body stored compressed is binary in
// the store whatever it holds; this tells what it holds.
func StoredAsText(body []byte, h http.Header) bool {
	return h.Get("Content-Encoding") == "" && isTextType(h.Get("Content-Type")) &&
		utf8.Valid(body) && bytes.IndexByte(body, 0) < 0
}

// decompressBody undoes encodeBody's compression; the result must be size
// bytes.
func decompressBody(b []byte, encoding string, size int64) ([]byte, error) {
	if encoding != "gzip" {
		return nil, fmt.Errorf("%w: body_encoding %q", ErrCorrupt, encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip body: %v", ErrCorrupt, err)
	}
	out := make([]byte, 0, max(0, min(size, DefaultMaxBodySize)))
	buf := bytes.NewBuffer(out)
	if _, err := buf.ReadFrom(io.LimitReader(zr, size+1)); err != nil {
		return nil, fmt.Errorf("%w: gzip body: %v", ErrCorrupt, err)
	}
	return buf.Bytes(), nil
}

func decodeBody(v any) ([]byte, error) {
	switch b := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(b), nil
	case bson.Binary:
		return b.Data, nil
	case []byte:
		return b, nil
	default:
		return nil, fmt.Errorf("%w: body is %T", ErrCorrupt, v)
	}
}

// isTextType reports whether a Content-Type is text a person reads: text/*,
// JSON, XML, JavaScript and their +json/+xml variants.
func isTextType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	}
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	for _, s := range []string{"json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded"} {
		if strings.Contains(mt, s) {
			return true
		}
	}
	return false
}

// newEntry builds the stored form of a response to req (whose key is
// key and normalized URL norm) fetched at now.
func newEntry(key, norm string, req *http.Request, e *decodedEntry, p Policy, now time.Time, expires *time.Time, vary bson.M, compress bool) *Entry {
	ignored := p.ignoredParameters()
	body, encoding := encodeBody(e.body, e.header, compress)
	return &Entry{
		ID:           key,
		URL:          norm,
		Method:       methodOf(req),
		Status:       e.status,
		Proto:        e.proto,
		Reason:       e.reason,
		Uncompressed: e.uncompressed,
		Headers:      encodeHeader(e.header),
		Body:         body,
		BodyEncoding: encoding,
		BodySHA256:   bodySHA256(e.body),
		ContentType:  e.header.Get("Content-Type"),
		Size:         int64(len(e.body)),
		CreatedAt:    now,
		ValidatedAt:  now,
		Expires:      expires,
		ETag:         e.header.Get("ETag"),
		LastModified: httpDateOf(e.header.Values("Last-Modified"), now),
		Vary:         vary,
		Request: RequestInfo{
			Method:  methodOf(req),
			URL:     redactURL(req.URL, ignored),
			Headers: redactedRequestHeader(req.Header),
		},
	}
}

// redactedRequestHeader is req's header for storage: the secret headers'
// values replaced by REDACTED.
func redactedRequestHeader(h http.Header) bson.M {
	m := encodeHeader(h, secretHeaders...)
	for _, name := range secretHeaders {
		if _, ok := h[name]; ok {
			if m == nil {
				m = bson.M{}
			}
			m[name] = redacted
		}
	}
	return m
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// varyValues records the request values of the headers a response varies
// on, for matching later requests (nil when it does not vary).
func varyValues(req *http.Request, respHeader http.Header) bson.M {
	names := varyNames(respHeader)
	if len(names) == 0 {
		return nil
	}
	m := bson.M{}
	for _, n := range names {
		m[escapeName(n)] = headerValue(strings.Join(req.Header.Values(n), ","))
	}
	return m
}

// varyMatches reports whether req carries the header values recorded in a
// stored entry's vary field.
func varyMatches(req *http.Request, vary bson.M) bool {
	for key, v := range vary {
		name := unescapeName(key)
		if name == "*" {
			return false
		}
		want, _ := headerString(v)
		if strings.Join(req.Header.Values(name), ",") != want {
			return false
		}
	}
	return true
}

// ReasonPhrase returns the reason phrase of a status line ("200 Okay" →
// "Okay"), or "" when it is the standard phrase for code (or absent):
// only unusual phrases are worth storing.
func ReasonPhrase(code int, status string) string {
	reason := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(status), strconv.Itoa(code)))
	if reason == http.StatusText(code) {
		return ""
	}
	return reason
}
