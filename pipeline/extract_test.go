package pipeline

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const listingHTML = `<!DOCTYPE html>
<html><head><title>  Books
  &amp; more </title></head>
<body>
<h1>Catalogue</h1>
<article class="book"><h2><a href="/b/1">  First
   book </a></h2><p class="price">£10</p><img src="img/1.png"><span class="tag">a</span><span class="tag">b</span></article>
<article class="book"><h2><a href="b/2?x=1#top">Second <em>book</em></a></h2><p class="price"></p><img src="https://cdn.example.net/2.png"></article>
<article class="book"><h2>No link</h2></article>
<a name="anchor">no href</a>
<a href="mailto:x@example.org">mail</a>
</body></html>`

func htmlPage(body string) Page {
	return Page{
		RunID: "run1", Job: "books", URL: "https://example.org/shop/list.html",
		Status: 200, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body: []byte(body), FetchedAt: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC), Served: ServedMiss,
	}
}

// fieldsOf returns every item's fields as maps, for comparison.
func fieldsOf(items []Item) []map[string]any {
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = map[string]any{}
		for _, kv := range it.Fields {
			out[i][kv.Key] = kv.Value
		}
	}
	return out
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name string
		spec ExtractSpec
		page Page
		want []map[string]any
	}{
		{
			name: "page mode text",
			spec: ExtractSpec{Fields: []Field{{Name: "title", CSS: "title", Text: true}, {Name: "h1", CSS: "h1"}}},
			page: htmlPage(listingHTML),
			want: []map[string]any{{"title": "Books & more", "h1": "Catalogue"}},
		},
		{
			name: "item mode one item per match",
			spec: ExtractSpec{Item: "article.book", Fields: []Field{
				{Name: "title", CSS: "h2", Text: true},
				{Name: "link", CSS: "a", Attr: "href"},
				{Name: "price", CSS: ".price", Text: true},
			}},
			page: htmlPage(listingHTML),
			want: []map[string]any{
				{"title": "First book", "link": "https://example.org/b/1", "price": "£10"},
				{"title": "Second book", "link": "https://example.org/shop/b/2?x=1#top", "price": ""},
				{"title": "No link", "link": nil, "price": nil},
			},
		},
		{
			name: "item selector matching nothing gives no items",
			spec: ExtractSpec{Item: "div.none", Fields: []Field{{Name: "x", CSS: "p"}}},
			page: htmlPage(listingHTML),
			want: []map[string]any{},
		},
		{
			name: "all gives arrays and empty arrays",
			spec: ExtractSpec{Item: "article", Fields: []Field{
				{Name: "tags", CSS: ".tag", Text: true, All: true},
				{Name: "imgs", CSS: "img", Attr: "src", All: true},
			}},
			page: htmlPage(listingHTML),
			want: []map[string]any{
				{"tags": []string{"a", "b"}, "imgs": []string{"https://example.org/shop/img/1.png"}},
				{"tags": []string{}, "imgs": []string{"https://cdn.example.net/2.png"}},
				{"tags": []string{}, "imgs": []string{}},
			},
		},
		{
			name: "attr skips elements without it",
			spec: ExtractSpec{Fields: []Field{
				{Name: "first_href", CSS: "body > a", Attr: "href"},
				{Name: "names", CSS: "a", Attr: "name", All: true},
			}},
			page: htmlPage(listingHTML),
			want: []map[string]any{{"first_href": "mailto:x@example.org", "names": []string{"anchor"}}},
		},
		{
			name: "html is inner html",
			spec: ExtractSpec{Item: "article:nth-of-type(2)", Fields: []Field{{Name: "h", CSS: "h2", HTML: true}}},
			page: htmlPage(listingHTML),
			want: []map[string]any{{"h": `<a href="b/2?x=1#top">Second <em>book</em></a>`}},
		},
		{
			name: "empty css is the item element",
			spec: ExtractSpec{Item: "a[href]", Fields: []Field{{Name: "href", CSS: "", Attr: "HREF"}, {Name: "text"}}},
			page: htmlPage(`<a href="../up">Up</a><a href="https://other.example/">Other</a>`),
			want: []map[string]any{
				{"href": "https://example.org/up", "text": "Up"},
				{"href": "https://other.example/", "text": "Other"},
			},
		},
		{
			name: "base href wins over the page url",
			spec: ExtractSpec{Fields: []Field{{Name: "l", CSS: "a", Attr: "href"}}},
			page: htmlPage(`<html><head><base href="/root/"></head><body><a href=" x.html ">x</a></body></html>`),
			want: []map[string]any{{"l": "https://example.org/root/x.html"}},
		},
		{
			name: "text collapses whitespace and separates blocks",
			spec: ExtractSpec{Fields: []Field{{Name: "t", CSS: "div", Text: true}}},
			page: htmlPage("<div>\n  <p>One\u00a0 two</p><p>three</p><ul><li>a</li><li>b</li></ul>x<b>y</b> z<script>var s;</script><style>p{}</style><!-- c --></div>"),
			want: []map[string]any{{"t": "One two three a b xy z"}},
		},
		{
			name: "empty css in page mode is the document",
			spec: ExtractSpec{Fields: []Field{{Name: "all"}, {Name: "attr", Attr: "lang"}}},
			page: htmlPage(`<html lang="en"><head><title>T</title></head><body><p>Hello</p><p>world</p></body></html>`),
			want: []map[string]any{{"all": "T Hello world", "attr": nil}},
		},
		{
			name: "missing selector is null in page mode",
			spec: ExtractSpec{Fields: []Field{{Name: "x", CSS: "table td"}, {Name: "y", CSS: "table td", All: true}}},
			page: htmlPage(listingHTML),
			want: []map[string]any{{"x": nil, "y": []string{}}},
		},
		{
			name: "broken html is parsed like a browser",
			spec: ExtractSpec{Item: "li", Fields: []Field{{Name: "t", CSS: "", Text: true}, {Name: "b", CSS: "b"}}},
			page: htmlPage(`<ul><li>one <b>bold<li>two</ul></div></span><p <<>`),
			// The unclosed <b> is reopened in the next <li>, as browsers do.
			want: []map[string]any{{"t": "one bold", "b": "bold"}, {"t": "two", "b": "two"}},
		},
		{
			name: "no content type is sniffed",
			spec: ExtractSpec{Fields: []Field{{Name: "h", CSS: "h1"}}},
			page: func() Page { p := htmlPage("<html><body><h1>Hi</h1>"); p.Header = nil; return p }(),
			want: []map[string]any{{"h": "Hi"}},
		},
		{
			name: "latin-1 page is decoded",
			spec: ExtractSpec{Fields: []Field{{Name: "h", CSS: "h1"}}},
			page: func() Page {
				p := htmlPage("<h1>caf\xe9</h1>")
				p.Header.Set("Content-Type", "text/html; charset=iso-8859-1")
				return p
			}(),
			want: []map[string]any{{"h": "café"}},
		},
		{
			name: "json page gives no items",
			spec: ExtractSpec{Fields: []Field{{Name: "h", CSS: "h1"}}},
			page: func() Page {
				p := htmlPage(`{"h1": "<h1>x</h1>"}`)
				p.Header.Set("Content-Type", "application/json")
				return p
			}(),
			want: []map[string]any{},
		},
		{
			name: "binary without content type gives no items",
			spec: ExtractSpec{Fields: []Field{{Name: "h", CSS: "h1"}}},
			page: func() Page { p := htmlPage("\x89PNG\r\n\x1a\n\x00\x00"); p.Header = nil; return p }(),
			want: []map[string]any{},
		},
		{
			name: "error status gives no items",
			spec: ExtractSpec{Fields: []Field{{Name: "h", CSS: "h1"}}},
			page: func() Page { p := htmlPage("<h1>Not found</h1>"); p.Status = 404; return p }(),
			want: []map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewExtractor(tt.spec)
			if err != nil {
				t.Fatalf("NewExtractor: %v", err)
			}
			items, err := e.Extract(tt.page)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if got := fieldsOf(items); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fields:\n got %#v\nwant %#v", got, tt.want)
			}
			for i, it := range items {
				if it.Index != i || it.ID != ItemID(tt.page.RunID, tt.page.URL, i) {
					t.Errorf("item %d: got index %d id %s, want index %d id %s", i, it.Index, it.ID, i, ItemID(tt.page.RunID, tt.page.URL, i))
				}
				if it.RunID != tt.page.RunID || it.Job != tt.page.Job || it.URL != tt.page.URL ||
					!it.FetchedAt.Equal(tt.page.FetchedAt) || it.Served != tt.page.Served {
					t.Errorf("item %d metadata: got %+v, want the page's", i, it)
				}
				for j, kv := range it.Fields {
					if kv.Key != tt.spec.Fields[j].Name {
						t.Errorf("item %d field %d: got key %q, want %q (spec order)", i, j, kv.Key, tt.spec.Fields[j].Name)
					}
				}
			}
		})
	}
}

func TestNewExtractorErrors(t *testing.T) {
	tests := []struct {
		name string
		spec ExtractSpec
		want string // substring of the error
	}{
		{"bad item selector", ExtractSpec{Item: "div[", Fields: []Field{{Name: "a", CSS: "p"}}}, `item selector "div["`},
		{"bad field selector", ExtractSpec{Fields: []Field{{Name: "price", CSS: "p:nope"}}}, `field "price": css "p:nope"`},
		{"two modes", ExtractSpec{Fields: []Field{{Name: "t", CSS: "p", Text: true, HTML: true}}}, `field "t": text, attr and html are mutually exclusive`},
		{"duplicate", ExtractSpec{Fields: []Field{{Name: "t", CSS: "p"}, {Name: "t", CSS: "a"}}}, `field "t": defined twice`},
		{"reserved", ExtractSpec{Fields: []Field{{Name: "url", CSS: "a"}}}, `field "url": name is reserved`},
		{"dotted", ExtractSpec{Fields: []Field{{Name: "a.b", CSS: "a"}}}, `field "a.b": name must not`},
		{"no name", ExtractSpec{Fields: []Field{{CSS: "a"}}}, `field #1: name is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewExtractor(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestItemIDDeterministic(t *testing.T) {
	a := ItemID("run1", "https://example.org/", 0)
	tests := []struct {
		name string
		id   string
		same bool
	}{
		{"same inputs", ItemID("run1", "https://example.org/", 0), true},
		{"other run", ItemID("run2", "https://example.org/", 0), false},
		{"other url", ItemID("run1", "https://example.org/x", 0), false},
		{"other index", ItemID("run1", "https://example.org/", 1), false},
		{"no ambiguity across the separator", ItemID("run1\x00https://example.org/", "", 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id == a; got != tt.same {
				t.Errorf("ItemID equal to base: got %v, want %v (%s vs %s)", got, tt.same, tt.id, a)
			}
		})
	}
	if len(a) != 32 {
		t.Errorf("ItemID length: got %d, want 32", len(a))
	}
}

func TestExtractTooDeep(t *testing.T) {
	e, err := NewExtractor(ExtractSpec{Fields: []Field{{Name: "t", CSS: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Extract(htmlPage(strings.Repeat("<div>", 600) + "<b>x</b>"))
	if err == nil || !strings.Contains(err.Error(), "https://example.org/shop/list.html") {
		t.Errorf("Extract of 600 nested divs: got %v, want a parse error naming the page", err)
	}
}
