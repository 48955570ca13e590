package crawler

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"crawlcache/frontier"
)

func TestFilterLinks(t *testing.T) {
	c := &crawl{opts: Options{
		MaxDepth: 3,
		Include:  []*regexp.Regexp{regexp.MustCompile(`^https?://[^/]+/(docs|$)`)},
		Exclude:  []*regexp.Regexp{regexp.MustCompile(`\.pdf$`)},
	}}
	var err error
	if c.allowed, err = allowedDomains([]string{"Example.org", "localhost:8080"}, nil); err != nil {
		t.Fatal(err)
	}
	parent := frontier.Entry{URL: "http://example.org/docs/", Depth: 1}
	raws := []string{
		"http://example.org/docs/a#top",        // fragment dropped
		"http://example.org/docs/a",            // duplicate after normalization
		"HTTP://EXAMPLE.ORG:80/docs/b?z=1&a=2", // normalized: scheme, host, port, query order
		"http://www.example.org/docs/c",        // subdomain
		"http://example.org/blog/x",            // not included
		"http://example.org/docs/x.pdf",        // excluded
		"http://other.org/docs/",               // other domain
		"http://localhost:8080/docs/",          // allowed with its port
		"http://localhost:9090/docs/",          // other port
		"mailto:someone@example.org",           // not http
		"ftp://example.org/docs/",              // not http
	}
	got := c.filterLinks(parent, raws)
	want := []string{
		"http://example.org/docs/a",
		"http://example.org/docs/b?a=2&z=1",
		"http://www.example.org/docs/c",
		"http://localhost:8080/docs/",
	}
	if len(got) != len(want) {
		t.Fatalf("filterLinks = %v, want %v", got, want)
	}
	for i, l := range got {
		if l.URL != want[i] || l.Depth != 2 || l.Parent != parent.URL {
			t.Errorf("link %d = %+v, want URL %s depth 2 parent %s", i, l, want[i], parent.URL)
		}
		if u, _ := url.Parse(l.URL); l.Host != u.Host {
			t.Errorf("link %d host = %q, want %q", i, l.Host, u.Host)
		}
	}
	if got := c.filterLinks(frontier.Entry{URL: "http://example.org/", Depth: 3}, raws); len(got) != 0 {
		t.Errorf("links below max depth: got %v, want none", got)
	}
}

func TestAllowedDomainsDefaultsToSeeds(t *testing.T) {
	got, err := allowedDomains(nil, []string{"https://Docs.Example.org:8443/start", "http://127.0.0.1:3000/"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docs.example.org", "127.0.0.1"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("allowedDomains = %v, want %v", got, want)
	}
	if _, err := allowedDomains(nil, []string{"not a url"}); err == nil {
		t.Errorf("allowedDomains with a relative seed: got nil error")
	}
}

func TestUTF8Header(t *testing.T) {
	tests := []struct{ in, want string }{
		{"text/html; charset=iso-8859-1", "text/html; charset=utf-8"},
		{"text/html; charset=UTF-8", "text/html; charset=UTF-8"},
		{"text/html", "text/html"},
		{"image/png; charset=latin1", "image/png; charset=latin1"},
		{"", ""},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.in != "" {
			h.Set("Content-Type", tt.in)
		}
		if got := utf8Header(h).Get("Content-Type"); got != tt.want {
			t.Errorf("utf8Header(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if h.Get("Content-Type") != tt.in {
			t.Errorf("utf8Header modified its argument")
		}
	}
}
