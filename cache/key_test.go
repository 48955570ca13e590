package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		name, in, want string
		ignored        []string
	}{
		{"lower-case scheme and host", "HTTP://Example.ORG/Path", "http://example.org/Path", nil},
		{"default http port dropped", "http://example.org:80/a", "http://example.org/a", nil},
		{"default https port dropped", "https://example.org:443/a", "https://example.org/a", nil},
		{"other port kept", "https://example.org:8443/a", "https://example.org:8443/a", nil},
		{"empty path is slash", "https://example.org", "https://example.org/", nil},
		{"fragment dropped", "https://example.org/a#top", "https://example.org/a", nil},
		{"userinfo dropped", "https://u:p@example.org/a", "https://example.org/a", nil},
		{"query sorted", "https://e.org/?b=2&a=1&a=0", "https://e.org/?a=0&a=1&b=2", nil},
		{"empty pairs dropped", "https://e.org/?&a=1&&", "https://e.org/?a=1", nil},
		{"bare question mark dropped", "https://e.org/x?", "https://e.org/x", nil},
		{"escaping kept", "https://e.org/a%2Fb?q=%7E%20x", "https://e.org/a%2Fb?q=%7E%20x", nil},
		{"ignored parameters dropped", "https://e.org/?api_key=s&page=2&ACCESS_TOKEN=t", "https://e.org/?page=2", DefaultIgnoredParameters},
		{"escaped ignored name dropped", "https://e.org/?api%5Fkey=s&page=2", "https://e.org/?page=2", DefaultIgnoredParameters},
		{"ipv6 default port", "http://[::1]:80/a", "http://[::1]/a", nil},
		{"ipv6 port kept", "http://[::1]:8080/a", "http://[::1]:8080/a", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeURL(tc.in, tc.ignored)
			if err != nil {
				t.Fatalf("NormalizeURL(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("NormalizeURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"/relative", "mailto:x@e.org", "http://%zz/", ""} {
		if got, err := NormalizeURL(bad, nil); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

// TestKeyPinned pins known keys: a change here empties every user's cache,
// so it must come with a new keyVersion and a note in the README.
func TestKeyPinned(t *testing.T) {
	get := func(url string, header ...string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		return r
	}
	tests := []struct {
		name   string
		req    *http.Request
		body   []byte
		policy Policy
		vary   http.Header
		want   string
	}{
		{"plain GET", get("https://example.org/"), nil, Policy{}, nil, "26e106f864905ea365121334b709af6e"},
		{"same URL, other spelling", get("HTTPS://EXAMPLE.org:443/#frag"), nil, Policy{}, nil, "26e106f864905ea365121334b709af6e"},
		{"query order and secrets ignored", get("https://example.org/s?b=2&api_key=x&a=1"), nil, Policy{}, nil, "fa604c8555368bcc64849a0f2a4dabf1"},
		{"query sorted", get("https://example.org/s?a=1&b=2"), nil, Policy{}, nil, "fa604c8555368bcc64849a0f2a4dabf1"},
		{"POST body", &http.Request{Method: "POST", URL: get("https://example.org/api").URL, Header: http.Header{}}, []byte(`{"q":1}`), Policy{}, nil, "3a4e09ac23974c6b34fe4c9e4bc895fa"},
		{"match header", get("https://example.org/", "Accept-Language", "de"), nil, Policy{MatchHeaders: []string{"accept-language"}}, nil, "a3e2103f7ee3127118cd0d6ff080c5d3"},
		{"vary header", get("https://example.org/", "Accept-Language", "de"), nil, Policy{}, http.Header{"Vary": {"Accept-Language"}}, "a3e2103f7ee3127118cd0d6ff080c5d3"},
		{"HEAD", &http.Request{Method: "HEAD", URL: get("https://example.org/").URL, Header: http.Header{}}, nil, Policy{}, nil, "4e6f30364864639ec0c8a57524800ca6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Key(tc.req, tc.body, tc.policy, tc.vary); got != tc.want {
				t.Errorf("Key = %q, want %q", got, tc.want)
			}
		})
	}
	if k, err := KeyForURL("GET", "https://example.org/", Policy{}); err != nil || k != tests[0].want {
		t.Errorf("KeyForURL = %q, %v; want %q", k, err, tests[0].want)
	}
}

func TestTransportRedactsSecrets(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	e := newTransportEnv(t, Options{})
	url := o.URL + "/private?page=1&api_key=SECRETKEY"
	hdr := []string{"Authorization", "Bearer SECRETTOKEN", "Cookie", "session=SECRETCOOKIE", "Proxy-Authorization", "Basic SECRETPROXY", "User-Agent", "crawler"}
	e.get(nil, url, hdr...)
	raw := e.rawDoc(ResponsesCollection, e.boundKey(url, hdr...))
	if raw == nil {
		t.Fatal("nothing stored")
	}
	for _, secret := range []string{"SECRETKEY", "SECRETTOKEN", "SECRETCOOKIE", "SECRETPROXY"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("stored document contains %s", secret)
		}
	}
	var entry Entry
	if err := bson.Unmarshal(raw, &entry); err != nil {
		t.Fatal(err)
	}
	if entry.Request.Headers["Authorization"] != redacted || entry.Request.Headers["User-Agent"] != "crawler" {
		t.Errorf("stored request headers = %v, want Authorization REDACTED and User-Agent kept", entry.Request.Headers)
	}
	if !strings.Contains(entry.Request.URL, "api_key=REDACTED") || strings.Contains(entry.URL, "api_key") {
		t.Errorf("stored url %q, request url %q; want api_key dropped and redacted", entry.URL, entry.Request.URL)
	}
}

func TestTransportByteIdenticalReplay(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("compressed text"))
	zw.Close()
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		wantString                  bool
	}{
		{"html", "text/html; charset=utf-8", "", []byte("<html>héllo wörld — ✓</html>\r\n"), true},
		{"json", "application/ld+json", "", []byte(`{"a": [1, 2]}`), true},
		{"binary", "image/png", "", binary, false},
		{"invalid utf-8 text", "text/html; charset=latin1", "", []byte("caf\xe9 na\xefve"), false},
		{"text with NUL", "text/plain", "", []byte("a\x00b"), false},
		{"utf-8 without content type", "", "", []byte("plain words"), false},
		{"gzip kept encoded", "text/plain", "gzip", gz.Bytes(), false},
		{"empty", "text/plain", "", nil, false},
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		for _, tc := range tests {
			if r.URL.Path == "/"+strings.ReplaceAll(tc.name, " ", "-") {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				} else {
					w.Header()["Content-Type"] = nil // no sniffing
				}
				if tc.encoding != "" {
					w.Header().Set("Content-Encoding", tc.encoding)
				}
				w.Write(tc.body)
			}
		}
	})
	e := newTransportEnv(t, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := o.URL + "/" + strings.ReplaceAll(tc.name, " ", "-")
			// An explicit Accept-Encoding stops net/http from decoding gzip.
			first := e.expectServed(url, ServedMiss, "Accept-Encoding", "gzip")
			if !bytes.Equal(first, tc.body) {
				t.Fatalf("network body = %q, want %q", first, tc.body)
			}
			replay := e.expectServed(url, ServedHit, "Accept-Encoding", "gzip")
			if !bytes.Equal(replay, tc.body) {
				t.Errorf("replayed body = %q, want %q", replay, tc.body)
			}
			var entry Entry
			if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, keyOf(t, url, Policy{})), &entry); err != nil {
				t.Fatal(err)
			}
			if _, isString := entry.Body.(string); isString != tc.wantString {
				t.Errorf("stored body type %T, want string: %v", entry.Body, tc.wantString)
			}
		})
	}
}

func TestTransportRedirectChainReplaysOffline(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "/moved", http.StatusFound) // 302: not stored as a response
		case "/moved":
			http.Redirect(w, r, "/final", http.StatusMovedPermanently) // 301: stored
		case "/final":
			io.WriteString(w, "final page")
		}
	})
	e := newTransportEnv(t, Options{})
	client := &http.Client{Transport: e.tr}
	fetch := func(ctx context.Context) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+"/start", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if _, body := fetch(context.Background()); body != "final page" {
		t.Fatalf("first crawl body = %q", body)
	}
	if n := o.requests.Load(); n != 3 {
		t.Fatalf("origin requests = %d, want 3", n)
	}
	resp, body := fetch(WithOnlyIfCached(context.Background()))
	if body != "final page" || resp.Request.URL.Path != "/final" || Served(resp) != ServedHit {
		t.Errorf("replay: body %q at %s served %q, want the final page, hit", body, resp.Request.URL.Path, Served(resp))
	}
	if n := o.requests.Load(); n != 3 {
		t.Errorf("origin requests after replay = %d, want still 3", n)
	}
	var rd Redirect
	raw := e.rawDoc(RedirectsCollection, keyOf(t, o.URL+"/start", Policy{}))
	if err := bson.Unmarshal(raw, &rd); err != nil {
		t.Fatalf("redirect document: %v", err)
	}
	if rd.Target != keyOf(t, o.URL+"/moved", Policy{}) || rd.Status != 302 || rd.Location != "/moved" {
		t.Errorf("redirect = %+v, want 302 to /moved with its key", rd)
	}
}

// TestReadmeQueries runs the mongosh examples of docs/readme/cache.md,
// through the driver, against the embedded server.
func TestReadmeQueries(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			http.NotFound(w, r)
		case "/sold":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<p>Out of stock</p>")
		default:
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<p>in stock</p>")
		}
	})
	e := newTransportEnv(t, Options{})
	for _, p := range []string{"/gone", "/sold", "/ok"} {
		e.get(nil, o.URL+p)
	}
	coll := e.db.Collection(ResponsesCollection)
	urls := func(filter bson.D) []string {
		var docs []Entry
		if err := coll.All(context.Background(), filter, store.FindOptions{}, &docs); err != nil {
			t.Fatalf("find %v: %v", filter, err)
		}
		var out []string
		for _, d := range docs {
			out = append(out, strings.TrimPrefix(d.URL, o.URL))
		}
		return out
	}
	if got := urls(bson.D{{Key: "status", Value: 404}}); len(got) != 1 || got[0] != "/gone" {
		t.Errorf("cached 404s = %v, want [/gone]", got)
	}
	filter := bson.D{
		{Key: "content_type", Value: bson.Regex{Pattern: `^text/html`}},
		{Key: "body", Value: bson.Regex{Pattern: "out of stock", Options: "i"}},
	}
	if got := urls(filter); len(got) != 1 || got[0] != "/sold" {
		t.Errorf("HTML pages matching /out of stock/i = %v, want [/sold]", got)
	}
}

func TestTransportMatchHeaders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "lang "+r.Header.Get("Accept-Language"))
	})
	e := newTransportEnv(t, Options{Policy: Policy{MatchHeaders: []string{"Accept-Language"}}})
	for i, st := range []struct{ lang, want string }{
		{"de", ServedMiss}, {"en", ServedMiss}, {"de", ServedHit}, {"en", ServedHit},
	} {
		resp, body := e.get(nil, o.URL+"/m", "Accept-Language", st.lang)
		if Served(resp) != st.want || string(body) != "lang "+st.lang {
			t.Errorf("step %d (%s): served %q body %q, want %q", i, st.lang, Served(resp), body, st.want)
		}
	}
}

func TestDecodeResponseMergesRevalidation(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entry := &Entry{
		ID: "k", URL: "https://e.org/", Method: "GET", Status: 200, Proto: "HTTP/1.1",
		Headers: bson.M{"Content-Type": "text/plain", "Etag": `"1"`, "X-Two": bson.A{"a", "b"}},
		Body:    "hello", Size: 5, CreatedAt: created, ValidatedAt: created,
	}
	tests := []struct {
		name     string
		rev      *Revalidation
		wantETag string
	}{
		{"no revalidation", nil, `"1"`},
		{"newer revalidation merges", &Revalidation{ID: "k", ValidatedAt: created.Add(time.Hour), Headers: bson.M{"Etag": `"2"`, "Content-Type": "text/html"}}, `"2"`},
		{"older revalidation ignored", &Revalidation{ID: "k", ValidatedAt: created.Add(-time.Hour), Headers: bson.M{"Etag": `"0"`}}, `"1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := DecodeResponse(entry, tc.rev, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "hello" || resp.StatusCode != 200 || resp.Header.Get("Etag") != tc.wantETag {
				t.Errorf("got %d %q ETag %q, want 200 hello %s", resp.StatusCode, body, resp.Header.Get("Etag"), tc.wantETag)
			}
			if resp.Header.Get("Content-Type") != "text/plain" || len(resp.Header.Values("X-Two")) != 2 {
				t.Errorf("headers %v: Content-Type must not be merged from a 304, X-Two keeps both values", resp.Header)
			}
		})
	}
	bad := *entry
	bad.Size = 4
	if _, err := DecodeResponse(&bad, nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("size mismatch: err = %v, want ErrCorrupt", err)
	}
}

func TestTransportCompressBodies(t *testing.T) {
	page := strings.Repeat("<p>compressible text</p>\n", 200)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/small" {
			io.WriteString(w, "<p>tiny</p>")
			return
		}
		io.WriteString(w, page)
	})
	s := openTestStore(t)
	writer := newTransportEnvOn(t, s, Options{CompressBodies: true})
	reader := newTransportEnvOn(t, s, Options{}) // reads what the other wrote
	tests := []struct {
		path, body, wantEncoding string
	}{
		{"/page", page, "gzip"},
		{"/small", "<p>tiny</p>", ""},
	}
	for _, tc := range tests {
		writer.expectServed(o.URL+tc.path, ServedMiss)
		for name, e := range map[string]*transportEnv{"writer": writer, "reader": reader} {
			if got := e.expectServed(o.URL+tc.path, ServedHit); string(got) != tc.body {
				t.Errorf("%s replay of %s: %d bytes, want %d identical bytes", name, tc.path, len(got), len(tc.body))
			}
		}
		var entry Entry
		if err := bson.Unmarshal(writer.rawDoc(ResponsesCollection, keyOf(t, o.URL+tc.path, Policy{})), &entry); err != nil {
			t.Fatal(err)
		}
		if entry.BodyEncoding != tc.wantEncoding || entry.Size != int64(len(tc.body)) {
			t.Errorf("%s stored with body_encoding %q size %d, want %q %d", tc.path, entry.BodyEncoding, entry.Size, tc.wantEncoding, len(tc.body))
		}
	}
}

// TestTransportKeepsUncompressed: net/http decodes a gzip Content-Encoding
// and says so in Response.Uncompressed; colly gunzips *.xml.gz bodies
// unless that flag is set, so a replay must carry it.
func TestTransportKeepsUncompressed(t *testing.T) {
	const xml = "<urlset><url><loc>https://e.org/</loc></url></urlset>"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, xml)
		zw.Close()
	})
	e := newTransportEnv(t, Options{})
	for _, want := range []string{ServedMiss, ServedHit} {
		resp, body := e.get(nil, o.URL+"/sitemap.xml.gz")
		if Served(resp) != want || !resp.Uncompressed || string(body) != xml {
			t.Errorf("%s: Uncompressed %v body %q, want true and the decoded XML", Served(resp), resp.Uncompressed, body)
		}
	}
}
