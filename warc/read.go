package warc

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nlnwa/gowarc/v3"

	"crawlcache/cache"
)

// MaxBody is the largest response body Import stores: the cache's own
// limit (a stored document must stay under MongoDB's 16 MiB).
const MaxBody = cache.DefaultMaxBodySize

// ErrFormat is wrapped by Import's errors about the input: not a WARC
// file, or a record cut short or unreadable. Other errors are the cache's.
var ErrFormat = errors.New("unreadable WARC")

// Skip reasons counted by ImportStats.Skipped.
const (
	SkipNotResponse = "not a response record" // warcinfo, metadata, resource, request (used for pairing), ...
	SkipRevisit     = "revisit record (no body)"
	SkipNotHTTP     = "not an HTTP response" // dns:, whois:, ... or another Content-Type
	SkipNotGet      = "not a GET"
	SkipCredentials = "request carried credentials"
	SkipTruncated   = "truncated (WARC-Truncated or body shorter than its length)"
	SkipTooLarge    = "body over the cache's limit"
	SkipMalformed   = "malformed HTTP message"
	SkipOlder       = "cache holds a copy validated at or after it"
)

// ImportStats counts what Import did with a file's records.
type ImportStats struct {
	// Records is the number of WARC records read.
	Records int
	// Imported is the number of responses stored in the cache.
	Imported int
	// Skipped counts the records not stored, by reason (the Skip*
	// constants).
	Skipped map[string]int
}

func (s *ImportStats) skip(reason string) {
	if s.Skipped == nil {
		s.Skipped = map[string]int{}
	}
	s.Skipped[reason]++
}

// Add adds o's counts to s.
func (s *ImportStats) Add(o ImportStats) {
	s.Records += o.Records
	s.Imported += o.Imported
	for k, v := range o.Skipped {
		if s.Skipped == nil {
			s.Skipped = map[string]int{}
		}
		s.Skipped[k] += v
	}
}

// readOptions are lenient: files written by other tools often break rules
// that do not matter here (digests, optional fields), and what matters
// (the HTTP message) is checked by Import itself. Spec violations are
// "warnings" (which Import ignores) rather than ignored because only then
// does the reader keep each record's block (in memory, or in a temporary
// file when large) for Import to read after the record was parsed.
var readOptions = []gowarc.WarcRecordOption{
	gowarc.WithSyntaxErrorPolicy(gowarc.ErrIgnore),
	gowarc.WithSpecViolationPolicy(gowarc.ErrWarn),
	gowarc.WithUnknownRecordTypePolicy(gowarc.ErrIgnore),
	gowarc.WithBlockErrorPolicy(gowarc.ErrIgnore),
}

// request is what a request record tells about its response.
type request struct {
	id, target   string
	concurrentTo []string
	method       string
	header       http.Header
}

// response is a response record read but not yet imported: its request
// record may follow it (Heritrix writes the response first).
type response struct {
	id, target   string
	concurrentTo []string
	rec          *cache.Record
	skip         string // reason it cannot be imported, "" if it can
}

// Import reads the WARC records of r (WARC/1.0 or 1.1, gzip-compressed per
// record, as a whole, or not at all) and stores each HTTP response to a GET
// in the cache through a.Import. A response is paired with its request
// record by WARC-Concurrent-To (either way) or, failing that, by being
// next to a request for the same WARC-Target-URI; without one it is taken
// as a GET without credentials. Records that are not HTTP responses, and
// responses that cannot be stored whole, are skipped and counted. It
// returns an error when the file is not WARC or is cut in the middle of
// a record (with the counts so far), or when the cache fails.
func Import(ctx context.Context, a *cache.Admin, r io.Reader) (ImportStats, error) {
	var st ImportStats
	// A file compressed per record (the usual .warc.gz) and one gzipped as
	// a whole both decompress, member after member, into the plain file.
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	wr, err := gowarc.NewWarcFileReaderFromStream(r, 0, readOptions...)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	defer wr.Close()
	var lastReq *request
	var pending *response
	flush := func(req *request) error {
		if pending == nil {
			return nil
		}
		p := pending
		pending = nil
		return importResponse(ctx, a, p, req, &st)
	}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		rec, err := wr.Next()
		if errors.Is(err, io.EOF) {
			return st, flush(nil)
		}
		if err != nil {
			ferr := flush(nil)
			if st.Records == 0 {
				return st, errors.Join(fmt.Errorf("%w: not a WARC file: %v", ErrFormat, err), ferr)
			}
			return st, errors.Join(fmt.Errorf("%w: record %d (at byte %d): %v", ErrFormat, st.Records+1, rec.Offset, err), ferr)
		}
		st.Records++
		wrec := rec.WarcRecord
		switch wrec.Type() {
		case gowarc.Request:
			req := readRequest(wrec)
			if pending != nil && pairs(pending, req) {
				err = flush(req)
			} else {
				err = flush(nil)
			}
			lastReq = req
			st.skip(SkipNotResponse)
		case gowarc.Response:
			if err = flush(nil); err == nil {
				pending = readResponse(wrec)
				if pending.skip == "" && shortBlock(rec.Validation) {
					pending.skip = SkipTruncated // the file ended inside the record
				}
				if lastReq != nil && pairs(pending, lastReq) {
					p := pending
					pending = nil
					err = importResponse(ctx, a, p, lastReq, &st)
				}
			}
		case gowarc.Revisit:
			err = flush(nil)
			st.skip(SkipRevisit)
		default:
			err = flush(nil)
			st.skip(SkipNotResponse)
		}
		_ = rec.Close()
		if err != nil {
			return st, err
		}
	}
}

// shortBlock reports whether the reader found a record's block shorter
// than its Content-Length (a file cut inside the record).
func shortBlock(validation []error) bool {
	for _, err := range validation {
		var cl *gowarc.ContentLengthError
		if errors.As(err, &cl) && cl.Actual < cl.Expected {
			return true
		}
	}
	return false
}

// pairs reports whether req is resp's request.
func pairs(resp *response, req *request) bool {
	if slices.Contains(resp.concurrentTo, req.id) || slices.Contains(req.concurrentTo, resp.id) {
		return true
	}
	return len(resp.concurrentTo) == 0 && len(req.concurrentTo) == 0 && resp.target == req.target
}

func readRequest(wrec gowarc.WarcRecord) *request {
	h := wrec.WarcHeader()
	req := &request{id: h.GetId(gowarc.WarcRecordID), target: targetOf(wrec), concurrentTo: h.GetAll(gowarc.WarcConcurrentTo), method: http.MethodGet}
	for i, id := range req.concurrentTo {
		req.concurrentTo[i] = strings.Trim(id, "<>")
	}
	raw, err := wrec.Block().RawBytes()
	if err != nil {
		return req
	}
	hr, err := http.ReadRequest(bufio.NewReader(io.LimitReader(raw, 1<<20)))
	if err != nil {
		return req
	}
	req.method, req.header = hr.Method, hr.Header
	return req
}

func targetOf(wrec gowarc.WarcRecord) string {
	return strings.Trim(wrec.WarcHeader().Get(gowarc.WarcTargetURI), "<>")
}

// readResponse turns a response record into a cache.Record, or says why
// it cannot be imported.
func readResponse(wrec gowarc.WarcRecord) *response {
	h := wrec.WarcHeader()
	resp := &response{id: h.GetId(gowarc.WarcRecordID), target: targetOf(wrec), concurrentTo: h.GetAll(gowarc.WarcConcurrentTo)}
	for i, id := range resp.concurrentTo {
		resp.concurrentTo[i] = strings.Trim(id, "<>")
	}
	ct := strings.ToLower(h.Get(gowarc.ContentType))
	switch {
	case !strings.HasPrefix(resp.target, "http://") && !strings.HasPrefix(resp.target, "https://"),
		ct != "" && !strings.HasPrefix(ct, "application/http"):
		resp.skip = SkipNotHTTP
		return resp
	case h.Has(gowarc.WarcTruncated):
		resp.skip = SkipTruncated
		return resp
	}
	date, err := wrec.Date()
	if err != nil {
		date, err = time.Parse(time.RFC3339Nano, h.Get(gowarc.WarcDate))
	}
	if err != nil {
		resp.skip = SkipMalformed
		return resp
	}
	raw, err := wrec.Block().RawBytes()
	if err != nil {
		resp.skip = SkipMalformed
		return resp
	}
	rec, skip := parseHTTPResponse(raw)
	if skip != "" {
		resp.skip = skip
		return resp
	}
	rec.URL, rec.ValidatedAt, rec.CreatedAt = resp.target, date, date
	resp.rec = rec
	return resp
}

// parseHTTPResponse reads the HTTP message of a response record: status
// line (with its reason phrase), header and the whole body (a chunked
// body is decoded; a Content-Encoding is kept as sent).
func parseHTTPResponse(raw io.Reader) (*cache.Record, string) {
	br := bufio.NewReader(raw)
	line, err := br.Peek(16)
	if err != nil && len(line) == 0 {
		return nil, SkipMalformed
	}
	// http.ReadResponse wants "HTTP/2.0"; some tools write "HTTP/2".
	if bytes.HasPrefix(line, []byte("HTTP/2 ")) || bytes.HasPrefix(line, []byte("HTTP/3 ")) {
		_, _ = br.Discard(6)
		br = bufio.NewReader(io.MultiReader(strings.NewReader(string(line[:6])+".0"), br))
	}
	hr, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, SkipMalformed
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, MaxBody+1))
	switch {
	case err != nil:
		return nil, SkipTruncated
	case int64(len(body)) > MaxBody:
		return nil, SkipTooLarge
	}
	return &cache.Record{
		Method: http.MethodGet, Status: hr.StatusCode, Reason: cache.ReasonPhrase(hr.StatusCode, hr.Status),
		Proto: hr.Proto, Header: hr.Header, Body: body,
	}, ""
}

// importResponse stores resp, with req as its request (nil if none).
func importResponse(ctx context.Context, a *cache.Admin, resp *response, req *request, st *ImportStats) error {
	if resp.skip != "" {
		st.skip(resp.skip)
		return nil
	}
	if req != nil {
		resp.rec.Method, resp.rec.RequestHeader = req.method, req.header
	}
	stored, err := a.Import(ctx, resp.rec)
	switch {
	case errors.Is(err, cache.ErrNotGet):
		st.skip(SkipNotGet)
	case errors.Is(err, cache.ErrHasCredentials):
		st.skip(SkipCredentials)
	case errors.Is(err, cache.ErrCorrupt):
		st.skip(SkipMalformed)
	case err != nil:
		return err
	case !stored:
		st.skip(SkipOlder)
	default:
		st.Imported++
	}
	return nil
}
