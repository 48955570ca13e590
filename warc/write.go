// Package warc writes cached responses to WARC files and reads WARC files
// into the cache (ISO 28500; WARC/1.1 written, WARC/1.0 and 1.1 read,
// gzip-compressed or not). It is the only package that imports the WARC
// library (github.com/nlnwa/gowarc); it reaches the cache only through
// cache.Admin's Export and Import, never the store.
package warc

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nlnwa/gowarc/v3"

	"crawlcache/cache"
)

// dateLayout is WARC-Date with millisecond precision (WARC/1.1 §5.4
// allows fractions of a second; the cache keeps milliseconds).
const dateLayout = "2006-01-02T15:04:05.000Z"

// recordOptions make records with SHA-1 block and payload digests in
// base32, the form most WARC tools write and check.
var recordOptions = []gowarc.WarcRecordOption{
	gowarc.WithVersion(gowarc.V1_1),
	gowarc.WithDefaultDigestAlgorithm("sha1"),
	gowarc.WithAddMissingDigest(true),
	gowarc.WithAddMissingContentLength(true),
	gowarc.WithStrictValidation(),
}

// Writer writes one WARC/1.1 file: a warcinfo record first, then a
// request and a response record per cache.Record, each record its own gzip
// member (so a reader can seek to any record). Not safe for concurrent
// use.
type Writer struct {
	out     io.Writer
	m       gowarc.Marshaler
	zw      *gzip.Writer // reset for each record: a new one allocates ~1 MB
	infoID  string
	Records int // records written so far, warcinfo included
}

// Info describes the file in its warcinfo record.
type Info struct {
	// Filename is the file's name (WARC-Filename); may be empty.
	Filename string
	// Software names the writer, e.g. "crawlcache 0.1".
	Software string
	// Fields are further "name: value" lines of the warcinfo block
	// (e.g. the export's selection), in order.
	Fields [][2]string
}

// NewWriter writes the warcinfo record to out and returns a Writer for the
// records that follow.
func NewWriter(out io.Writer, info Info) (*Writer, error) {
	w := &Writer{out: out, m: gowarc.NewMarshaler(), zw: gzip.NewWriter(out)}
	var block strings.Builder
	fields := append([][2]string{{"software", info.Software}, {"format", "WARC File Format 1.1"},
		{"conformsTo", "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"}}, info.Fields...)
	for _, f := range fields {
		if f[1] != "" {
			fmt.Fprintf(&block, "%s: %s\r\n", f[0], oneLine(f[1]))
		}
	}
	b := gowarc.NewRecordBuilder(gowarc.Warcinfo, recordOptions...)
	b.AddWarcHeader(gowarc.WarcDate, time.Now().UTC().Format(dateLayout))
	b.AddWarcHeader(gowarc.ContentType, "application/warc-fields")
	if info.Filename != "" {
		b.AddWarcHeader(gowarc.WarcFilename, info.Filename)
	}
	if _, err := b.WriteString(block.String()); err != nil {
		return nil, fmt.Errorf("build warcinfo record: %w", err)
	}
	id, err := w.write(b)
	if err != nil {
		return nil, err
	}
	w.infoID = id
	return w, nil
}

// Write writes rec as a response record and the request record that
// produced it (WARC-Concurrent-To the response). The request's secret
// headers are written as the cache stores them: REDACTED.
func (w *Writer) Write(rec *cache.Record) error {
	date := rec.ValidatedAt.UTC().Format(dateLayout)
	target := rec.URL
	resp := gowarc.NewRecordBuilder(gowarc.Response, recordOptions...)
	resp.AddWarcHeader(gowarc.WarcDate, date)
	resp.AddWarcHeader(gowarc.WarcTargetURI, target)
	resp.AddWarcHeader(gowarc.WarcWarcinfoID, "<"+w.infoID+">")
	resp.AddWarcHeader(gowarc.ContentType, "application/http;msgtype=response")
	if _, err := resp.Write(responseBlock(rec)); err != nil {
		return fmt.Errorf("build response record for %s: %w", target, err)
	}
	respID, err := w.write(resp)
	if err != nil {
		return fmt.Errorf("write response record for %s: %w", target, err)
	}
	req := gowarc.NewRecordBuilder(gowarc.Request, recordOptions...)
	req.AddWarcHeader(gowarc.WarcDate, date)
	req.AddWarcHeader(gowarc.WarcTargetURI, target)
	req.AddWarcHeader(gowarc.WarcWarcinfoID, "<"+w.infoID+">")
	req.AddWarcHeader(gowarc.WarcConcurrentTo, "<"+respID+">")
	req.AddWarcHeader(gowarc.ContentType, "application/http;msgtype=request")
	block, err := requestBlock(rec)
	if err != nil {
		return err
	}
	if _, err := req.Write(block); err != nil {
		return fmt.Errorf("build request record for %s: %w", target, err)
	}
	if _, err := w.write(req); err != nil {
		return fmt.Errorf("write request record for %s: %w", target, err)
	}
	return nil
}

// write builds the record and writes it as one gzip member; it returns
// the record's WARC-Record-ID.
func (w *Writer) write(b gowarc.WarcRecordBuilder) (string, error) {
	rec, _, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("build %s record: %w", "WARC", err)
	}
	defer rec.Close()
	zw := w.zw
	zw.Reset(w.out)
	if _, _, err := w.m.Marshal(zw, rec, 0); err != nil {
		return "", fmt.Errorf("write %s record: %w", rec.Type(), err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("write %s record: %w", rec.Type(), err)
	}
	w.Records++
	return rec.RecordId(), nil
}

// responseBlock is the HTTP response message: status line, the header
// fields sorted by name (repeated fields in the origin's order), the body.
func responseBlock(rec *cache.Record) []byte {
	var b bytes.Buffer
	reason := cmp.Or(rec.Reason, http.StatusText(rec.Status))
	fmt.Fprintf(&b, "%s %d %s\r\n", cmp.Or(rec.Proto, "HTTP/1.1"), rec.Status, reason)
	writeHeader(&b, rec.Header, cache.HeaderServed)
	b.WriteString("\r\n")
	b.Write(rec.Body)
	return b.Bytes()
}

// requestBlock is the HTTP request message as stored: request line, Host,
// the stored request header (secrets already REDACTED), no body.
func requestBlock(rec *cache.Record) ([]byte, error) {
	u, err := url.Parse(rec.URL)
	if err != nil {
		return nil, fmt.Errorf("request record for %s: %w", rec.URL, err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", cmp.Or(rec.Method, http.MethodGet), u.RequestURI(), u.Host)
	writeHeader(&b, rec.RequestHeader, "Host")
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

func writeHeader(b *bytes.Buffer, h http.Header, skip string) {
	names := make([]string, 0, len(h))
	for name := range h {
		if !strings.EqualFold(name, skip) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			b.WriteString(name + ": " + oneLine(v) + "\r\n")
		}
	}
}

// oneLine keeps a header value on one line.
func oneLine(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
}
