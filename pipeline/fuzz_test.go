package pipeline

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// fuzzSpec exercises every field kind, in item mode and page mode.
var fuzzSpecs = []ExtractSpec{
	{Item: "article, li, div > p", Fields: []Field{
		{Name: "self", Text: true},
		{Name: "self_href", Attr: "href"},
		{Name: "title", CSS: "h1, h2, b", Text: true},
		{Name: "link", CSS: "a", Attr: "href"},
		{Name: "imgs", CSS: "img", Attr: "src", All: true},
		{Name: "html", CSS: "p, span", HTML: true},
		{Name: "texts", CSS: "*", Text: true, All: true},
	}},
	{Fields: []Field{
		{Name: "title", CSS: "title"},
		{Name: "links", CSS: "a[href]", Attr: "href", All: true},
		{Name: "body", CSS: "body", HTML: true},
	}},
}

// FuzzExtract checks that Extract never panics on arbitrary bodies and
// content types, and that its items keep the spec's shape. Seeds are in
// testdata/fuzz/FuzzExtract and run as an ordinary test.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(listingHTML), "text/html")
	f.Add([]byte(`<base href="http://[::1"><a href="%zz">x</a>`), "")
	var extractors []*Extractor
	for _, spec := range fuzzSpecs {
		e, err := NewExtractor(spec)
		if err != nil {
			f.Fatal(err)
		}
		extractors = append(extractors, e)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		p := htmlPage(string(body))
		p.Header = http.Header{}
		if contentType != "" {
			p.Header.Set("Content-Type", contentType)
		}
		for si, e := range extractors {
			items, err := e.Extract(p)
			if err != nil {
				if !strings.Contains(err.Error(), p.URL) {
					t.Errorf("spec %d: error does not name the page: %v", si, err)
				}
				continue
			}
			if fuzzSpecs[si].Item == "" && len(items) > 1 {
				t.Errorf("spec %d: page mode gave %d items", si, len(items))
			}
			for i, it := range items {
				if it.Index != i || len(it.Fields) != len(fuzzSpecs[si].Fields) {
					t.Fatalf("spec %d item %d: index %d, %d fields, want %d", si, i, it.Index, len(it.Fields), len(fuzzSpecs[si].Fields))
				}
				for j, kv := range it.Fields {
					switch v := kv.Value.(type) {
					case nil, string:
						if fuzzSpecs[si].Fields[j].All {
							t.Errorf("spec %d field %s: got %T, want []string", si, kv.Key, v)
						}
					case []string:
						if !fuzzSpecs[si].Fields[j].All {
							t.Errorf("spec %d field %s: got []string for a single value", si, kv.Key)
						}
					default:
						t.Errorf("spec %d field %s: unexpected type %T", si, kv.Key, v)
					}
				}
			}
		}
	})
}

// benchPage is a catalogue page of about 50 KB: a header, navigation and
// 120 product cards.
func benchPage() []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Catalogue — page 1</title>
<link rel="stylesheet" href="/static/site.css"><script>window.dataLayer = [];</script></head><body>
<header><nav><ul>`)
	for i := range 20 {
		fmt.Fprintf(&b, `<li><a href="/category/%d/">Category %d</a></li>`, i, i)
	}
	b.WriteString(`</ul></nav></header><main><h1>All products</h1><section class="products">`)
	for i := range 120 {
		fmt.Fprintf(&b, `
<article class="product" data-id="%d">
  <h2 class="title"><a href="../item/%d/index.html" title="Product %d">Product number %d with a longer name</a></h2>
  <div class="image"><img src="/media/cache/%d.jpg" alt="Product %d"></div>
  <p class="price">£%d.%02d</p>
  <p class="availability"> In stock (%d available) </p>
  <ul class="tags"><li>tag-a</li><li>tag-b</li><li>tag-%d</li></ul>
</article>`, i, i, i, i, i, i, 10+i%50, i%100, i%7, i%5)
	}
	b.WriteString(`</section><footer><p>Footer text &copy; 2026</p></footer></main></body></html>`)
	return []byte(b.String())
}

// BenchmarkExtract measures one ~50 KB page with 120 items and five fields
// each (parse + select + resolve).
func BenchmarkExtract(b *testing.B) {
	e, err := NewExtractor(ExtractSpec{Item: "article.product", Fields: []Field{
		{Name: "title", CSS: "h2 a", Text: true},
		{Name: "link", CSS: "h2 a", Attr: "href"},
		{Name: "image", CSS: "img", Attr: "src"},
		{Name: "price", CSS: ".price", Text: true},
		{Name: "tags", CSS: ".tags li", Text: true, All: true},
	}})
	if err != nil {
		b.Fatal(err)
	}
	p := htmlPage(string(benchPage()))
	b.SetBytes(int64(len(p.Body)))
	b.ReportAllocs()
	for b.Loop() {
		items, err := e.Extract(p)
		if err != nil || len(items) != 120 {
			b.Fatalf("got %d items, %v", len(items), err)
		}
	}
}

// FuzzRecover checks the reading back of a partial output file after a
// crash: it never panics, keeps a prefix that ends with a whole record,
// and reading that prefix again gives the same IDs (so appending after it
// is safe). Seeds are in testdata/fuzz/FuzzRecover.
func FuzzRecover(f *testing.F) {
	var jsonl, csvData bytes.Buffer
	cf := NewCSVSink("x.csv", []string{"title", "tags"}).(*fileSink).format
	csvData.Write(cf.header())
	for _, it := range testItems("run1", "https://example.org/a", 3) {
		_ = jsonlFormat{}.encode(&jsonl, it)
		_ = cf.encode(&csvData, it)
	}
	f.Add(jsonl.Bytes(), false)
	f.Add(csvData.Bytes(), true)
	f.Fuzz(func(t *testing.T, data []byte, isCSV bool) {
		var format fileFormat = jsonlFormat{}
		if isCSV {
			format = cf
		}
		ids, good, err := format.scan(data)
		if err != nil {
			return // not a file this sink wrote: Open refuses it
		}
		if good < 0 || good > int64(len(data)) {
			t.Fatalf("kept prefix %d of %d bytes", good, len(data))
		}
		if good > 0 && data[good-1] != '\n' {
			t.Fatalf("kept prefix does not end with a newline: %q", data[:good])
		}
		ids2, good2, err := format.scan(data[:good])
		if err != nil || good2 != good || !slices.Equal(ids, ids2) {
			t.Fatalf("rescan of the kept prefix: got (%v, %d, %v), want (%v, %d, nil)", ids2, good2, err, ids, good)
		}
	})
}
