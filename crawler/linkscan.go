package crawler

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"

	whatwg "github.com/nlnwa/whatwg-url/url"
	"golang.org/x/net/html"
)

// A page's links are found with x/net/html's tokenizer, without building
// its parse tree, when every follow selector is simple (tag or tag[attr],
// and comma-separated lists of those, such as the default a[href]) and
// names an element the tree builder keeps where it is written: the tree
// of a 20 MB page of a million links takes about 360 MB, the tokenizer a
// few kilobytes. The results are the same: href, else src, of each
// matching element, selector by selector in document order, resolved
// against the first <base href> with colly's URL parser. A first pass
// over the page looks for what the tree builder would move, drop, rename
// or read differently (see needsTree); such a page is parsed. Other
// selectors ([href], div a, a[href^=http], ...) always go through a
// parsed document.

// tokenTags are the elements a simple selector may name for the
// tokenizer: where needsTree finds nothing, the tree builder keeps them
// in the tree, in document order, with their attributes as written.
var tokenTags = map[string]bool{
	"a": true, "area": true, "link": true, "img": true, "script": true, "iframe": true,
	"embed": true, "source": true, "track": true, "audio": true, "video": true,
}

// simpleSel is one simple selector; an empty field matches anything.
type simpleSel struct{ tag, attr string }

var simpleSelRE = regexp.MustCompile(`^(\*|[a-zA-Z][a-zA-Z0-9-]*)?(?:\[([a-zA-Z_:][-a-zA-Z0-9_:.]*)\])?$`)

// parseSimpleFollow returns the selectors as groups of simple selectors
// (one group per selector, one element per comma-separated part), or false
// when one of them needs a parsed document: a CSS engine, or a tag
// outside tokenTags (a selector without a tag included).
func parseSimpleFollow(sels []string) ([][]simpleSel, bool) {
	var groups [][]simpleSel
	for _, sel := range sels {
		var g []simpleSel
		for _, part := range strings.Split(sel, ",") {
			part = strings.TrimSpace(part)
			m := simpleSelRE.FindStringSubmatch(part)
			if part == "" || m == nil || !tokenTags[strings.ToLower(m[1])] {
				return nil, false
			}
			g = append(g, simpleSel{tag: strings.ToLower(m[1]), attr: strings.ToLower(m[2])})
		}
		groups = append(groups, g)
	}
	return groups, true
}

// colly's URL parser, with colly's options, so links resolve identically.
var linkParser = whatwg.NewParser(whatwg.WithPercentEncodeSinglePercentSign())

// isHTML applies colly's test for parsing a body as HTML.
func isHTML(h http.Header, body []byte) bool {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "text/html" || mt == "application/xhtml+xml"
}

// scanLinks calls yield with the absolute URL of every link of body (the
// page at pageURL) that groups select, until yield returns false. It
// returns false, before yielding anything, when the page needs its parse
// tree to find the same links (needsTree).
func scanLinks(body []byte, pageURL string, groups [][]simpleSel, yield func(string) bool) bool {
	href, hasBase, tree := readPage(body)
	if tree {
		return false
	}
	base, err := linkParser.Parse(pageURL)
	if err != nil {
		return true
	}
	if hasBase {
		if u, err := base.Parse(href); err == nil {
			if b, err := linkParser.Parse(u.Href(false)); err == nil {
				base = b
			}
		}
	}
	for _, g := range groups {
		z := html.NewTokenizer(bytes.NewReader(body))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				break
			}
			if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
				continue
			}
			v, ok := matchLink(z, g)
			if !ok || v == "" || strings.HasPrefix(v, "#") {
				continue
			}
			u, err := base.Parse(v)
			if err != nil {
				continue
			}
			if !yield(u.Href(false)) {
				return true
			}
		}
	}
	return true
}

// matchLink reads the current tag's attributes and returns its href (else
// src) if some selector of g matches it.
func matchLink(z *html.Tokenizer, g []simpleSel) (string, bool) {
	name, hasAttr := z.TagName()
	tag := string(name)
	var attrs [][2]string
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		key := string(k)
		if key == "href" || key == "src" || selAttr(g, key) {
			attrs = append(attrs, [2]string{key, string(v)})
		}
	}
	matched := false
	for _, s := range g {
		if s.tag != "" && s.tag != tag {
			continue
		}
		if s.attr == "" || hasKey(attrs, s.attr) {
			matched = true
			break
		}
	}
	if !matched {
		return "", false
	}
	if v := attrValue(attrs, "href"); v != "" {
		return v, true
	}
	return attrValue(attrs, "src"), true
}

func selAttr(g []simpleSel, key string) bool {
	for _, s := range g {
		if s.attr == key {
			return true
		}
	}
	return false
}

func hasKey(attrs [][2]string, key string) bool {
	for _, a := range attrs {
		if a[0] == key {
			return true
		}
	}
	return false
}

// attrValue is the first value of key, as goquery's Attr returns it.
func attrValue(attrs [][2]string, key string) string {
	for _, a := range attrs {
		if a[0] == key {
			return a[1]
		}
	}
	return ""
}
