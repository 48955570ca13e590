package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// docGen makes random documents, many of them hostile: repeated, dotted,
// $-prefixed, empty and non-UTF-8 field names, invalid UTF-8 and HTML in
// strings, ±Inf, NaN and -0, nested arrays, types FerretDB does not store,
// non-string _ids, deep nesting. Not the types FerretDB does not store
// (decimal128, JavaScript, min/max key, undefined, symbol) nor NaN: the
// encoder hands those to the server (TestEncodeSJSONRefuses), which drops
// the connection, and the driver takes 0.5–2 s to reconnect.
type docGen struct{ r *rand.Rand }

var hostileKeys = []string{
	"a", "b", "c", "_id", "url", "headers", "", "$set", "$", "a.b", ".", "x.", "\xff", "k\xc3", "é",
	"日本", "<&>", "\"q\"", "\\", "\u2028", "a b", "$ref", "_id.x", "\n", "\x01", "\t", "\x7f",
}

func (g docGen) key() string {
	if g.r.IntN(3) == 0 {
		return hostileKeys[g.r.IntN(len(hostileKeys))]
	}
	return hostileKeys[g.r.IntN(3)] // a, b or c: repeats happen
}

func (g docGen) str() string {
	parts := []string{"plain", "<p class=\"x\">a & b</p>", "\xff", "\xc3", "\xed\xa0\x80", "é日本🙂", "\u2028\u2029",
		"\x00\x01\x1f", "\n\t\r\b\f", "\\\"", "\ufffd", strings.Repeat("z", 300)}
	var b strings.Builder
	for n := g.r.IntN(4); n >= 0; n-- {
		b.WriteString(parts[g.r.IntN(len(parts))])
	}
	return b.String()
}

func (g docGen) value(depth int) any {
	n := 17
	if depth > 3 {
		n = 13 // no more containers
	}
	switch g.r.IntN(n) {
	case 0:
		return g.str()
	case 1:
		return int32(g.r.Int32() - math.MaxInt32/2)
	case 2:
		return g.r.Int64() - math.MaxInt64/2
	case 3:
		return []float64{0, math.Copysign(0, -1), 1.5, 1e21, 1e-7, -3, math.MaxFloat64, math.Inf(1), math.Inf(-1)}[g.r.IntN(9)]
	case 4:
		return g.r.IntN(2) == 0
	case 5:
		return nil
	case 6:
		return bson.DateTime(g.r.Int64N(1 << 45))
	case 7:
		var id bson.ObjectID
		for i := range id {
			id[i] = byte(g.r.IntN(256))
		}
		return id
	case 8:
		return bson.Timestamp{T: g.r.Uint32(), I: g.r.Uint32()}
	case 9:
		return bson.Regex{Pattern: g.str(), Options: []string{"", "i", "ims", "x"}[g.r.IntN(4)]}
	case 10:
		data := make([]byte, g.r.IntN(20))
		for i := range data {
			data[i] = byte(g.r.IntN(256))
		}
		return bson.Binary{Subtype: []byte{0, 4, 0x80}[g.r.IntN(3)], Data: data}
	case 11, 12:
		return g.str()
	case 13, 14:
		return g.doc(depth + 1)
	default:
		a := bson.A{}
		for i := g.r.IntN(4); i > 0; i-- {
			a = append(a, g.value(depth+1)) // an array in an array now and then
		}
		return a
	}
}

func (g docGen) doc(depth int) bson.D {
	d := bson.D{}
	for i := g.r.IntN(5); i > 0; i-- {
		d = append(d, bson.E{Key: g.key(), Value: g.value(depth)})
	}
	return d
}

// deep nests n documents.
func deep(n int) bson.D {
	d := bson.D{{Key: "leaf", Value: "x"}}
	for i := 0; i < n; i++ {
		d = bson.D{{Key: "d", Value: d}}
	}
	return d
}

// top makes the i-th test document: a unique _id, mostly a string.
func (g docGen) top(i int) bson.D {
	var id any = g.str() + "#" + strconv.Itoa(i)
	switch g.r.IntN(20) {
	case 0:
		id = int32(i)
	case 1:
		id = bson.D{{Key: "n", Value: int32(i)}}
	case 2:
		id = bson.A{int32(i)}
	case 3:
		id = bson.Regex{Pattern: strconv.Itoa(i)}
	}
	d := g.doc(0)
	at := g.r.IntN(len(d) + 1) // _id anywhere, as callers may put it
	d = append(d[:at], append(bson.D{{Key: "_id", Value: id}}, d[at:]...)...)
	if g.r.IntN(60) == 0 {
		d = append(d, bson.E{Key: "deep", Value: deep(100 + g.r.IntN(120))})
	}
	return d
}

// writeErrorCode is the server's code in err, or 0.
func writeErrorCode(err error) int {
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return we.WriteErrors[0].Code
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for c := 1; c < 20000; c++ {
			if se.HasErrorCode(c) {
				return c
			}
		}
	}
	return -1
}

// TestDirectWriteParity sends random documents, many hostile, through the
// direct write path (InsertOne and Upsert with a Direct) and through the
// server (the driver's InsertOne and ReplaceOne with upsert), each into its
// own collection: both must accept or refuse each document alike (with the
// same error code), and every collection must then scan whole, holding the
// same documents byte for byte. The stored text may differ only by the
// HTML escaping of strings (sjsonenc.go). CRAWLCACHE_PARITY_SEED replays a
// run; CRAWLCACHE_PARITY_DOCS sets how many documents (default 300).
func TestDirectWriteParity(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CRAWLCACHE_PARITY_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	n := 300
	if v := os.Getenv("CRAWLCACHE_PARITY_DOCS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	t.Logf("seed %d (replay with CRAWLCACHE_PARITY_SEED=%d)", seed, seed)
	g := docGen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}

	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("parity")
	if err := ensureCollections(ctx, db, "ins_direct", "ins_wire", "up_direct", "up_wire"); err != nil {
		t.Fatal(err)
	}
	insD, insW := db.Collection("ins_direct"), db.Collection("ins_wire")
	upD, upW := db.Collection("up_direct"), db.Collection("up_wire")

	docs := make([]bson.D, 0, n+4)
	for i := 0; i < n; i++ {
		docs = append(docs, g.top(i))
	}
	docs = append(docs,
		bson.D{{Key: "_id", Value: "dup-top"}, {Key: "a", Value: 1}, {Key: "a", Value: 2}},
		bson.D{{Key: "_id", Value: "dup-in-array"}, {Key: "l", Value: bson.A{bson.D{{Key: "x", Value: 1}, {Key: "x", Value: 1}}}}},
		bson.D{{Key: "_id", Value: "bad-utf8-key"}, {Key: "h", Value: bson.D{{Key: "k\xff", Value: 1}}}},
		bson.D{{Key: "_id", Value: "deeper than SQLite parses"}, {Key: "d", Value: deep(400)}},
	)
	var accepted, refused int
	for i, doc := range docs {
		b, err := bson.Marshal(doc)
		raw := bson.Raw(b)
		if err != nil {
			continue // the driver refuses it before either path sees it
		}
		errD := collOf(d, insD).Insert(ctx, raw)
		if errors.Is(errD, ErrUnreadableDocument) {
			// Refused on purpose: the server would store it and then
			// fail every read of the collection
			// (TestDirectRefusesWhatFerretDBCannotReadBack).
			if !hasControlTopKey(raw) {
				t.Errorf("doc %d %v: refused as unreadable without a control character in a top-level name", i, short(raw))
			}
			refused++
			continue
		}
		_, errW := insW.InsertOne(ctx, raw)
		if (errD == nil) != (errW == nil) || writeErrorCode(errD) != writeErrorCode(errW) {
			t.Errorf("doc %d %v: insert direct = %v, through the server = %v", i, short(raw), errD, errW)
		}
		if errW == nil {
			accepted++
		} else {
			refused++
		}
		// A replaceOne of a document FerretDB refuses makes it drop the
		// connection (duplicate keys) and the driver reconnect (0.5–2 s):
		// upserts of refused documents only for the named cases.
		if id, ok := raw.Lookup("_id").StringValueOK(); ok && (errW == nil || i >= n) {
			errD := collOf(d, upD).Upsert(ctx, id, raw)
			_, errW := upW.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, raw, options.Replace().SetUpsert(true))
			if (errD == nil) != (errW == nil) || writeErrorCode(errD) != writeErrorCode(errW) {
				t.Errorf("doc %d %v: upsert direct = %v, through the server = %v", i, short(raw), errD, errW)
			}
		}
	}
	t.Logf("%d documents: %d accepted, %d refused", len(docs), accepted, refused)
	if accepted == 0 || refused == 0 {
		t.Errorf("accepted %d, refused %d: the generator should make both", accepted, refused)
	}
	for _, pair := range [][2]*mongo.Collection{{insD, insW}, {upD, upW}} {
		got, want := scanAll(t, pair[0]), scanAll(t, pair[1])
		if len(got) != len(want) {
			t.Errorf("%s holds %d documents, %s %d", pair[0].Name(), len(got), pair[1].Name(), len(want))
		}
		for id, w := range want {
			if g := got[id]; !bytes.Equal(g, w) {
				t.Errorf("%s reads back as\n%s\nwant (as %s)\n%s", pair[0].Name(), g, pair[1].Name(), w)
			}
			// FindRaw answers like a find by _id through the server,
			// even where FerretDB does not find a document it stored
			// (an _id holding U+FFFD: its JSON text is compared).
			if idv := bson.Raw(w).Lookup("_id"); idv.Type == bson.TypeString {
				id := idv.StringValue()
				r, err := d.FindRaw(ctx, "parity", pair[0].Name(), id)
				wr, werr := pair[1].FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
				if !bytes.Equal(r, wr) || !errors.Is(err, werr) && (err != nil || werr != nil) {
					t.Errorf("FindRaw(%q) = %s, %v; want %s, %v", id, r, err, wr, werr)
				}
			}
		}
	}
}

// TestDirectRefusesWhatFerretDBCannotReadBack: FerretDB v1.24.2 stores a
// top-level field name with a control character unescaped, and then fails
// every count and scan of the collection. The direct path refuses such a
// document (ErrUnreadableDocument), also when another reason (a non-string
// _id) would hand it to the server, and the collection stays readable.
func TestDirectRefusesWhatFerretDBCannotReadBack(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("unreadable")
	if err := ensureCollections(ctx, db, "direct", "server"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		doc  bson.D
	}{
		{"newline", bson.D{{Key: "_id", Value: "nl"}, {Key: "a\nb", Value: 1}}},
		{"tab, int _id", bson.D{{Key: "_id", Value: int32(7)}, {Key: "\t", Value: 1}}},
		{"nul byte in a value is fine, \x01 in a name not", bson.D{{Key: "_id", Value: "x01"}, {Key: "s", Value: "\x00"}, {Key: "\x01", Value: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustRaw(t, tc.doc)
			if err := collOf(d, db.Collection("direct")).Insert(ctx, raw); !errors.Is(err, ErrUnreadableDocument) {
				t.Errorf("direct insert = %v, want ErrUnreadableDocument", err)
			}
			if err := collOf(d, db.Collection("direct")).Upsert(ctx, "nl", raw); !errors.Is(err, ErrUnreadableDocument) {
				t.Errorf("direct upsert = %v, want ErrUnreadableDocument", err)
			}
			if _, err := db.Collection("direct").CountDocuments(ctx, bson.D{}); err != nil {
				t.Errorf("count after the refused insert: %v", err)
			}
		})
	}
	// What the direct path guards against: the server itself stores it
	// and then cannot read the collection. If a FerretDB upgrade fixes
	// this, the guard may go.
	if _, err := db.Collection("server").InsertOne(ctx, bson.D{{Key: "_id", Value: "nl"}, {Key: "a\nb", Value: 1}}); err != nil {
		t.Fatalf("insert through the server: %v (FerretDB refuses it now: the guard may go)", err)
	}
	if _, err := db.Collection("server").CountDocuments(ctx, bson.D{}); err == nil {
		t.Errorf("count after the server stored a control character in a name: no error; FerretDB reads it now, the guard may go")
	}
}

// TestDirectWriteOver16MiB: a document over 16 MiB is handed to the
// server, which stores it (FerretDB v1.24.2 sets no limit of its own, and
// the driver lets a document up to 16 MiB + 16 KiB through), and it reads
// back alike.
func TestDirectWriteOver16MiB(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("big")
	if err := ensureCollections(ctx, db, "direct", "wire"); err != nil {
		t.Fatal(err)
	}
	raw := mustRaw(t, bson.D{{Key: "_id", Value: "over-16MiB"}, {Key: "body", Value: strings.Repeat("x", maxDirectDoc)}})
	errD := collOf(d, db.Collection("direct")).Insert(ctx, raw)
	_, errW := db.Collection("wire").InsertOne(ctx, raw)
	if (errD == nil) != (errW == nil) {
		t.Fatalf("insert %d bytes: direct = %v, through the server = %v", len(raw), errD, errW)
	}
	if errW != nil {
		return
	}
	got, err := d.FindRaw(ctx, "big", "direct", "over-16MiB")
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf("FindRaw of the %d-byte document: %d bytes, %v; want it as written", len(raw), len(got), err)
	}
}

// scanAll reads the whole collection through the server (a poisoned row
// fails it) and maps each document's _id to the document.
func scanAll(t *testing.T, c *mongo.Collection) map[string]bson.Raw {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CountDocuments(ctx, bson.D{}); err != nil {
		t.Fatalf("count %s: %v", c.Name(), err)
	}
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		t.Fatalf("scan %s: %v", c.Name(), err)
	}
	defer cur.Close(ctx)
	m := map[string]bson.Raw{}
	for cur.Next(ctx) {
		m[string(cur.Current.Lookup("_id").Value)] = append(bson.Raw(nil), cur.Current...)
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("scan %s: %v", c.Name(), err)
	}
	return m
}

func short(raw bson.Raw) string {
	s := fmt.Sprint(raw)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func hasControlTopKey(raw bson.Raw) bool {
	elems, _ := raw.Elements()
	for _, e := range elems {
		if strings.ContainsFunc(e.Key(), func(r rune) bool { return r < 0x20 }) {
			return true
		}
	}
	return false
}

// collOf is the embedded implementation's handle on wire with direct
// access d, as Store.Collection makes it.
func collOf(d *Direct, wire *mongo.Collection) *Collection {
	c := &Collection{db: wire.Database().Name(), name: wire.Name(), wire: wire, direct: d}
	c.notFound = fmt.Errorf("get from %s: %w", c, ErrNotFound)
	return c
}
