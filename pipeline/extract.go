package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/PuerkitoBio/goquery"
	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/net/html/charset"
)

// Field says how to extract one value from a page or an item element.
//
// At most one of Attr, Text and HTML may be set; if none is, Text is
// implied.
type Field struct {
	// Name is the key of the value in the item. It must be unique within a
	// spec, must not be one of the metadata keys (_id, run_id, job, url,
	// index, fetched_at, served), start with '$' or contain '.'.
	Name string
	// CSS selects the elements, searched among the descendants of the item
	// element (or of the whole document without ExtractSpec.Item). Empty
	// selects the item element itself (or, without ExtractSpec.Item, the
	// whole document: its text, or its HTML).
	CSS string
	// Attr takes the value of this attribute. Elements without it are
	// skipped, so the value is the first matching element that has it.
	// href and src values are resolved against the page URL (or the
	// document's <base href>); a value that is not a URL is kept as is.
	Attr string
	// Text takes the element's text, trimmed and with every run of
	// whitespace collapsed to one space. The content of script, style,
	// template and noscript elements is left out.
	Text bool
	// HTML takes the element's inner HTML.
	HTML bool
	// All makes the value an array of every match (an empty array when
	// nothing matches). Without it the value is the first match, or null
	// when nothing matches.
	All bool
}

// ExtractSpec describes the items of a page.
type ExtractSpec struct {
	// Item, if set, is a CSS selector: every matching element gives one
	// item, and fields are searched inside it. If empty, every HTML page
	// gives exactly one item.
	Item string
	// Fields are extracted in this order, and kept in this order in items
	// and outputs.
	Fields []Field
}

type fieldMode int

const (
	modeText fieldMode = iota
	modeAttr
	modeHTML
)

// compiledField is a Field with its selector compiled.
type compiledField struct {
	name     string
	mode     fieldMode
	attr     string
	all      bool
	isURL    bool            // attr is href or src
	self     bool            // empty CSS: the item element itself
	matchAll goquery.Matcher // every candidate element
	first    goquery.Matcher // stops at the first candidate
	keep     func(*html.Node) bool
}

// Extractor turns pages into items. It is safe for concurrent use; build it
// once per job with NewExtractor.
type Extractor struct {
	item   goquery.Matcher // nil: one item per page
	fields []compiledField
	rules  string // see Rules
}

// NewExtractor validates spec and compiles its selectors once. The error
// names the offending field (or the item selector).
func NewExtractor(spec ExtractSpec) (*Extractor, error) {
	e := &Extractor{rules: specRules(spec)}
	if spec.Item != "" {
		sel, err := cascadia.Compile(spec.Item)
		if err != nil {
			return nil, fmt.Errorf("extract item selector %q: %w", spec.Item, err)
		}
		e.item = sel
	}
	seen := make(map[string]bool, len(spec.Fields))
	for i, f := range spec.Fields {
		cf, err := compileField(f)
		if err != nil {
			if f.Name == "" {
				return nil, fmt.Errorf("extract field #%d: %w", i+1, err)
			}
			return nil, fmt.Errorf("extract field %q: %w", f.Name, err)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("extract field %q: defined twice", f.Name)
		}
		seen[f.Name] = true
		e.fields = append(e.fields, cf)
	}
	return e, nil
}

func compileField(f Field) (compiledField, error) {
	switch {
	case f.Name == "":
		return compiledField{}, errors.New("name is empty")
	case slices.Contains(reservedKeys, f.Name):
		return compiledField{}, fmt.Errorf("name is reserved for item metadata (%s)", strings.Join(reservedKeys, ", "))
	case strings.HasPrefix(f.Name, "$") || strings.Contains(f.Name, "."):
		return compiledField{}, errors.New("name must not start with '$' or contain '.'")
	}
	cf := compiledField{name: f.Name, all: f.All}
	modes := 0
	if f.Text {
		modes++
	}
	if f.Attr != "" {
		modes++
		cf.mode = modeAttr
		cf.attr = strings.ToLower(f.Attr)
		cf.isURL = cf.attr == "href" || cf.attr == "src"
	}
	if f.HTML {
		modes++
		cf.mode = modeHTML
	}
	if modes > 1 {
		return compiledField{}, errors.New("text, attr and html are mutually exclusive")
	}
	if f.CSS == "" {
		cf.self = true
		cf.keep = func(*html.Node) bool { return true }
		if cf.mode == modeAttr {
			cf.keep = func(n *html.Node) bool { return hasAttr(n, cf.attr) }
		}
		return cf, nil
	}
	sel, err := cascadia.Compile(f.CSS)
	if err != nil {
		return compiledField{}, fmt.Errorf("css %q: %w", f.CSS, err)
	}
	if cf.mode == modeAttr {
		// Skip elements without the attribute inside the matcher, so that
		// the single-match fast path still finds the first useful element.
		base, attr := sel, cf.attr
		sel = cascadia.Selector(func(n *html.Node) bool { return base(n) && hasAttr(n, attr) })
	}
	cf.matchAll = sel
	cf.first = goquery.SingleMatcher(sel)
	return cf, nil
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == name {
			return true
		}
	}
	return false
}

// Extract returns the items of p. Pages that are not HTML (by Content-Type,
// or by sniffing the body when there is none) and pages whose Status is not
// 2xx give no items and no error. Broken HTML is parsed the way browsers
// do; the only error is for HTML the parser rejects (elements nested more
// than 512 deep). Non-UTF-8 pages are decoded using their declared charset.
func (e *Extractor) Extract(p Page) ([]Item, error) {
	if p.Stored != nil && (p.Status == 0 || (p.Status >= 200 && p.Status <= 299)) {
		// Stored fields come from an earlier parse of this very body, an
		// HTML page then: the page may come without its body and headers
		// (a fresh hit finished from the cache's page summary).
		return storedItems(p, p.Stored), nil
	}
	if !isHTML(p) {
		return nil, nil
	}
	r, err := utf8Reader(p.Body, p.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("extract %s: decode charset: %w", p.URL, err)
	}
	doc, err := goquery.NewDocumentFromReader(r)
	if err != nil {
		return nil, fmt.Errorf("extract %s: parse html: %w", p.URL, err)
	}
	b := &baseURL{doc: doc, page: p.URL}
	var roots []*goquery.Selection
	if e.item == nil {
		roots = []*goquery.Selection{doc.Selection}
	} else {
		matches := doc.FindMatcher(e.item)
		roots = make([]*goquery.Selection, matches.Length())
		for i := range roots {
			roots[i] = matches.Eq(i)
		}
	}
	items := make([]Item, 0, len(roots))
	for i, root := range roots {
		it := Item{
			ID:        ItemID(p.RunID, p.URL, i),
			RunID:     p.RunID,
			Job:       p.Job,
			URL:       p.URL,
			Index:     i,
			FetchedAt: p.FetchedAt,
			Served:    p.Served,
			Fields:    make([]KV, len(e.fields)),
		}
		for j := range e.fields {
			f := &e.fields[j]
			it.Fields[j] = KV{Key: f.name, Value: f.extract(root, b)}
		}
		items = append(items, it)
	}
	return items, nil
}

// extract returns the field's value within root.
func (f *compiledField) extract(root *goquery.Selection, b *baseURL) any {
	var sel *goquery.Selection
	switch {
	case f.self:
		sel = root.FilterFunction(func(_ int, s *goquery.Selection) bool { return f.keep(s.Nodes[0]) })
	case f.all:
		sel = root.FindMatcher(f.matchAll)
	default:
		sel = root.FindMatcher(f.first)
	}
	if !f.all {
		if sel.Length() == 0 {
			return nil
		}
		return f.value(sel.Nodes[0], b)
	}
	out := make([]string, 0, sel.Length())
	for _, n := range sel.Nodes {
		out = append(out, f.value(n, b))
	}
	return out
}

func (f *compiledField) value(n *html.Node, b *baseURL) string {
	switch f.mode {
	case modeAttr:
		v := attrValue(n, f.attr)
		if f.isURL {
			v = b.resolve(v)
		}
		return v
	case modeHTML:
		return innerHTML(n)
	default:
		return collapsedText(n)
	}
}

func attrValue(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == name {
			return a.Val
		}
	}
	return ""
}

// innerHTML renders n's children. Rendering a parsed tree does not fail
// except on a writer error, which a strings.Builder never returns.
func innerHTML(n *html.Node) string {
	var sb strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		_ = html.Render(&sb, c)
	}
	return sb.String()
}

// collapsedText returns the text under n, trimmed, with runs of whitespace
// collapsed to one space. Block elements and <br> separate words (as they
// do on screen); the content of script, style, template and noscript is
// left out.
func collapsedText(n *html.Node) string {
	var sb strings.Builder
	pending := false // whitespace seen since the last word
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			for _, r := range n.Data {
				if unicode.IsSpace(r) {
					pending = true
					continue
				}
				if pending && sb.Len() > 0 {
					sb.WriteByte(' ')
				}
				pending = false
				sb.WriteRune(r)
			}
			return
		case html.ElementNode:
			if skipText[n.DataAtom] {
				return
			}
			if blockText[n.DataAtom] {
				pending = true
				defer func() { pending = true }()
			}
		case html.CommentNode, html.DoctypeNode:
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return sb.String()
}

// skipText are elements whose content is not text a reader sees.
var skipText = map[atom.Atom]bool{atom.Script: true, atom.Style: true, atom.Template: true, atom.Noscript: true}

// blockText are elements that separate words when rendered.
var blockText = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true, atom.Br: true,
	atom.Dd: true, atom.Div: true, atom.Dl: true, atom.Dt: true, atom.Figcaption: true, atom.Figure: true,
	atom.Footer: true, atom.Form: true, atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true,
	atom.H5: true, atom.H6: true, atom.Header: true, atom.Hr: true, atom.Li: true, atom.Main: true,
	atom.Nav: true, atom.Ol: true, atom.P: true, atom.Pre: true, atom.Section: true, atom.Table: true,
	atom.Td: true, atom.Th: true, atom.Tr: true, atom.Ul: true, atom.Option: true,
}

// baseURL resolves relative URLs against the document's <base href>, or
// the page URL; it is computed on first use.
type baseURL struct {
	doc  *goquery.Document
	page string
	done bool
	u    *url.URL
}

func (b *baseURL) resolve(v string) string {
	v = strings.TrimSpace(v)
	if !b.done {
		b.done = true
		b.u, _ = url.Parse(b.page)
		if href, ok := b.doc.FindMatcher(baseHref).Attr("href"); ok && b.u != nil {
			if bu, err := b.u.Parse(strings.TrimSpace(href)); err == nil {
				b.u = bu
			}
		}
	}
	if b.u == nil {
		return v
	}
	ref, err := b.u.Parse(v)
	if err != nil {
		return v
	}
	return ref.String()
}

var baseHref = goquery.SingleMatcher(cascadia.MustCompile("base[href]"))

// isHTML reports whether p should be parsed: a 2xx (or unknown) status and
// an HTML media type, sniffed from the body when no Content-Type is given.
func isHTML(p Page) bool {
	if p.Status != 0 && (p.Status < 200 || p.Status > 299) {
		return false
	}
	ct := p.Header.Get("Content-Type")
	if ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			return mt == "text/html" || mt == "application/xhtml+xml"
		}
	}
	return strings.HasPrefix(http.DetectContentType(p.Body), "text/html")
}

// utf8Reader returns body as UTF-8. Valid UTF-8 without a UTF-16 byte
// order mark is used as is (most pages, and no copy); anything else is
// decoded by the HTML encoding rules (BOM, Content-Type charset, <meta>,
// then windows-1252).
func utf8Reader(body []byte, contentType string) (io.Reader, error) {
	if utf8.Valid(body) && !bytes.HasPrefix(body, []byte{0xFE, 0xFF}) && !bytes.HasPrefix(body, []byte{0xFF, 0xFE}) {
		return bytes.NewReader(body), nil
	}
	return charset.NewReader(bytes.NewReader(body), contentType)
}
