package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/PuerkitoBio/goquery"
	"github.com/andybalholm/cascadia"
)

// extractVersion changes when Extract would give other values for the same
// page and spec (a fix in text collapsing, URL resolution, …): stored parse
// results made by an older version are then not reused.
const extractVersion = 1

// specRules is a digest of everything that decides an extractor's items.
func specRules(spec ExtractSpec) string {
	b, _ := json.Marshal(struct {
		V    int
		Spec ExtractSpec
	}{extractVersion, spec})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Rules returns a digest of the extract spec (and of the extraction code's
// version): two extractors with the same Rules give the same items for the
// same page. A stored parse result is reused only under the same Rules.
func (e *Extractor) Rules() string { return e.rules }

// storedItems builds p's items from fields stored by an earlier parse:
// the same items, in the same order, with this page's run, URL, fetch time
// and served value.
func storedItems(p Page, stored [][]KV) []Item {
	items := make([]Item, len(stored))
	for i, fields := range stored {
		items[i] = Item{
			ID: ItemID(p.RunID, p.URL, i), RunID: p.RunID, Job: p.Job, URL: p.URL, Index: i,
			FetchedAt: p.FetchedAt, Served: p.Served, Fields: fields,
		}
	}
	return items
}

// LinkFinder finds the values of the href (else src) attributes of the
// elements that CSS selectors match, with goquery, for follow selectors
// that need a parse tree. It is safe for concurrent use.
type LinkFinder struct {
	sels []cascadia.Selector // nil entries match nothing
}

// NewLinkFinder compiles sels once. A selector that does not compile
// matches nothing, as colly's OnHTML does with it.
func NewLinkFinder(sels []string) *LinkFinder {
	f := &LinkFinder{}
	for _, s := range sels {
		c, err := cascadia.Compile(s)
		if err != nil {
			c = nil
		}
		f.sels = append(f.sels, c)
	}
	return f
}

// Find returns, selector by selector and in document order, the non-empty
// href (else src) values of the elements of p's body that match, and the
// document's <base href> value (empty when there is none). Values are not
// resolved. A page that is not HTML has none; the error is a page the
// parser refuses.
func (f *LinkFinder) Find(p Page) (values []string, base string, err error) {
	if !isHTML(p) {
		return nil, "", nil
	}
	r, err := utf8Reader(p.Body, p.Header.Get("Content-Type"))
	if err != nil {
		return nil, "", err
	}
	doc, err := goquery.NewDocumentFromReader(r)
	if err != nil {
		return nil, "", err
	}
	if href, ok := doc.FindMatcher(baseHref).Attr("href"); ok {
		base = href
	}
	for _, sel := range f.sels {
		if sel == nil {
			continue
		}
		doc.FindMatcher(sel).Each(func(_ int, s *goquery.Selection) {
			v, _ := s.Attr("href")
			if v == "" {
				v, _ = s.Attr("src")
			}
			if v != "" {
				values = append(values, v)
			}
		})
	}
	return values, base, nil
}

// WithoutElements returns the HTML of p's body with every element that one
// of sels matches removed (rendered again from the parse tree), for
// comparing two versions of a page while ignoring parts that change on
// every request (timestamps, nonces, ads). A selector that does not
// compile removes nothing. A page that is not HTML, or that the parser
// refuses, is returned as it is.
func WithoutElements(p Page, sels []string) []byte {
	if !isHTML(p) || len(sels) == 0 {
		return p.Body
	}
	r, err := utf8Reader(p.Body, p.Header.Get("Content-Type"))
	if err != nil {
		return p.Body
	}
	doc, err := goquery.NewDocumentFromReader(r)
	if err != nil {
		return p.Body
	}
	for _, s := range sels {
		if sel, err := cascadia.Compile(s); err == nil {
			doc.FindMatcher(sel).Remove()
		}
	}
	out, err := goquery.OuterHtml(doc.Selection)
	if err != nil {
		return p.Body
	}
	return []byte(out)
}
