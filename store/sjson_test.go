package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Internal tests of the sjson decoder and of Direct's query. The
// wire-equality tests are in direct_test.go.

func TestAppendSJSONStrings(t *testing.T) {
	// Strings as encoding/json reads them: escapes, surrogate pairs, lone
	// surrogates and invalid UTF-8 (both U+FFFD), raw non-ASCII.
	tests := []struct {
		name, json string
	}{
		{"plain", `"hello"`},
		{"empty", `""`},
		{"simple escapes", `"q\" b\\ s\/ \b\f\n\r\t"`},
		{"html escapes", `"\u003ca href=\u0022x\u0022\u003e \u0026amp;"`},
		{"upper hex", `"\u00E9\u00e9"`},
		{"nul", `"a\u0000b"`},
		{"surrogate pair", `"\ud83d\ude00"`},
		{"lone high surrogate", `"a\ud83db"`},
		{"lone low surrogate", `"a\ude00b"`},
		{"high then non-surrogate escape", `"\ud83d\u0041"`},
		{"two high surrogates", `"\ud83d\ud83d\ude00"`},
		{"raw utf-8", `"crème 日本 😀"`},
		{"invalid utf-8", "\"a\xffb\xc3\""},
		{"truncated utf-8 then escape", "\"\xe6\x97\\n\""},
		{"line separators", "\"\u2028\\u2029\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(tt.json), &want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			text := `{"$s":{"p":{"s":{"t":"string"}},"$k":["s"]},"s":` + tt.json + `}`
			raw, err := appendSJSON(nil, text)
			if err != nil {
				t.Fatalf("appendSJSON(%s): %v", text, err)
			}
			if err := bson.Raw(raw).Validate(); err != nil {
				t.Fatalf("invalid BSON: %v", err)
			}
			if got := bson.Raw(raw).Lookup("s").StringValue(); got != want {
				t.Errorf("got %+q, want %+q", got, want)
			}
		})
	}
}

func TestAppendSJSONErrors(t *testing.T) {
	// Every one of these is refused, never a panic.
	tests := []struct {
		name, text string
	}{
		{"empty", ``},
		{"not an object", `[]`},
		{"no schema", `{"a":1}`},
		{"empty object", `{}`},
		{"truncated", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1`},
		{"trailing data", `{"$s":{}} x`},
		{"unknown type", `{"$s":{"p":{"a":{"t":"decimal"}},"$k":["a"]},"a":1}`},
		{"unknown schema field", `{"$s":{"p":{},"$k":[],"x":1}}`},
		{"unknown elem field", `{"$s":{"p":{"a":{"t":"int","x":1}},"$k":["a"]},"a":1}`},
		{"missing key", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"b":1}`},
		{"extra key", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1,"b":2}`},
		{"no elem for key", `{"$s":{"p":{},"$k":["a"]},"a":1}`},
		{"int overflow", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":2147483648}`},
		{"int fraction", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1.5}`},
		{"long as string", `{"$s":{"p":{"a":{"t":"long"}},"$k":["a"]},"a":"1"}`},
		{"double out of range", `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":1e400}`},
		{"bad number", `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":01}`},
		{"negative timestamp", `{"$s":{"p":{"a":{"t":"timestamp"}},"$k":["a"]},"a":-1}`},
		{"bool as number", `{"$s":{"p":{"a":{"t":"bool"}},"$k":["a"]},"a":1}`},
		{"string as number", `{"$s":{"p":{"a":{"t":"string"}},"$k":["a"]},"a":1}`},
		{"control char in string", "{\"$s\":{\"p\":{\"a\":{\"t\":\"string\"}},\"$k\":[\"a\"]},\"a\":\"\x01\"}"},
		{"bad escape", `{"$s":{"p":{"a":{"t":"string"}},"$k":["a"]},"a":"\x"}`},
		{"short unicode escape", `{"$s":{"p":{"a":{"t":"string"}},"$k":["a"]},"a":"\u12"}`},
		{"unterminated string", `{"$s":{"p":{"a":{"t":"string"}},"$k":["a"]},"a":"abc`},
		{"bad object id", `{"$s":{"p":{"a":{"t":"objectId"}},"$k":["a"]},"a":"zz0000000000000000000000"}`},
		{"short object id", `{"$s":{"p":{"a":{"t":"objectId"}},"$k":["a"]},"a":"00"}`},
		{"bad base64", `{"$s":{"p":{"a":{"t":"binData","s":0}},"$k":["a"]},"a":"!!"}`},
		{"binary without subtype", `{"$s":{"p":{"a":{"t":"binData"}},"$k":["a"]},"a":"AA=="}`},
		{"subtype too big", `{"$s":{"p":{"a":{"t":"binData","s":256}},"$k":["a"]},"a":"AA=="}`},
		{"regex without options", `{"$s":{"p":{"a":{"t":"regex"}},"$k":["a"]},"a":"x"}`},
		{"regex with nul", `{"$s":{"p":{"a":{"t":"regex","o":""}},"$k":["a"]},"a":"\u0000"}`},
		{"null type with value", `{"$s":{"p":{"a":{"t":"null"}},"$k":["a"]},"a":1}`},
		{"object without schema", `{"$s":{"p":{"a":{"t":"object"}},"$k":["a"]},"a":{"b":1}}`},
		{"object as array", `{"$s":{"p":{"a":{"t":"object","$s":{}}},"$k":["a"]},"a":[]}`},
		{"array without items", `{"$s":{"p":{"a":{"t":"array"}},"$k":["a"]},"a":[1]}`},
		{"array longer than schema", `{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"}]}},"$k":["a"]},"a":[1,2]}`},
		{"array shorter than schema", `{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"},{"t":"int"}]}},"$k":["a"]},"a":[1]}`},
		{"key with nul", `{"$s":{"p":{"a\u0000":{"t":"int"}},"$k":["a\u0000"]},"a\u0000":1}`},
		{"deep nesting", `{"$s":` + strings.Repeat(`{"p":{"a":{"t":"object","$s":`, 300) + `{}` + strings.Repeat(`}},"$k":["a"]}`, 300) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := appendSJSON(nil, tt.text)
			if err == nil {
				t.Fatalf("appendSJSON(%.200s) = %v, want an error", tt.text, bson.Raw(raw))
			}
			if !errors.Is(err, errSJSON) {
				t.Errorf("error %v does not wrap errSJSON", err)
			}
		})
	}
}

func TestAppendSJSONOrder(t *testing.T) {
	// FerretDB writes members in schema order; any other order (or
	// duplicates, the last of which wins) decodes the same way.
	tests := []struct {
		name, text, want string
	}{
		{"schema order", `{"$s":{"p":{"a":{"t":"int"},"b":{"t":"string"}},"$k":["a","b"]},"a":1,"b":"x"}`, `{"a": {"$numberInt":"1"},"b": "x"}`},
		{"other order", `{"$s":{"p":{"a":{"t":"int"},"b":{"t":"string"}},"$k":["a","b"]},"b":"x","a":1}`, `{"a": {"$numberInt":"1"},"b": "x"}`},
		{"schema last", `{"a":1,"b":"x","$s":{"p":{"a":{"t":"int"},"b":{"t":"string"}},"$k":["a","b"]}}`, `{"a": {"$numberInt":"1"},"b": "x"}`},
		{"duplicate", `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1,"a":2}`, `{"a": {"$numberInt":"2"}}`},
		{"nested other order", `{"$s":{"p":{"d":{"t":"object","$s":{"p":{"x":{"t":"bool"},"y":{"t":"null"}},"$k":["x","y"]}}},"$k":["d"]},"d":{"y":null,"x":true}}`, `{"d": {"x": true,"y": null}}`},
		{"escaped keys", `{"$s":{"p":{"\u003c":{"t":"int"}},"$k":["\u003c"]},"<":1}`, `{"<": {"$numberInt":"1"}}`},
		{"white space", " {\n\"$s\" : { \"p\" : { \"a\" : { \"t\" : \"long\" } } , \"$k\" : [ \"a\" ] } , \"a\" : 7 }\n", `{"a": {"$numberLong":"7"}}`},
		{"null whatever the type", `{"$s":{"p":{"a":{"t":"string"},"b":{"t":"object","$s":{}}},"$k":["a","b"]},"a":null,"b":null}`, `{"a": null,"b": null}`},
		{"empty object with keys in schema", `{"$s":{"p":{"a":{"t":"object","$s":{"p":{"x":{"t":"int"}},"$k":["x"]}}},"$k":["a"]},"a":{}}`, `{"a": {}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := appendSJSON(nil, tt.text)
			if err != nil {
				t.Fatalf("appendSJSON: %v", err)
			}
			if got := bson.Raw(raw).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// FuzzAppendSJSON checks that no input makes the decoder panic, that
// whatever it accepts is valid BSON, and that it decodes every input the
// same with the schemas of earlier inputs cached as without a cache.
func FuzzAppendSJSON(f *testing.F) {
	cache := newSchemaCache(16)
	for _, seed := range []string{
		`{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"_id":"a","n":1}`,
		`{"$s":{"p":{"_id":{"t":"objectId"},"d":{"t":"date"},"b":{"t":"binData","s":4},"r":{"t":"regex","o":"i"},"ts":{"t":"timestamp"},"f":{"t":"double"},"l":{"t":"long"},"t":{"t":"bool"},"z":{"t":"null"}},"$k":["_id","d","b","r","ts","f","l","t","z"]},"_id":"0123456789abcdef01234567","d":1764225600000,"b":"AAEC","r":"^a\u003c","ts":7,"f":1.5,"l":-9,"t":true,"z":null}`,
		`{"$s":{"p":{"o":{"t":"object","$s":{"p":{"a":{"t":"array","i":[{"t":"int"},{"t":"string"},{"t":"object","$s":{}}]}},"$k":["a"]}}},"$k":["o"]},"o":{"a":[1,"\ud83d\ude00",{}]}}`,
		`{"$s":{}}`,
		`{"$s":{"p":{"_id":{"t":"string"},"d":{"t":"object","$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]}}},"$k":["_id","d"]},"_id":"a","d":{"_id":2}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		raw, err := decodeSJSON(nil, text, nil)
		cached, cachedErr := decodeSJSON(nil, text, cache)
		if !bytes.Equal(cached, raw) || (err == nil) != (cachedErr == nil) || (err != nil && err.Error() != cachedErr.Error()) {
			t.Fatalf("%q: with the schema cache got %x, %v; without %x, %v", text, cached, cachedErr, raw, err)
		}
		if err != nil {
			return
		}
		if err := bson.Raw(raw).Validate(); err != nil {
			t.Fatalf("appendSJSON(%q) gave invalid BSON %x: %v", text, raw, err)
		}
	})
}

// TestDirectLookupUsesIndex checks that Direct's statement finds a
// document through the _id index idIndexer creates, not by a scan.
func TestDirectLookupUsesIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Store {
		s, err := Open(ctx, Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Command: "test"})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
	s := open()
	if _, err := s.Database("plan").Collection("docs").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	// Reopened, the server indexes every table before Open returns.
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	s = open()
	defer s.Close(ctx)

	d := DirectOf(s)
	if _, err := d.FindRaw(ctx, "plan", "docs", "a"); err != nil {
		t.Fatalf("FindRaw: %v", err)
	}
	ddb, err := d.database("plan")
	if err != nil {
		t.Fatalf("database: %v", err)
	}
	table := ddb.tables["docs"]
	db, err := sql.Open("sqlite", "file:"+ddb.file+"?mode=ro")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+lookupQuery(table), `"a"`, "docs", table)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatalf("scan: %v", err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	// The document table is aliased t in the statement.
	if !strings.Contains(text, "SEARCH t USING INDEX") || strings.Contains(text, "SCAN") {
		t.Errorf("query plan does not use the _id index of %s:\n%s", table, text)
	}
}

// BenchmarkAppendSJSON decodes a 44 KB HTML page stored as FerretDB does
// (encoding/json escapes <, > and & as \u003c...).
func BenchmarkAppendSJSON(b *testing.B) {
	var page strings.Builder
	for i := 0; page.Len() < 44<<10; i++ {
		page.WriteString(`<div class="row"><a href="/item?id=1&amp;ref=list" title="Item &quot;1&quot;">Item &gt; détails</a> <span>&lt;1&gt;</span></div>` + "\n")
	}
	body, _ := json.Marshal(page.String())
	text := `{"$s":{"p":{"_id":{"t":"string"},"status":{"t":"int"},"body":{"t":"string"}},"$k":["_id","status","body"]},"_id":"GET https://example.com/","status":200,"body":` + string(body) + `}`
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := appendSJSON(make([]byte, 0, len(text)), text); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSJSONString checks that strings decode exactly as encoding/json
// decodes them, and that what it refuses, the decoder refuses.
func FuzzSJSONString(f *testing.F) {
	for _, seed := range []string{`plain`, `\u003ca\u003e`, `\ud83d\ude00`, `\ud83d`, "\xff", `\"\\\/\b\f\n\r\t`, "é日😀", `\u00e9`, `\x`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, content string) {
		quoted := `"` + content + `"`
		var want string
		jsonErr := json.Unmarshal([]byte(quoted), &want)
		text := `{"$s":{"p":{"s":{"t":"string"}},"$k":["s"]},"s":` + quoted + `}`
		raw, err := appendSJSON(nil, text)
		switch {
		case jsonErr != nil && err == nil:
			t.Fatalf("appendSJSON accepted %q, which encoding/json refuses: %v", quoted, jsonErr)
		case jsonErr == nil && err != nil:
			t.Fatalf("appendSJSON refused %q: %v", quoted, err)
		case err == nil:
			if got := bson.Raw(raw).Lookup("s").StringValue(); got != want {
				t.Fatalf("%q: got %+q, want %+q", quoted, got, want)
			}
		}
	})
}
