package crawler

import (
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gocolly/colly/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/parses"
	"crawlcache/store"
)

// hashPage is a page of hashSite: its Content-Type, the bytes the origin
// sends, and the bytes colly hands the crawler (converted to UTF-8 when
// its charset is another).
type hashPage struct {
	ct         string
	sent, seen string
}

var hashSitePages = map[string]hashPage{
	"/":          {ct: "text/html; charset=utf-8", sent: `<html><body><a href="/utf8">u</a><a href="/latin1">l</a><a href="/nocharset">n</a><a href="/data.json">j</a></body></html>`},
	"/utf8":      {ct: "text/html; charset=UTF-8", sent: "<html><body><p>café über</p></body></html>"},
	"/latin1":    {ct: "text/html; charset=windows-1252", sent: "<html><body><p>caf\xe9 \xfcber</p></body></html>", seen: "<html><body><p>café über</p></body></html>"},
	"/nocharset": {ct: "text/html", sent: "<html><body><p>plain</p></body></html>"},
	"/data.json": {ct: "application/json", sent: `{"a":1}`},
}

// newHashSite serves hashSitePages with ETags and 304s, gzip-encoded when
// asked, and forges cache.HeaderBodySHA256 on every answer.
func newHashSite(t *testing.T, forged string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pg, ok := hashSitePages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := fmt.Sprintf(`"%x"`, len(pg.sent))
		w.Header().Set(cache.HeaderBodySHA256, forged)
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", pg.ct)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte(pg.sent))
			_ = zw.Close()
			return
		}
		_, _ = w.Write([]byte(pg.sent))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The body hashes the crawler records (parse records, change records) are
// those of the bodies it reads, on a miss, a 304 and a hit alike: the
// cache's stored hash where colly hands over the stored bytes, a hash of
// its own where colly converted the charset or decoded gzip the cache kept
// encoded; an origin's forged hash is never used.
func TestBodyHashRecorded(t *testing.T) {
	forged := strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"stored decoded", nil},
		// The job asks for gzip itself: net/http leaves the body encoded,
		// the cache stores it so, and colly decodes it.
		{"stored gzip-encoded", http.Header{"Accept-Encoding": {"gzip"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			base := newHashSite(t, forged)
			ps := parseStore(e)
			crawl := func(id string, policy cache.Policy) Progress {
				tr := e.tracker("test", id, nil)
				o := e.options(id, base+"/", itemRecorder(t, shopSpec))
				o.CachePolicy, o.Parses, o.Changes, o.Headers = policy, ps, tr, tc.header
				_, p := run(t, o)
				checkHashes(t, e, id, base, forged)
				return p
			}
			htmlPages := int64(len(hashSitePages) - 1)
			if p := crawl("cold", revalidateAll); p.New != int64(len(hashSitePages)) || p.Parsed != htmlPages {
				t.Errorf("cold: new %d parsed %d, want %d and %d", p.New, p.Parsed, len(hashSitePages), htmlPages)
			}
			for _, run := range []struct {
				id     string
				policy cache.Policy
			}{{"revalidated", revalidateAll}, {"hits", cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}}} {
				p := crawl(run.id, run.policy)
				if p.Unchanged != int64(len(hashSitePages)) || p.Parsed != 0 || p.Reused != htmlPages {
					t.Errorf("%s: unchanged %d parsed %d reused %d; want %d, 0, %d", run.id, p.Unchanged, p.Parsed, p.Reused, len(hashSitePages), htmlPages)
				}
			}
		})
	}
}

// checkHashes compares the body hashes run id recorded with those of the
// bodies colly hands the crawler.
func checkHashes(t *testing.T, e *env, id, base, forged string) {
	t.Helper()
	ctx := context.Background()
	for path, pg := range hashSitePages {
		seen := pg.seen
		if seen == "" {
			seen = pg.sent
		}
		want := parses.BodyHash([]byte(seen))
		var rec changes.Record
		raw, err := e.st.Collection(envDatabase, changes.RecordsCollection).Get(ctx, changes.RecordID(id, base+path))
		if err == nil {
			err = bson.Unmarshal(raw, &rec)
		}
		if err != nil {
			t.Fatalf("%s: change record of %s: %v", id, path, err)
		}
		if rec.BodyHash != want {
			t.Errorf("%s: change record of %s has body hash %s, want %s (forged: %v)", id, path, rec.BodyHash, want, rec.BodyHash == forged)
		}
	}
	var recs []parses.Record
	if err := e.st.Collection("crawlcache", parses.DefaultCollection).All(ctx, bson.D{}, store.FindOptions{}, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(hashSitePages)-1 {
		t.Errorf("%s: %d parse records, want one per HTML page (%d)", id, len(recs), len(hashSitePages)-1)
	}
	for _, r := range recs {
		pg := hashSitePages[strings.TrimPrefix(r.URL, base)]
		seen := pg.seen
		if seen == "" {
			seen = pg.sent
		}
		if want := parses.BodyHash([]byte(seen)); r.BodyHash != want {
			t.Errorf("%s: parse record of %s has body hash %s, want %s", id, r.URL, r.BodyHash, want)
		}
	}
}

// On a re-crawl the crawler takes a page's hash from the cache entry
// (body_sha256) instead of hashing its body again: an entry whose stored
// hash was replaced shows the replacement in the change record. Pages
// whose body colly converts ignore it.
func TestBodyHashFromCache(t *testing.T) {
	e := newEnv(t)
	base := newHashSite(t, strings.Repeat("cd", 32))
	crawl := func(id string) {
		tr := e.tracker("test", id, nil)
		o := e.options(id, base+"/", nil)
		o.CachePolicy, o.Changes = cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireNever}}, tr
		run(t, o)
	}
	crawl("cold")
	replaced := strings.Repeat("0", 64)
	responses := e.st.Collection(envDatabase, cache.ResponsesCollection)
	if _, err := responses.UpdateMany(context.Background(), bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "body_sha256", Value: replaced}}}}); err != nil {
		t.Fatal(err)
	}
	crawl("hits")
	for path, want := range map[string]string{
		"/utf8":   replaced,
		"/latin1": parses.BodyHash([]byte(hashSitePages["/latin1"].seen)), // converted by colly: hashed
	} {
		var rec changes.Record
		raw, err := e.st.Collection(envDatabase, changes.RecordsCollection).Get(context.Background(), changes.RecordID("hits", base+path))
		if err == nil {
			err = bson.Unmarshal(raw, &rec)
		}
		if err != nil || rec.BodyHash != want {
			t.Errorf("change record of %s: hash %q (%v), want %q", path, rec.BodyHash, err, want)
		}
	}
}

// On the previous release's cache (entries without body_sha256) the
// crawler hashes the bodies itself: the first run records each page's
// hash as new, the next finds every page unchanged and reuses its parse.
func TestBodyHashPreviousReleaseData(t *testing.T) {
	ctx := context.Background()
	s, f, ps := openPreviousRelease(t)
	offline := originFunc(func(r *http.Request) *http.Response {
		t.Errorf("offline run asked the network for %s", r.URL)
		return &http.Response{StatusCode: 503, Header: http.Header{}, Request: r, Body: http.NoBody}
	})
	crawl := func(id string) (*recorder, Progress) {
		tr, err := changes.New(changes.Options{
			Pages: s.Collection("crawlcache", changes.PagesCollection), Records: s.Collection("crawlcache", changes.RecordsCollection),
			Job: "fixture-public", Run: id,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := itemRecorder(t, shopSpec)
		p, err := Run(ctx, Options{
			RunID: id, Job: "fixture-public", Worker: "w", Seeds: []string{"http://127.0.0.1:18089/"}, MaxPages: 8,
			Store: s, Frontier: f, Pipeline: rec.pipe, Upstream: offline, Parses: ps, Changes: tr,
			CachePolicy: cache.Policy{OnlyIfCached: true}, Logger: quiet(),
		})
		if err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
		return rec, p
	}
	stored := storedBodyHashes(t, s)
	first, p := crawl("first")
	if p.New != 8 || p.Parsed != 8 {
		t.Fatalf("first run: new %d parsed %d, want 8 and 8", p.New, p.Parsed)
	}
	for _, pg := range first.pages {
		if pg.Header.Get(cache.HeaderBodySHA256) != "" {
			t.Errorf("%s: served with a body hash from an entry that has none", pg.URL)
		}
		var rec changes.Record
		raw, err := s.Collection("crawlcache", changes.RecordsCollection).Get(ctx, changes.RecordID("first", pg.URL))
		if err == nil {
			err = bson.Unmarshal(raw, &rec)
		}
		if want := stored[pg.URL]; err != nil || want == "" || rec.BodyHash != want {
			t.Errorf("%s: recorded hash %q (%v), want %q", pg.URL, rec.BodyHash, err, want)
		}
	}
	if _, p = crawl("second"); p.Unchanged != 8 || p.Parsed != 0 || p.Reused != 8 {
		t.Errorf("second run: unchanged %d parsed %d reused %d, want 8, 0, 8", p.Unchanged, p.Parsed, p.Reused)
	}
}

// storedBodyHashes hashes the body of every entry in the store's cache,
// by URL.
func storedBodyHashes(t *testing.T, s *store.Store) map[string]string {
	t.Helper()
	var entries []cache.Entry
	if err := s.Collection(cache.DefaultDatabase, cache.ResponsesCollection).All(context.Background(), bson.D{}, store.FindOptions{}, &entries); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range entries {
		resp, err := cache.DecodeResponse(&entries[i], nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out[entries[i].URL] = parses.BodyHash(body)
	}
	return out
}

// servedAsIs mirrors colly v2.3.0's Response.fixCharset and its gzip
// decoding: the cache's hash is used only for bodies colly leaves alone.
func TestServedAsIs(t *testing.T) {
	for _, tc := range []struct {
		name, ct, ce, path, reqEncoding string
		detect                          bool
		want                            bool
	}{
		{name: "utf-8 html", ct: "text/html; charset=utf-8", want: true},
		{name: "UTF8 upper case", ct: "text/html; charset=UTF8", want: true},
		{name: "quoted utf-8", ct: `text/html; charset="utf-8"`, want: true},
		{name: "no charset", ct: "text/html", want: true},
		{name: "no charset, detection on", ct: "text/html", detect: true, want: false},
		{name: "windows-1252", ct: "text/html; charset=windows-1252", want: false},
		{name: "shift_jis", ct: "text/html; charset=Shift_JIS", want: false},
		{name: "image, odd charset", ct: "image/svg+xml; charset=latin1", want: true},
		{name: "content-encoding gzip", ct: "text/html; charset=utf-8", ce: "gzip", want: false},
		{name: "gzip content type", ct: "application/x-gzip", want: false},
		{name: "xml.gz path", ct: "application/xml; charset=utf-8", path: "/sitemap.xml.gz", want: false},
		{name: "request asks an encoding", ct: "text/html; charset=utf-8", reqEncoding: "latin1", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &crawl{maxBody: 1 << 20, detectCharset: tc.detect}
			h := http.Header{"Content-Type": {tc.ct}}
			if tc.ce != "" {
				h.Set("Content-Encoding", tc.ce)
			}
			u, _ := url.Parse("http://example.test" + cmp.Or(tc.path, "/page"))
			r := &colly.Response{Headers: &h, Body: []byte("<p>x</p>"), Request: &colly.Request{URL: u, ResponseCharacterEncoding: tc.reqEncoding}}
			if got := c.servedAsIs(r); got != tc.want {
				t.Errorf("servedAsIs = %v, want %v", got, tc.want)
			}
		})
	}
}
