package sitemap

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const urlset = `<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc>https://shop.example/a</loc><lastmod>2026-11-30</lastmod></url>
  <url>
    <loc> https://shop.example/b?x=1&amp;y=2 </loc>
    <lastmod>2026-12-01T10:30:00+01:00</lastmod>
    <image:image><image:loc>https://cdn.example/b.png</image:loc></image:image>
  </url>
  <url><loc>/relative/c</loc><lastmod>not a date</lastmod></url>
  <url><loc>ftp://shop.example/d</loc></url>
  <url><lastmod>2026-01-01</lastmod></url>
</urlset>`

func TestParse(t *testing.T) {
	base := mustURL(t, "https://shop.example/sitemap.xml")
	index := `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://shop.example/s1.xml.gz</loc><lastmod>2026-12</lastmod></sitemap>
<sitemap><loc>s2.xml</loc></sitemap></sitemapindex>`
	cases := []struct {
		name          string
		body          []byte
		kind          Kind
		want          []Entry
		skipped, rels int
	}{
		{
			name: "urlset with extension and bad entries",
			body: []byte(urlset), kind: URLSet,
			want: []Entry{
				{"https://shop.example/a", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
				{"https://shop.example/b?x=1&y=2", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)},
				{"https://shop.example/relative/c", time.Time{}},
			},
			skipped: 2, rels: 1,
		},
		{
			name: "gzipped urlset", body: gz(t, []byte(urlset)), kind: URLSet,
			want: []Entry{
				{"https://shop.example/a", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
				{"https://shop.example/b?x=1&y=2", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)},
				{"https://shop.example/relative/c", time.Time{}},
			},
			skipped: 2, rels: 1,
		},
		{
			name: "index", body: []byte(index), kind: Index,
			want: []Entry{
				{"https://shop.example/s1.xml.gz", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
				{"https://shop.example/s2.xml", time.Time{}},
			},
			rels: 1,
		},
		{
			name: "no namespace is accepted", kind: URLSet,
			body: []byte(`<urlset><url><loc>https://shop.example/x</loc></url></urlset>`),
			want: []Entry{{"https://shop.example/x", time.Time{}}},
		},
		{
			name: "text with BOM and blank lines", kind: Text,
			body:    []byte("\ufeffhttps://shop.example/1\n\n  https://shop.example/2  \r\nmailto:x@example.org\n"),
			want:    []Entry{{"https://shop.example/1", time.Time{}}, {"https://shop.example/2", time.Time{}}},
			skipped: 1,
		},
		{
			name: "loc in another namespace is not a page", kind: URLSet,
			body: []byte(`<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:o="urn:other">
<url><o:loc>https://evil.example/</o:loc><loc>https://shop.example/ok</loc></url><o:url><loc>https://evil.example/2</loc></o:url></urlset>`),
			want: []Entry{{"https://shop.example/ok", time.Time{}}},
		},
		{
			name: "overlong loc skipped", kind: URLSet,
			body:    []byte(`<urlset><url><loc>https://shop.example/` + strings.Repeat("a", 10000) + `</loc></url></urlset>`),
			skipped: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := Parse(bytes.NewReader(tc.body), base)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if sm.Kind != tc.kind {
				t.Errorf("kind = %v, want %v", sm.Kind, tc.kind)
			}
			if len(sm.Entries) != len(tc.want) {
				t.Fatalf("entries = %v, want %v", sm.Entries, tc.want)
			}
			for i, e := range sm.Entries {
				if e.Loc != tc.want[i].Loc || !e.LastMod.Equal(tc.want[i].LastMod) {
					t.Errorf("entry %d = %v, want %v", i, e, tc.want[i])
				}
			}
			if sm.Skipped != tc.skipped || sm.Relative != tc.rels {
				t.Errorf("skipped, relative = %d, %d; want %d, %d", sm.Skipped, sm.Relative, tc.skipped, tc.rels)
			}
		})
	}
}

// TestParseHostile feeds files meant to hurt a parser: each must fail with
// the named error, quickly and without reading past the limits.
func TestParseHostile(t *testing.T) {
	base := mustURL(t, "https://shop.example/sitemap.xml")
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<urlset><url><loc>https://shop.example/&lol3;</loc></url></urlset>`
	xxe := `<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://shop.example/ok</loc></url><url><loc>https://shop.example/&xxe;</loc></url></urlset>`
	// Checked against limits of 256 KiB and 1,000 URLs, to stay fast under
	// the race detector; TestParseProtocolLimits uses the real ones.
	setLimit(t, 256<<10)
	setMaxURLs(t, 1000)
	many := manyURLs(maxURLs + 10)
	bomb := gz(t, bytes.Repeat([]byte{' '}, 2<<20)) // 2 MiB of spaces in a few KB
	huge := append([]byte(`<urlset><url><loc>https://shop.example/1</loc></url>`), bytes.Repeat([]byte("<!-- padding -->"), (256<<10)/16+1)...)
	badGzip := gz(t, []byte(urlset))
	badGzip = badGzip[:len(badGzip)/2]
	cases := []struct {
		name    string
		body    []byte
		want    error
		entries int // kept before the problem
	}{
		{"entity expansion (billion laughs)", []byte(laughs), ErrMalformed, 0},
		{"external entity (XXE)", []byte(xxe), ErrMalformed, 1},
		{"more URLs than the limit", many, ErrTooManyURLs, 1000},
		{"gzip bomb over the limit", bomb, ErrTooLarge, 0},
		{"plain file over the limit", huge, ErrTooLarge, 1},
		{"truncated gzip", badGzip, ErrMalformed, 0},
		{"not gzip after magic", []byte{0x1f, 0x8b, 0, 0, 0}, ErrMalformed, 0},
		{"html page", []byte(`<!doctype html><html><body><a href="/x">x</a></body></html>`), ErrNotSitemap, 0},
		{"urlset in a foreign namespace", []byte(`<urlset xmlns="http://evil.example/ns"><url><loc>https://shop.example/</loc></url></urlset>`), ErrNotSitemap, 0},
		{"rss feed", []byte(`<rss version="2.0"><channel><link>https://shop.example/</link></channel></rss>`), ErrNotSitemap, 0},
		{"unclosed element", []byte(`<urlset><url><loc>https://shop.example/a</loc></url><url><loc>https://shop.example/b`), ErrMalformed, 1},
		{"empty file", nil, ErrMalformed, 0},
		{"latin-1 declared", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><urlset></urlset>`), ErrMalformed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := Parse(bytes.NewReader(tc.body), base)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if sm == nil {
				t.Fatal("nil sitemap")
			}
			if len(sm.Entries) != tc.entries {
				t.Errorf("entries kept = %d, want %d", len(sm.Entries), tc.entries)
			}
			for _, e := range sm.Entries {
				if strings.Contains(e.Loc, "lol") || strings.Contains(e.Loc, "passwd") {
					t.Errorf("entity expanded into %q", e.Loc)
				}
			}
		})
	}
}

// TestParseReadsAtMostTheLimit checks that an endless body is not read
// to its end.
func TestParseReadsAtMostTheLimit(t *testing.T) {
	setLimit(t, 256<<10)
	r := &countingReader{r: io.MultiReader(strings.NewReader("<urlset>"), endless{})}
	if _, err := Parse(r, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if r.n > maxBytes+64<<10 {
		t.Errorf("read %d bytes, want about %d", r.n, maxBytes)
	}
}

// manyURLs is a urlset of n URLs.
func manyURLs(n int) []byte {
	var b strings.Builder
	b.WriteString(`<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">`)
	for i := range n {
		fmt.Fprintf(&b, "<url><loc>https://shop.example/%d</loc></url>", i)
	}
	b.WriteString("</urlset>")
	return []byte(b.String())
}

// TestParseProtocolLimits checks the real limits: 50,000 URLs are read and
// the 50,001st is refused; a gzip bomb stops at 50 MiB of output.
func TestParseProtocolLimits(t *testing.T) {
	if raceEnabled {
		t.Skip("reads 50 MiB: too slow under the race detector (TestParseHostile checks the same code with lower limits)")
	}
	if sm, err := Parse(bytes.NewReader(manyURLs(MaxURLs)), nil); err != nil || len(sm.Entries) != MaxURLs {
		t.Errorf("50,000 URLs: %d entries, %v; want all, no error", len(sm.Entries), err)
	}
	if sm, err := Parse(bytes.NewReader(manyURLs(MaxURLs+1)), nil); !errors.Is(err, ErrTooManyURLs) || len(sm.Entries) != MaxURLs {
		t.Errorf("50,001 URLs: %d entries, %v; want 50,000 and ErrTooManyURLs", len(sm.Entries), err)
	}
	bomb := gz(t, bytes.Repeat([]byte{' '}, 60<<20))
	r := &countingReader{r: bytes.NewReader(bomb)}
	if _, err := Parse(r, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("60 MiB gzip bomb: %v, want ErrTooLarge", err)
	}
}

func setMaxURLs(t *testing.T, n int) {
	t.Helper()
	old := maxURLs
	maxURLs = n
	t.Cleanup(func() { maxURLs = old })
}

func setLimit(t *testing.T, n int64) {
	t.Helper()
	old := maxBytes
	maxBytes = n
	t.Cleanup(func() { maxBytes = old })
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestParseLastMod(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
	}{
		{"2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-12", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-12-03", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)},
		{"2026-12-03T10:00+02:00", time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)},
		{"2026-12-03T10:00:05Z", time.Date(2026, 12, 3, 10, 0, 5, 0, time.UTC)},
		{"2026-12-03T10:00:05.25-01:00", time.Date(2026, 12, 3, 11, 0, 5, 250e6, time.UTC)},
		{" 2026-12-03 ", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)},
		{"yesterday", time.Time{}},
		{"", time.Time{}},
	}
	for _, tc := range cases {
		if got := ParseLastMod(tc.in); !got.Equal(tc.want) {
			t.Errorf("ParseLastMod(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(urlset))
	f.Add([]byte("https://a.example/\n"))
	f.Add([]byte(`<sitemapindex><sitemap><loc>x</loc></sitemap></sitemapindex>`))
	base, _ := url.Parse("https://shop.example/sitemap.xml")
	f.Fuzz(func(t *testing.T, b []byte) {
		sm, _ := Parse(bytes.NewReader(b), base)
		if sm == nil {
			t.Fatal("nil sitemap")
		}
		if len(sm.Entries) > MaxURLs {
			t.Fatalf("%d entries", len(sm.Entries))
		}
		for _, e := range sm.Entries {
			u, err := url.Parse(e.Loc)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("entry %q is not an absolute http(s) URL", e.Loc)
			}
		}
	})
}
