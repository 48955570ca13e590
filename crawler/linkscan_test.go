package crawler

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gocolly/colly/v2"
)

// TestScanLinksMatchesColly checks that the tokenizer finds the same links,
// in the same order, as colly's parsed document does for the same simple
// selectors (no parse tree for a page of a million links).
func TestScanLinksMatchesColly(t *testing.T) {
	tests := []struct {
		name, page string
		follow     []string
	}{
		{"anchors", `<a href="/a">a</a><a href="b?x=1#f">b</a><a href="#top">t</a><a>no href</a><a href="">empty</a>`, []string{"a[href]"}},
		{"base href after a link", `<html><head><a href="early">e</a><base href="/sub/dir/"></head><body><a href="late">l</a><A HREF="UP">u</A></body></html>`, []string{"a[href]"}},
		{"src fallback and other tags", `<img src="i.png"><script src="s.js"></script><iframe src="f.html"></iframe><link href="c.css" rel=stylesheet><area href="m">`, []string{"img[src]", "script[src], link[href]", "area", "[src]"}},
		{"entities and absolute", `<a href="/q?a=1&amp;b=2">q</a><a href="http://other.example/x">o</a><a href="//cdn.example/y">c</a>`, []string{"a[href]"}},
		{"raw text elements", `<script>var s = '<a href="/in-script">';</script><noscript><a href="/in-noscript">n</a></noscript><textarea><a href="/in-textarea"></textarea><a href="/out">o</a>`, []string{"a[href]"}},
		{"star and attribute only", `<div data-x href="/d">d</div><span href="/s"></span>`, []string{"*[href]", "[data-x]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write([]byte(tt.page))
			}))
			defer srv.Close()
			groups, ok := parseSimpleFollow(tt.follow)
			if !ok {
				t.Fatalf("parseSimpleFollow(%q) = not simple", tt.follow)
			}
			col := colly.NewCollector(colly.AllowURLRevisit())
			var want []string
			for _, sel := range tt.follow {
				col.OnHTML(sel, func(e *colly.HTMLElement) {
					v := e.Attr("href")
					if v == "" {
						v = e.Attr("src")
					}
					if v == "" {
						return
					}
					if abs := e.Request.AbsoluteURL(v); abs != "" {
						want = append(want, abs)
					}
				})
			}
			if err := col.Visit(srv.URL + "/dir/page"); err != nil {
				t.Fatal(err)
			}
			var got []string
			scanLinks([]byte(tt.page), srv.URL+"/dir/page", groups, func(u string) bool {
				got = append(got, u)
				return true
			})
			if !slices.Equal(got, want) {
				t.Errorf("tokenizer links:\n got %q\nwant %q (colly)", got, want)
			}
		})
	}
}

func TestParseSimpleFollow(t *testing.T) {
	tests := []struct {
		sel    string
		simple bool
	}{
		{"a[href]", true}, {"a", true}, {"[src]", true}, {"*[href]", true}, {"a[href], link[href]", true},
		{"div a[href]", false}, {"a.next", false}, {"a[href^=http]", false}, {"a:not(.x)", false}, {"#id", false}, {"", false},
	}
	for _, tt := range tests {
		if _, got := parseSimpleFollow([]string{tt.sel}); got != tt.simple {
			t.Errorf("parseSimpleFollow(%q) simple = %v, want %v", tt.sel, got, tt.simple)
		}
	}
}

// FuzzScanLinks feeds the tokenizer hostile pages: it must not panic, and
// every link it yields must be an absolute http(s) or other scheme URL.
func FuzzScanLinks(f *testing.F) {
	for _, s := range []string{
		`<a href="/a">a</a><base href="//x/">`,
		`<a href='`, `<a href=">`, `<base href="javascript:alert(1)"><a href="x">`,
		`<A HREF=/Q?A=1&amp;B=2>`, `<svg><a href="/in-svg"/></svg>`, "<a href=\"\x00\xff\">",
	} {
		f.Add(s)
	}
	groups, _ := parseSimpleFollow([]string{"a[href]", "[src]"})
	f.Fuzz(func(t *testing.T, page string) {
		scanLinks([]byte(page), "http://example.org/dir/page", groups, func(u string) bool {
			if !strings.Contains(u, ":") {
				t.Errorf("link %q is not absolute", u)
			}
			return true
		})
	})
}
