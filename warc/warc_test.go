package warc

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// origin serves the kinds of response a round trip must keep: text, binary
// with zero bytes, a gzip-encoded body the client decoded, repeated
// headers, a non-standard reason phrase, a 404, a redirect, and a page
// fetched with a secret header and query parameter.
func origin(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/text":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("ETag", `"t1"`)
			h.Set("Last-Modified", "Mon, 02 Mar 2026 10:00:00 GMT")
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
			io.WriteString(w, "<html><h1>héllo</h1></html>")
		case "/large":
			// Larger than any read buffer: the body must come through whole.
			h.Set("Content-Type", "text/plain")
			for i := range 20000 {
				fmt.Fprintf(w, "line %d\n", i)
			}
		case "/binary":
			h.Set("Content-Type", "image/png")
			w.Write([]byte{0x89, 'P', 'N', 'G', 0, 0, 1, 2, 0xff, '\r', '\n'})
		case "/gzipped":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, strings.Repeat("compressed text ", 100))
			zw.Close()
		case "/okay":
			// A reason phrase net/http would not write: hijack and write it.
			conn, buf, _ := w.(http.Hijacker).Hijack()
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 Okay Then\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Odd: one\r\nX-Odd: two\r\n\r\nok")
			buf.Flush()
		case "/moved":
			http.Redirect(w, r, "/text", http.StatusMovedPermanently)
		case "/private":
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "for the token holder")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fill fetches the origin's pages through a cache.Transport on db.
func fill(t *testing.T, s storeDB, base string) {
	t.Helper()
	ctx := context.Background()
	tr, err := cache.New(ctx, s.store, cache.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/text", "/large", "/binary", "/gzipped", "/okay", "/moved", "/missing", "/private?api_key=s3cret"} {
		req, _ := http.NewRequest(http.MethodGet, base+p, nil)
		req.Header.Set("User-Agent", "test/1")
		if strings.HasPrefix(p, "/private") {
			req.Header.Set("Authorization", "Bearer t0ken")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// storeDB is an embedded store with an Admin over its cache.
type storeDB struct {
	store *store.Store
	admin *cache.Admin
}

// export writes every entry of a to a WARC file in memory.
func export(t *testing.T, a *cache.Admin, opts cache.ExportOptions) ([]byte, []*cache.Record) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Info{Filename: "test.warc.gz", Software: "crawlcache test"})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*cache.Record
	_, err = a.Export(context.Background(), opts, func(r *cache.Record) error {
		recs = append(recs, r)
		return w.Write(r)
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes(), recs
}

func newStore(t *testing.T) storeDB { return newStoreTB(t) }

func newStoreTB(t testing.TB) storeDB {
	s := storetest.Open(t)
	return storeDB{store: s, admin: cache.NewAdmin(s, cache.DefaultDatabase, nil)}
}

// TestRoundTrip fills a cache from an origin, exports it, imports the file
// into an empty cache and exports that: every body byte, status, reason
// phrase and header value survives, and the credentialed entry is
// exported with its secrets REDACTED but not imported.
func TestRoundTrip(t *testing.T) {
	srv := origin(t)
	src := newStore(t)
	fill(t, src, srv.URL)
	file, first := export(t, src.admin, cache.ExportOptions{})
	if len(first) != 8 {
		t.Fatalf("exported %d entries, want 8", len(first))
	}
	for _, secret := range []string{"t0ken", "s3cret"} {
		if bytes.Contains(gunzipAll(t, file), []byte(secret)) {
			t.Errorf("the export holds the secret %q", secret)
		}
	}

	dst := newStore(t)
	st, err := Import(context.Background(), dst.admin, bytes.NewReader(file))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if st.Records != 17 || st.Imported != 7 || st.Skipped[SkipCredentials] != 1 || st.Skipped[SkipNotResponse] != 9 {
		t.Errorf("import stats = %+v, want 17 records, 7 imported, 1 with credentials, 9 warcinfo/request", st)
	}
	_, second := export(t, dst.admin, cache.ExportOptions{})
	want := slices.DeleteFunc(slices.Clone(first), func(r *cache.Record) bool { return r.Credential != nil })
	if len(second) != len(want) {
		t.Fatalf("re-exported %d entries, want %d", len(second), len(want))
	}
	for i, got := range second {
		w := want[i]
		name := w.URL
		if got.URL != w.URL || got.Status != w.Status || got.Reason != w.Reason || got.Proto != w.Proto {
			t.Errorf("%s: status line %q %d %q %q, want %q %d %q %q", name, got.URL, got.Status, got.Reason, got.Proto, w.URL, w.Status, w.Reason, w.Proto)
		}
		if !bytes.Equal(got.Body, w.Body) {
			t.Errorf("%s: body %q, want %q", name, got.Body, w.Body)
		}
		if !reflect.DeepEqual(got.Header, w.Header) {
			t.Errorf("%s: header\n got %v\nwant %v", name, got.Header, w.Header)
		}
		if !got.ValidatedAt.Equal(w.ValidatedAt) {
			t.Errorf("%s: validated_at %v, want %v", name, got.ValidatedAt, w.ValidatedAt)
		}
	}
	// The reason phrase is kept by the cache and the WARC.
	if okay := find(first, "/okay"); okay == nil || okay.Reason != "Okay Then" || !slices.Equal(okay.Header["X-Odd"], []string{"one", "two"}) {
		t.Errorf("/okay = %+v, want reason %q and X-Odd [one two]", okay, "Okay Then")
	}

	// Importing the same file again keeps the cached copies (not older).
	st, err = Import(context.Background(), dst.admin, bytes.NewReader(file))
	if err != nil || st.Imported != 0 || st.Skipped[SkipOlder] != 7 {
		t.Errorf("second import = %+v, %v; want 7 skipped as not newer", st, err)
	}
}

func find(recs []*cache.Record, suffix string) *cache.Record {
	for _, r := range recs {
		if strings.HasSuffix(r.URL, suffix) {
			return r
		}
	}
	return nil
}

// gunzipAll decompresses every gzip member of b.
func gunzipAll(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportFormat checks the file record by record: one gzip member per
// record, warcinfo first, then response and request records whose
// payload digest is the SHA-1 of the body (WARC/1.1 §5.9).
func TestExportFormat(t *testing.T) {
	srv := origin(t)
	src := newStore(t)
	fill(t, src, srv.URL)
	file, recs := export(t, src.admin, cache.ExportOptions{Match: "*/binary"})
	if len(recs) != 1 {
		t.Fatalf("exported %d, want 1 (--match)", len(recs))
	}
	// Split the gzip members.
	var members [][]byte
	br := bufio.NewReader(bytes.NewReader(file))
	for {
		zr, err := gzip.NewReader(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		m, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	if len(members) != 3 {
		t.Fatalf("gzip members = %d, want 3 (warcinfo, response, request)", len(members))
	}
	for i, typ := range []string{"warcinfo", "response", "request"} {
		if !bytes.HasPrefix(members[i], []byte("WARC/1.1\r\n")) || !bytes.Contains(members[i], []byte("WARC-Type: "+typ+"\r\n")) {
			t.Errorf("member %d is not a WARC/1.1 %s record:\n%s", i, typ, members[i])
		}
	}
	sum := sha1.Sum(recs[0].Body)
	digest := "sha1:" + base32.StdEncoding.EncodeToString(sum[:])
	if !bytes.Contains(members[1], []byte("WARC-Payload-Digest: "+digest+"\r\n")) {
		t.Errorf("response record lacks WARC-Payload-Digest %s:\n%s", digest, members[1][:400])
	}
	if !bytes.Contains(members[2], []byte("User-Agent: test/1\r\n")) {
		t.Errorf("request record lacks the stored User-Agent:\n%s", members[2])
	}
}

// TestImportOtherWriters reads records as other tools write them: WARC/1.0,
// an uncompressed file, a file gzipped as a whole, the request after the
// response (Heritrix), a chunked body, a POST, a revisit, a dns: record,
// HTTP/2 status lines and a truncated response.
func TestImportOtherWriters(t *testing.T) {
	rec := func(version, typ, id, target, concurrent, ctype, block string, extra ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s\r\nWARC-Type: %s\r\nWARC-Record-ID: <urn:uuid:%s>\r\nWARC-Date: 2026-11-30T10:00:00Z\r\n", version, typ, id)
		if target != "" {
			fmt.Fprintf(&b, "WARC-Target-URI: %s\r\n", target)
		}
		if concurrent != "" {
			fmt.Fprintf(&b, "WARC-Concurrent-To: <urn:uuid:%s>\r\n", concurrent)
		}
		for _, e := range extra {
			b.WriteString(e + "\r\n")
		}
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s\r\n\r\n", ctype, len(block), block)
		return b.String()
	}
	const resp, req = "application/http; msgtype=response", "application/http; msgtype=request"
	file := rec("WARC/1.0", "warcinfo", "00000000-0000-0000-0000-000000000000", "", "", "application/warc-fields", "software: test\r\n") +
		// Heritrix order: response, then its request.
		rec("WARC/1.0", "response", "10000000-0000-0000-0000-000000000001", "http://a.example/1", "", resp,
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") +
		rec("WARC/1.0", "request", "10000000-0000-0000-0000-000000000002", "http://a.example/1", "10000000-0000-0000-0000-000000000001", req,
			"GET /1 HTTP/1.1\r\nHost: a.example\r\n\r\n") +
		// A POST: its response is not a GET's.
		rec("WARC/1.0", "request", "20000000-0000-0000-0000-000000000001", "http://a.example/form", "", req,
			"POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\na=1") +
		rec("WARC/1.0", "response", "20000000-0000-0000-0000-000000000002", "http://a.example/form", "20000000-0000-0000-0000-000000000001", resp,
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") +
		rec("WARC/1.1", "response", "30000000-0000-0000-0000-000000000001", "http://a.example/h2", "", resp,
			"HTTP/2 200\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nh2") +
		rec("WARC/1.1", "response", "40000000-0000-0000-0000-000000000001", "http://a.example/cut", "", resp,
			"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part") +
		rec("WARC/1.1", "response", "50000000-0000-0000-0000-000000000001", "http://a.example/big", "", resp,
			"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "WARC-Truncated: length") +
		rec("WARC/1.1", "revisit", "60000000-0000-0000-0000-000000000001", "http://a.example/1", "", resp,
			"HTTP/1.1 200 OK\r\n\r\n", "WARC-Profile: http://netpreserve.org/warc/1.1/revisit/identical-payload-digest") +
		rec("WARC/1.1", "response", "70000000-0000-0000-0000-000000000001", "dns:a.example", "", "text/dns", "20261130100000\r\na.example. 60 IN A 127.0.0.1") +
		rec("WARC/1.1", "metadata", "80000000-0000-0000-0000-000000000001", "http://a.example/1", "", "application/warc-fields", "via: x\r\n")
	var whole bytes.Buffer
	zw := gzip.NewWriter(&whole)
	zw.Write([]byte(file))
	zw.Close()
	for _, tc := range []struct {
		name string
		data []byte
	}{{"uncompressed", []byte(file)}, {"gzipped as a whole", whole.Bytes()}} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newStore(t)
			st, err := Import(context.Background(), dst.admin, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			want := map[string]int{SkipNotResponse: 4, SkipNotGet: 1, SkipTruncated: 2, SkipRevisit: 1, SkipNotHTTP: 1}
			if st.Records != 11 || st.Imported != 2 || !reflect.DeepEqual(st.Skipped, want) {
				t.Errorf("stats = %+v, want 11 records, 2 imported, skipped %v", st, want)
			}
			entry, _, err := dst.admin.Show(context.Background(), "http://a.example/1")
			if err != nil {
				t.Fatalf("show: %v", err)
			}
			r, err := cache.DecodeResponse(entry, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			if string(body) != "hello world" || entry.ETag != `"x"` || !entry.ValidatedAt.Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) {
				t.Errorf("imported /1: body %q etag %q validated %v; want the dechunked body, its ETag and the WARC-Date", body, entry.ETag, entry.ValidatedAt)
			}
		})
	}
}

// TestImportNotWARC checks that a file that is not WARC is an ErrFormat
// error, and a file cut in the middle of a record keeps what came before.
func TestImportNotWARC(t *testing.T) {
	dst := newStore(t)
	if _, err := Import(context.Background(), dst.admin, strings.NewReader("<html>not a warc</html>")); err == nil {
		t.Error("importing HTML succeeded")
	}
	srv := origin(t)
	src := newStore(t)
	fill(t, src, srv.URL)
	file, _ := export(t, src.admin, cache.ExportOptions{})
	st, err := Import(context.Background(), dst.admin, bytes.NewReader(file[:len(file)*2/3]))
	if err == nil {
		t.Errorf("importing a cut file succeeded: %+v", st)
	}
	if st.Imported == 0 {
		t.Errorf("imported nothing before the cut: %+v", st)
	}

	// An uncompressed file that ends inside a record whose block says it
	// is longer: the partial body is not imported as if whole.
	cut := "WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:90000000-0000-0000-0000-000000000001>\r\n" +
		"WARC-Date: 2026-11-30T10:00:00Z\r\nWARC-Target-URI: http://a.example/cut\r\n" +
		"Content-Type: application/http;msgtype=response\r\nContent-Length: 99999\r\n\r\nHTTP/1.1 200 OK\r\n\r\npartial"
	st, _ = Import(context.Background(), dst.admin, strings.NewReader(cut))
	if st.Imported != 0 || st.Skipped[SkipTruncated] != 1 {
		t.Errorf("record cut short: %+v, want it skipped as truncated", st)
	}
}

// TestWarcioIndex has an independent reader, the warcio package from npm
// (`warcio index`), list the records of an export: one response record per
// exported entry, each with its URL. It runs when the warcio command is
// found: $CRAWLCACHE_WARCIO or `warcio` on PATH (`make check-warc`
// installs it).
func TestWarcioIndex(t *testing.T) {
	bin := os.Getenv("CRAWLCACHE_WARCIO")
	if bin == "" {
		bin, _ = exec.LookPath("warcio")
	}
	if bin == "" {
		t.Skip("warcio not installed: run `make check-warc`, or set CRAWLCACHE_WARCIO to its command")
	}
	srv := origin(t)
	src := newStore(t)
	fill(t, src, srv.URL)
	file, recs := export(t, src.admin, cache.ExportOptions{})
	path := filepath.Join(t.TempDir(), "export.warc.gz")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "index", path).CombinedOutput()
	if err != nil {
		t.Fatalf("warcio index: %v\n%s", err, out)
	}
	var responses []string
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Type   string `json:"warc-type"`
			Target string `json:"warc-target-uri"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("warcio index line %q: %v", line, err)
		}
		types[r.Type]++
		if r.Type == "response" {
			responses = append(responses, r.Target)
		}
	}
	var want []string
	for _, r := range recs {
		want = append(want, r.URL)
	}
	if !slices.Equal(responses, want) {
		t.Errorf("warcio lists responses %v, want %v", responses, want)
	}
	if types["warcinfo"] != 1 || types["request"] != len(recs) {
		t.Errorf("warcio lists record types %v, want 1 warcinfo and %d requests", types, len(recs))
	}

	// Its CDX index reads each response's status and payload digest.
	out, err = exec.Command(bin, "cdx-index", path).CombinedOutput()
	if err != nil {
		t.Fatalf("warcio cdx-index: %v\n%s", err, out)
	}
	byURL := map[string]*cache.Record{}
	for _, r := range recs {
		byURL[r.URL] = r
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(recs) {
		t.Errorf("warcio cdx-index gives %d lines, want %d:\n%s", len(lines), len(recs), out)
	}
	for _, line := range lines {
		_, js, _ := strings.Cut(line, "{")
		var c struct{ URL, Status, Digest string }
		if err := json.Unmarshal([]byte("{"+js), &c); err != nil {
			t.Fatalf("cdx line %q: %v", line, err)
		}
		r := byURL[c.URL]
		if r == nil {
			t.Errorf("cdx lists %s, which was not exported", c.URL)
			continue
		}
		sum := sha1.Sum(r.Body)
		if want := base32.StdEncoding.EncodeToString(sum[:]); c.Digest != want || c.Status != fmt.Sprint(r.Status) {
			t.Errorf("cdx %s: status %s digest %s, want %d %s", c.URL, c.Status, c.Digest, r.Status, want)
		}
	}
}
