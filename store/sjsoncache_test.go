package store

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Tests of the schema cache (sjsoncache.go): a document decodes to the
// same bytes with its schema cached or not.

// schemaTwins are documents whose schemas differ in one detail only, so
// that a cache hit on the wrong schema changes the BSON or the error.
var schemaTwins = []string{
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"long"}},"$k":["_id","n"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"double"}},"$k":["_id","n"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"date"}},"$k":["_id","n"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"timestamp"}},"$k":["_id","n"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"}},"$k":["_id"]},"_id":"a"}`,
	`{"$s":{"p":{"_id":{"t":"string"}},"$k":["_id"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"_id":"a"}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["n","_id"]},"_id":"a","n":1}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"n":1,"_id":"a"}`,
	`{"_id":"a","n":1,"$s":{"p":{"_id":{"t":"string"},"n":{"t":"long"}},"$k":["_id","n"]}}`,
	`{"$s": {"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]} ,"_id":"a","n":1}`,
	`{"$s":{"p":{"d":{"t":"object","$s":{"p":{"x":{"t":"int"}},"$k":["x"]}}},"$k":["d"]},"d":{"x":2}}`,
	`{"$s":{"p":{"d":{"t":"object","$s":{"p":{"x":{"t":"long"}},"$k":["x"]}}},"$k":["d"]},"d":{"x":2}}`,
	`{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"},{"t":"string"}]}},"$k":["a"]},"a":[1,"x"]}`,
	`{"$s":{"p":{"a":{"t":"array","i":[{"t":"long"},{"t":"string"}]}},"$k":["a"]},"a":[1,"x"]}`,
	`{"$s":{"p":{"r":{"t":"regex","o":"i"}},"$k":["r"]},"r":"^a"}`,
	`{"$s":{"p":{"r":{"t":"regex","o":"m"}},"$k":["r"]},"r":"^a"}`,
	`{"$s":{"p":{"b":{"t":"binData","s":0}},"$k":["b"]},"b":"AAEC"}`,
	`{"$s":{"p":{"b":{"t":"binData","s":4}},"$k":["b"]},"b":"AAEC"}`,
	`{"$s":{"p":{"\u003c":{"t":"int"}},"$k":["\u003c"]},"<":1}`,
	`{"$s":{"p":{"<":{"t":"int"}},"$k":["<"]},"<":1}`,
	`{"$s":{"p":{"a\"}":{"t":"int"}},"$k":["a\"}"]},"a\"}":1}`,
	`{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]}`,
	`{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1`,
	`{"$s":{"p":{"a":{"t":"decimal"}},"$k":["a"]},"a":1}`,
	`{"$s":{"p":{"a":{"t":"int"}},"$k":["a"],"x":{}},"a":1}`,
	`{"$s":{}}`,
	// Where the schema's end is guessed from the _id after it: a nested
	// _id, and white space before the top-level one.
	`{"$s":{"p":{"_id":{"t":"string"},"d":{"t":"object","$s":{"p":{"x":{"t":"int"},"_id":{"t":"int"}},"$k":["x","_id"]}}},"$k":["_id","d"]},"_id":"a","d":{"x":1,"_id":2}}`,
	`{"$s":{"p":{"_id":{"t":"string"},"d":{"t":"object","$s":{"p":{"x":{"t":"int"},"_id":{"t":"long"}},"$k":["x","_id"]}}},"$k":["_id","d"]},"_id":"a","d":{"x":1,"_id":2}}`,
	`{"$s":{"p":{"_id":{"t":"string"}},"$k":["_id"]} ,"_id":"a"}`,
	`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"_id":"a","n":1,"s":"},\"_id\":"}`,
}

// decodeAll decodes every text with cache, in order, as hex or an error.
func decodeAll(texts []string, cache *schemaCache) []string {
	out := make([]string, len(texts))
	for i, text := range texts {
		raw, err := decodeSJSON(nil, text, cache)
		if err != nil {
			out[i] = "error: " + err.Error()
			continue
		}
		out[i] = fmt.Sprintf("%x", raw)
	}
	return out
}

func TestSchemaCacheDecodesAsUncached(t *testing.T) {
	want := decodeAll(schemaTwins, nil)
	// Warm: every schema cached by a first pass, then read in reverse
	// order so that each document follows a twin's schema.
	warm := newSchemaCache(schemaCacheEntries)
	decodeAll(schemaTwins, warm)
	reversed := make([]string, len(schemaTwins))
	for i, text := range schemaTwins {
		reversed[len(schemaTwins)-1-i] = text
	}
	gotReversed := decodeAll(reversed, warm)
	tests := []struct {
		name string
		got  func(i int) string
	}{
		{"cold", func(i int) string { return decodeAll(schemaTwins[i:i+1], newSchemaCache(schemaCacheEntries))[0] }},
		{"warm", func(i int) string { return decodeAll(schemaTwins[i:i+1], warm)[0] }},
		{"warm reversed", func(i int) string { return gotReversed[len(schemaTwins)-1-i] }},
		{"one entry", func(i int) string { return decodeAll(schemaTwins[i:i+1], newSchemaCache(1))[0] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, text := range schemaTwins {
				if got := tt.got(i); got != want[i] {
					t.Errorf("%s:\ngot  %s\nwant %s", text, got, want[i])
				}
			}
		})
	}
	if n := len(warm.m); n == 0 || n > len(schemaTwins) {
		t.Errorf("warm cache holds %d schemas, want 1 to %d", n, len(schemaTwins))
	}
}

func TestSchemaCacheTypes(t *testing.T) {
	// The same field read as int, long and double after the cache holds
	// the others' schemas: a wrong hit gives the wrong BSON type.
	cache := newSchemaCache(schemaCacheEntries)
	want := []bson.Type{bson.TypeInt32, bson.TypeInt64, bson.TypeDouble}
	for round := range 2 {
		for i, wantType := range want {
			raw, err := decodeSJSON(nil, schemaTwins[i], cache)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, schemaTwins[i], err)
			}
			if got := bson.Raw(raw).Lookup("n").Type; got != wantType {
				t.Errorf("round %d: %s: n is %v, want %v", round, schemaTwins[i], got, wantType)
			}
		}
	}
	// A cached schema with field n does not serve a document without it.
	if _, err := decodeSJSON(nil, schemaTwins[7], cache); err == nil {
		t.Errorf("%s decoded, want an error (n is in the schema, not the document)", schemaTwins[7])
	}
}

func TestSchemaCacheOwnsItsText(t *testing.T) {
	// The decoder reads SQLite's row in place; a cached schema must not
	// keep pointing into it once the row's memory holds another one.
	text := schemaTwins[0]
	buf := []byte(text)
	cache := newSchemaCache(schemaCacheEntries)
	first, err := decodeSJSON(nil, unsafe.String(&buf[0], len(buf)), cache)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	const schema = `{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]}`
	if cache.get(schema) == nil {
		t.Fatalf("schema %s not cached after decoding %s", schema, text)
	}
	copy(buf, bytes.Repeat([]byte("x"), len(buf)))
	got, err := decodeSJSON(nil, text, cache)
	if err != nil {
		t.Fatalf("decode after the row was overwritten: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Errorf("got %s, want %s", bson.Raw(got), bson.Raw(first))
	}
}

func TestSchemaCacheBounds(t *testing.T) {
	cache := newSchemaCache(3)
	for i := range 10 {
		text := fmt.Sprintf(`{"$s":{"p":{"f%d":{"t":"int"}},"$k":["f%d"]},"f%d":%d}`, i, i, i, i)
		if _, err := decodeSJSON(nil, text, cache); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if n := len(cache.m); n > 3 {
			t.Fatalf("after %d documents the cache holds %d schemas, want at most 3", i+1, n)
		}
	}
	// A schema longer than schemaCacheMaxText is read, not cached.
	var keys, props []string
	for i := 0; len(strings.Join(props, ",")) <= schemaCacheMaxText; i++ {
		keys = append(keys, fmt.Sprintf(`"field%d"`, i))
		props = append(props, fmt.Sprintf(`"field%d":{"t":"null"}`, i))
	}
	var doc strings.Builder
	doc.WriteString(`{"$s":{"p":{` + strings.Join(props, ",") + `},"$k":[` + strings.Join(keys, ",") + `]}`)
	for _, k := range keys {
		doc.WriteString("," + k + ":null")
	}
	doc.WriteString("}")
	big := newSchemaCache(3)
	if _, err := decodeSJSON(nil, doc.String(), big); err != nil {
		t.Fatalf("decode a document with %d fields: %v", len(keys), err)
	}
	if n := len(big.m); n != 0 {
		t.Errorf("a %d-byte schema was cached (%d entries), want none", len(doc.String()), n)
	}
}

func TestSchemaCacheConcurrent(t *testing.T) {
	// Decoders sharing a cache too small for the schemas they read, so
	// that they add and drop entries while others read them (go test
	// -race).
	want := decodeAll(schemaTwins, nil)
	cache := newSchemaCache(4)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for round := range 50 {
				for j := range schemaTwins {
					i := (j*(g+1) + round) % len(schemaTwins)
					if got := decodeAll(schemaTwins[i:i+1], cache)[0]; got != want[i] {
						errs <- fmt.Sprintf("%s: got %s, want %s", schemaTwins[i], got, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// responseSJSON is a cached response as the cache stores it, with a body
// of n bytes: a schema of about 1 KB.
func responseSJSON(tb testing.TB, n int) string {
	tb.Helper()
	now := bson.DateTime(time.Date(2026, 11, 27, 6, 40, 0, 0, time.UTC).UnixMilli())
	url := "https://example.com/docs/page/42"
	doc, err := bson.Marshal(bson.D{
		{Key: "_id", Value: "GET " + url},
		{Key: "url", Value: url},
		{Key: "method", Value: "GET"},
		{Key: "status", Value: int32(200)},
		{Key: "proto", Value: "HTTP/1.1"},
		{Key: "headers", Value: bson.D{
			{Key: "Cache-Control", Value: bson.A{"max-age=3600"}},
			{Key: "Content-Type", Value: bson.A{"text/html; charset=utf-8"}},
			{Key: "Date", Value: bson.A{"Fri, 27 Nov 2026 06:40:00 GMT"}},
			{Key: "Etag", Value: bson.A{`"abc123"`}},
			{Key: "Last-Modified", Value: bson.A{"Thu, 26 Nov 2026 06:40:00 GMT"}},
			{Key: "Server", Value: bson.A{"nginx"}},
			{Key: "Vary", Value: bson.A{"Accept-Encoding"}},
			{Key: "Set-Cookie", Value: bson.A{"a=1; Path=/", "b=2; Path=/"}},
		}},
		{Key: "body", Value: strings.Repeat("<p>x</p>\n", n/9)},
		{Key: "content_type", Value: "text/html; charset=utf-8"},
		{Key: "size", Value: int64(n)},
		{Key: "created_at", Value: now},
		{Key: "validated_at", Value: now},
		{Key: "expires", Value: now + 3600e3},
		{Key: "etag", Value: `"abc123"`},
		{Key: "request", Value: bson.D{{Key: "method", Value: "GET"}, {Key: "url", Value: url}}},
	})
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	text, err := encodeSJSON(doc)
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return string(text)
}

// BenchmarkAppendSJSONSchema decodes a cached response with a short body,
// where reading the schema is most of the work, with the schema cache
// and without it.
func BenchmarkAppendSJSONSchema(b *testing.B) {
	text := responseSJSON(b, 1<<10)
	for _, bc := range []struct {
		name  string
		cache *schemaCache
	}{{"cached", newSchemaCache(schemaCacheEntries)}, {"uncached", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			dst := make([]byte, 0, len(text))
			for b.Loop() {
				var err error
				if dst, err = decodeSJSON(dst[:0], text, bc.cache); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
