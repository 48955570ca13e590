package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// sjsonCases are documents with every type FerretDB stores, the shapes
// the cache writes, and strings that need escaping.
var sjsonCases = []struct {
	name string
	doc  bson.D
}{
	{"empty", bson.D{{Key: "_id", Value: "empty"}}},
	{"scalars", bson.D{
		{Key: "_id", Value: "scalars"}, {Key: "s", Value: "text"}, {Key: "i32", Value: int32(-7)},
		{Key: "i64", Value: int64(1) << 40}, {Key: "f", Value: 3.25}, {Key: "fbig", Value: 1e21}, {Key: "fneg0", Value: math.Copysign(0, -1)},
		{Key: "t", Value: true}, {Key: "n", Value: nil}, {Key: "d", Value: time.UnixMilli(1764220000123).UTC()},
		{Key: "oid", Value: bson.ObjectID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{Key: "ts", Value: bson.Timestamp{T: 1764220000, I: 7}},
		{Key: "re", Value: bson.Regex{Pattern: `^a<b>"c"$`, Options: "im"}},
	}},
	{"binary", bson.D{{Key: "_id", Value: "binary"}, {Key: "b", Value: bson.Binary{Subtype: 0, Data: []byte{0, 1, 2, 255, '<'}}},
		{Key: "u", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{0xAB}, 16)}}, {Key: "e", Value: bson.Binary{Data: []byte{}}}}},
	{"nested", bson.D{{Key: "_id", Value: "nested"},
		{Key: "headers", Value: bson.D{{Key: "Content-Type", Value: bson.A{"text/html; charset=utf-8"}}, {Key: "Set-Cookie", Value: bson.A{"a", "b"}}}},
		{Key: "emptydoc", Value: bson.D{}}, {Key: "emptyarr", Value: bson.A{}},
		{Key: "mixed", Value: bson.A{int32(1), "two", bson.D{{Key: "three", Value: 3.0}}, nil, false}},
		{Key: "deep", Value: bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: bson.D{{Key: "c", Value: "<&>"}}}}}}},
	}},
	{"escapes", bson.D{{Key: "_id", Value: "a<b>&\"c\"\\"}, {Key: "html", Value: `<p class="x">a & b</p>` + "\n\t\r\b\f\x00\x1f\u2028\u2029 é 日本 🙂"},
		{Key: "invalid utf8", Value: "a\xffb\xc3"}}},
	{"big html", bson.D{{Key: "_id", Value: "big"}, {Key: "body", Value: strings.Repeat(`<div class="product"><a href="/p?id=1&amp;x=2">Name "quoted"</a></div>`+"\n", 1500)}}},
	{"order", bson.D{{Key: "z", Value: 1.5}, {Key: "_id", Value: "order"}, {Key: "a", Value: "first?"}}},
}

// TestEncodeSJSONRoundTrip writes documents in the encoder's format
// straight into FerretDB's table and reads them back over the wire: what
// the server returns must be what the document was (modulo the server's
// own normalisations, which its own insert would show too).
func TestEncodeSJSONRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	viaServer := s.Database("enc").Collection("server")
	direct := s.Database("enc").Collection("direct")
	for _, coll := range []string{"server", "direct"} {
		if err := s.Database("enc").CreateCollection(ctx, coll); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "enc.sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := map[string]string{}
	for _, coll := range []string{"server", "direct"} {
		var table string
		if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
			t.Fatal(err)
		}
		tables[coll] = table
	}
	for _, tc := range sjsonCases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := bson.Marshal(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			text, err := encodeSJSON(raw)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if _, err := db.Exec(`INSERT INTO "`+tables["direct"]+`" (_ferretdb_sjson) VALUES (?)`, string(text)); err != nil {
				t.Fatalf("insert encoded document: %v\n%s", err, text)
			}
			if _, err := viaServer.InsertOne(ctx, raw); err != nil {
				t.Fatalf("insert through the server: %v", err)
			}
			id := tc.doc[0].Value
			if tc.name == "order" {
				id = "order"
			}
			want, err := viaServer.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil {
				t.Fatal(err)
			}
			got, err := direct.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
			if err != nil {
				t.Fatalf("find the encoded document by _id over the wire: %v\n%s", err, text)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded document reads back as\n%s\nwant (stored by the server)\n%s", got, want)
			}
			// Where nothing needs HTML escaping, the text is FerretDB's own.
			var stored string
			if err := db.QueryRow(`SELECT _ferretdb_sjson FROM "`+tables["server"]+`" WHERE _ferretdb_sjson->'$._id' = ?`, string(appendJSONString(nil, id.(string), true))).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			html := bytes.ContainsAny(text, "<>&")
			if !html && stored != string(text) {
				t.Errorf("encoded text differs from FerretDB's own:\n got %s\nwant %s", text, stored)
			}
			if html && len(text) > len(stored) {
				t.Errorf("encoded text is %d bytes, FerretDB's %d: not escaping HTML should make it shorter", len(text), len(stored))
			}
		})
	}
}

func TestEncodeSJSONRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  bson.D
	}{
		{"decimal128", bson.D{{Key: "d", Value: bson.NewDecimal128(1, 2)}}},
		{"javascript", bson.D{{Key: "js", Value: bson.JavaScript("x")}}},
		{"nan", bson.D{{Key: "f", Value: math.NaN()}}},
		{"inf in array", bson.D{{Key: "a", Value: bson.A{math.Inf(1)}}}},
		{"minkey nested", bson.D{{Key: "d", Value: bson.D{{Key: "m", Value: bson.MinKey{}}}}}},
		{"nested array", bson.D{{Key: "a", Value: bson.A{bson.A{1}}}}},
		{"dotted key", bson.D{{Key: "h", Value: bson.D{{Key: "X.Y", Value: "v"}}}}},
		{"dollar key", bson.D{{Key: "$set", Value: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := bson.Marshal(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := encodeSJSON(raw); !errors.Is(err, errSJSONEncode) {
				t.Errorf("encode = %v, want errSJSONEncode", err)
			}
		})
	}
}

func BenchmarkEncodeSJSON(b *testing.B) {
	raw, err := bson.Marshal(sjsonCases[5].doc)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := encodeSJSON(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeForWriteRecord: what a direct write encodes per document
// of a re-crawl: a frontier state record (flat, a dozen small fields).
func BenchmarkEncodeForWriteRecord(b *testing.B) {
	raw, err := bson.Marshal(bson.D{
		{Key: "_id", Value: "run-20261204-0a1b2c3d4e5f60718293a4b5c6d7e8f9#2"}, {Key: "run_id", Value: "run-20261204"},
		{Key: "entry", Value: "run-20261204-0a1b2c3d4e5f60718293a4b5c6d7e8f9"}, {Key: "seq", Value: int64(2)},
		{Key: "state", Value: "leased"}, {Key: "url", Value: "http://127.0.0.1:8089/products/317?ref=listing&page=3"},
		{Key: "attempts", Value: int32(0)}, {Key: "depth", Value: int32(2)}, {Key: "worker", Value: "host-1234-abcd"},
		{Key: "lease_until", Value: time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)},
		{Key: "at", Value: time.Date(2026, 12, 4, 20, 58, 0, 0, time.UTC)},
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := encodeForWrite(raw); err != nil {
			b.Fatal(err)
		}
	}
}
