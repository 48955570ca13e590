package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// htmlPage returns about n bytes of HTML dense in the characters
// encoding/json escapes (<, >, &) and quotes.
func htmlPage(n int) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Crawl &amp; cache</title></head><body>\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<div class=\"row r%d\"><a href=\"/item?id=%d&amp;ref=list\" title=\"Item &quot;%d&quot;\">Item %d &gt; détails</a> <span data-x='%d'>&lt;%d&gt;</span></div>\n", i%7, i, i, i, i, i)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

func findWire(t testing.TB, coll *mongo.Collection, id string) bson.Raw {
	t.Helper()
	raw, err := coll.FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Raw()
	if err != nil {
		t.Fatalf("FindOne(%q) over the wire: %v", id, err)
	}
	return raw
}

// checkSame asserts that FindRaw returns the wire's bytes for id.
func checkSame(t *testing.T, d *store.Direct, coll *mongo.Collection, id string) {
	t.Helper()
	want := findWire(t, coll, id)
	got, err := d.FindRaw(context.Background(), coll.Database().Name(), coll.Name(), id)
	if err != nil {
		t.Fatalf("FindRaw(%q): %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("FindRaw(%q) differs from the wire:\n got %s\nwant %s", id, describe(got), describe(want))
	}
}

func describe(r bson.Raw) string {
	if len(r) > 2000 {
		return fmt.Sprintf("%d bytes: %.2000s…", len(r), r.String())
	}
	return fmt.Sprintf("%d bytes: %s", len(r), r.String())
}

func TestFindRawMatchesWire(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	coll := s.Database("direct").Collection("docs")
	d := store.DirectOf(s)
	if d == nil {
		t.Fatal("DirectFor(in-process store client) = nil")
	}
	oid := bson.NewObjectID()
	big := htmlPage(100 << 10)
	bin := make([]byte, 100<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	ts := bson.DateTime(time.Date(2026, 11, 27, 6, 40, 0, 123e6, time.UTC).UnixMilli())

	tests := []struct {
		name string
		doc  bson.D
	}{
		{"only id", bson.D{}},
		{"scalars", bson.D{
			{Key: "s", Value: "text"},
			{Key: "empty", Value: ""},
			{Key: "i32", Value: int32(-42)},
			{Key: "i32max", Value: int32(math.MaxInt32)},
			{Key: "i32min", Value: int32(math.MinInt32)},
			{Key: "i64", Value: int64(1) << 40},
			{Key: "i64max", Value: int64(math.MaxInt64)},
			{Key: "i64min", Value: int64(math.MinInt64)},
			{Key: "f", Value: 1.5},
			{Key: "fint", Value: 3.0},
			{Key: "fneg0", Value: math.Copysign(0, -1)},
			{Key: "fbig", Value: 1e300},
			{Key: "fmax", Value: math.MaxFloat64},
			{Key: "ftiny", Value: 5e-324},
			{Key: "fthird", Value: 1.0 / 3},
			{Key: "t", Value: true},
			{Key: "false", Value: false},
			{Key: "null", Value: nil},
			{Key: "date", Value: ts},
			{Key: "date0", Value: bson.DateTime(0)},
			{Key: "dateneg", Value: bson.DateTime(-62135596800000)},
			{Key: "oid", Value: oid},
			{Key: "ts", Value: bson.Timestamp{T: 1764225600, I: 7}},
			{Key: "re", Value: bson.Regex{Pattern: `^a.*\d<b>"`, Options: "im"}},
			{Key: "re0", Value: bson.Regex{Pattern: "x"}},
		}},
		{"binary subtypes", bson.D{
			{Key: "generic", Value: bson.Binary{Subtype: 0, Data: []byte("\x00\x01\xfe\xff<&>")}},
			{Key: "empty", Value: bson.Binary{Subtype: 0, Data: []byte{}}},
			{Key: "function", Value: bson.Binary{Subtype: 1, Data: []byte("f")}},
			{Key: "uuid", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{0xab}, 16)}},
			{Key: "md5", Value: bson.Binary{Subtype: 5, Data: bytes.Repeat([]byte{1}, 16)}},
			{Key: "user", Value: bson.Binary{Subtype: 0x80, Data: []byte("user")}},
		}},
		{"key order", bson.D{
			{Key: "zeta", Value: 1},
			{Key: "alpha", Value: 2},
			{Key: "mid", Value: bson.D{{Key: "z", Value: 1}, {Key: "a", Value: 2}, {Key: "m", Value: 3}}},
			{Key: "beta", Value: 3},
		}},
		{"nesting", bson.D{
			{Key: "doc", Value: bson.D{
				{Key: "arr", Value: bson.A{1, "two", 3.0, nil, bson.D{{Key: "x", Value: bson.A{bson.D{}, bson.D{{Key: "in", Value: bson.A{int64(4), true}}}}}}}},
				{Key: "deep", Value: bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: bson.D{{Key: "c", Value: bson.D{{Key: "d", Value: "bottom"}}}}}}}}},
			}},
			{Key: "emptydoc", Value: bson.D{}},
			{Key: "emptyarr", Value: bson.A{}},
			{Key: "mixed", Value: bson.A{oid, ts, bson.Binary{Subtype: 0, Data: []byte("b")}, bson.Regex{Pattern: "p", Options: "s"}, bson.Timestamp{T: 2, I: 3}}},
			{Key: "long", Value: func() bson.A {
				a := bson.A{}
				for i := range 300 {
					a = append(a, i)
				}
				return a
			}()},
		}},
		{"unicode and escapes", bson.D{
			{Key: "html", Value: `<a href="x?a=1&b=2">it's</a>`},
			{Key: "accents", Value: "crème brûlée — naïve"},
			{Key: "cjk", Value: "日本語のテキスト"},
			{Key: "emoji", Value: "smile 😀 and 🇫🇷"},
			{Key: "controls", Value: "tab\tnl\ncr\rbs\\quote\"nul\x00bell\x07esc\x1b del\x7f"},
			{Key: "separators", Value: "line\u2028para\u2029"},
			{Key: "slash", Value: "a/b</script>"},
			{Key: "clé <é>", Value: "key with accents and escapes"},
			{Key: "nested", Value: bson.D{{Key: "ключ & <x>", Value: "значение"}, {Key: "日本", Value: bson.A{"😀", "\u0001"}}}},
		}},
		{"large html", bson.D{
			{Key: "url", Value: "https://example.com/page"},
			{Key: "headers", Value: bson.D{{Key: "Content-Type", Value: "text/html; charset=utf-8"}, {Key: "Set-Cookie", Value: bson.A{"a=1", "b=2"}}}},
			{Key: "body", Value: big},
			{Key: "size", Value: int64(len(big))},
		}},
		{"large binary", bson.D{
			{Key: "body", Value: bson.Binary{Subtype: 0, Data: bin}},
			{Key: "body_encoding", Value: "gzip"},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("doc-%d <&> %s", i, tt.name)
			doc := append(bson.D{{Key: "_id", Value: id}}, tt.doc...)
			if _, err := coll.InsertOne(ctx, doc); err != nil {
				t.Fatalf("insert: %v", err)
			}
			checkSame(t, d, coll, id)
		})
	}
}

func TestFindRawIDNotFirst(t *testing.T) {
	// The server stores _id first whatever the order it was sent in.
	s := storetest.Open(t)
	coll := s.Database("direct").Collection("docs")
	doc := bson.D{{Key: "z", Value: 1}, {Key: "a", Value: "x"}, {Key: "_id", Value: "last"}}
	if _, err := coll.InsertOne(context.Background(), doc); err != nil {
		t.Fatalf("insert: %v", err)
	}
	checkSame(t, store.DirectOf(s), coll, "last")
}

// randomValue returns a random BSON value of any type the embedded server
// stores, nested up to depth. The server refuses arrays in arrays.
func randomValue(rng *rand.Rand, depth int, inArray bool) any {
	n := 15
	if depth <= 0 {
		n = 13
	}
	v := rng.IntN(n)
	if v == 13 && inArray {
		v = 14
	}
	switch v {
	case 0:
		return randomString(rng)
	case 1:
		return int32(rng.Uint32())
	case 2:
		return int64(rng.Uint64())
	case 3:
		return math.Float64frombits(rng.Uint64()&^(0x7ff<<52)) * math.Pow(10, float64(rng.IntN(40)-20))
	case 4:
		return float64(rng.IntN(1000))
	case 5:
		return rng.IntN(2) == 0
	case 6:
		return nil
	case 7:
		return bson.DateTime(rng.Int64N(1 << 45))
	case 8:
		var oid bson.ObjectID
		for i := range oid {
			oid[i] = byte(rng.Uint32())
		}
		return oid
	case 9:
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return bson.Binary{Subtype: []byte{0, 1, 3, 4, 5, 0x80}[rng.IntN(6)], Data: b}
	case 10:
		return bson.Timestamp{T: rng.Uint32N(1 << 31), I: rng.Uint32()}
	case 11:
		return bson.Regex{Pattern: strings.ReplaceAll(randomString(rng), "\x00", ""), Options: []string{"", "i", "ims", "x"}[rng.IntN(4)]}
	case 12:
		return int32(rng.IntN(100))
	case 13:
		a := bson.A{}
		for range rng.IntN(5) {
			a = append(a, randomValue(rng, depth-1, true))
		}
		return a
	default:
		return randomDoc(rng, depth-1)
	}
}

func randomDoc(rng *rand.Rand, depth int) bson.D {
	d := bson.D{}
	seen := map[string]bool{}
	for range rng.IntN(7) {
		k := randomKey(rng)
		if seen[k] {
			continue
		}
		seen[k] = true
		d = append(d, bson.E{Key: k, Value: randomValue(rng, depth, false)})
	}
	return d
}

var keyParts = []string{"a", "Z", "key", "ключ", "日本", "<x>", "a&b", "é", "k9", "_x", "sp ace", "😀"}

func randomKey(rng *rand.Rand) string {
	k := keyParts[rng.IntN(len(keyParts))]
	if rng.IntN(2) == 0 {
		k += keyParts[rng.IntN(len(keyParts))]
	}
	return k
}

var stringParts = []string{"plain", "<", ">", "&", `"`, `\`, "/", "\n", "\t", "\x00", "\x01", "\x1f", "\x7f", "é", "€", "日本", "😀", "\u2028", "\u2029", "\ufffd", "'", " "}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(12) {
		b.WriteString(stringParts[rng.IntN(len(stringParts))])
	}
	return b.String()
}

func TestFindRawRandomDocuments(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	coll := s.Database("direct").Collection("random")
	d := store.DirectOf(s)
	rng := rand.New(rand.NewPCG(27, 11))
	var docs []any
	var ids []string
	for i := range 300 {
		id := fmt.Sprintf("r%d-%s", i, randomString(rng))
		ids = append(ids, id)
		docs = append(docs, append(bson.D{{Key: "_id", Value: id}}, randomDoc(rng, 3)...))
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatalf("insert: %v", err)
	}
	for _, id := range ids {
		checkSame(t, d, coll, id)
	}
}

func TestFindRawNoDocuments(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	d := store.DirectOf(s)
	coll := s.Database("direct").Collection("docs")
	oid := bson.NewObjectID()
	if _, err := coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "present"}},
		bson.D{{Key: "_id", Value: oid}, {Key: "note", Value: "an ObjectID _id, whose JSON is its hex string"}},
	}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if _, err := s.Database("other").Collection("x").InsertOne(ctx, bson.D{{Key: "_id", Value: "present"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	tests := []struct {
		name, db, coll, id string
	}{
		{"missing id", "direct", "docs", "absent"},
		{"missing collection", "direct", "nope", "present"},
		{"missing database", "nodb", "docs", "present"},
		{"collection of another database", "other", "docs", "present"},
		{"object id hex as a string", "direct", "docs", oid.Hex()},
		{"database name with a path", "../direct", "docs", "present"},
		{"empty database name", "", "docs", "present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.FindRaw(ctx, tt.db, tt.coll, tt.id)
			if !errors.Is(err, mongo.ErrNoDocuments) {
				t.Fatalf("FindRaw(%q, %q, %q) = %v, %v; want mongo.ErrNoDocuments", tt.db, tt.coll, tt.id, got, err)
			}
		})
	}
	checkSame(t, d, coll, "present")
}

func TestFindRawSeesChanges(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	d := store.DirectOf(s)
	db := s.Database("direct")
	coll := db.Collection("docs")
	insert := func(t *testing.T, coll *mongo.Collection, doc bson.D) {
		t.Helper()
		if _, err := coll.InsertOne(ctx, doc); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	// getAll reads id in db.coll with store.GetAll, together with a
	// lookup of another collection of db (read in the same transaction).
	getAll := func(db, coll, id string) store.Lookup {
		ls := []store.Lookup{{Coll: s.Collection(db, coll), ID: id}, {Coll: s.Collection(db, "other"), ID: id}}
		store.GetAll(ctx, ls)
		return ls[0]
	}
	wantNone := func(t *testing.T, db, coll, id string) {
		t.Helper()
		// GetAll first: it meets the changes before FindRaw did.
		if l := getAll(db, coll, id); !errors.Is(l.Err, store.ErrNotFound) {
			t.Fatalf("GetAll of %s.%s %s = %v, %v; want ErrNotFound", db, coll, id, l.Raw, l.Err)
		}
		if got, err := d.FindRaw(ctx, db, coll, id); !errors.Is(err, mongo.ErrNoDocuments) {
			t.Fatalf("FindRaw(%s, %s, %s) = %v, %v; want mongo.ErrNoDocuments", db, coll, id, got, err)
		}
	}
	wantValue := func(t *testing.T, coll *mongo.Collection, id string, want int32) {
		t.Helper()
		l := getAll(coll.Database().Name(), coll.Name(), id) // first, as in wantNone
		checkSame(t, d, coll, id)
		raw, _ := d.FindRaw(ctx, coll.Database().Name(), coll.Name(), id)
		if got := raw.Lookup("v").Int32(); got != want {
			t.Fatalf("v = %d, want %d", got, want)
		}
		if l.Err != nil || !bytes.Equal(l.Raw, raw) {
			t.Fatalf("GetAll of %s = %v, %v; want %v", id, l.Raw, l.Err, raw)
		}
	}

	insert(t, coll, bson.D{{Key: "_id", Value: "a"}, {Key: "v", Value: int32(1)}})
	wantValue(t, coll, "a", 1)

	t.Run("replaced", func(t *testing.T) {
		if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "v", Value: int32(2)}, {Key: "extra", Value: "x"}}); err != nil {
			t.Fatalf("replace: %v", err)
		}
		wantValue(t, coll, "a", 2)
	})
	t.Run("updated", func(t *testing.T) {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: int32(3)}}}}); err != nil {
			t.Fatalf("update: %v", err)
		}
		wantValue(t, coll, "a", 3)
	})
	t.Run("deleted", func(t *testing.T) {
		if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		wantNone(t, "direct", "docs", "a")
	})
	t.Run("collection dropped and recreated", func(t *testing.T) {
		insert(t, coll, bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: int32(4)}})
		wantValue(t, coll, "b", 4)
		if err := coll.Drop(ctx); err != nil {
			t.Fatalf("drop: %v", err)
		}
		wantNone(t, "direct", "docs", "b")
		insert(t, coll, bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: int32(5)}})
		wantValue(t, coll, "b", 5)
	})
	t.Run("collection renamed", func(t *testing.T) {
		other := db.Collection("renamed")
		err := s.Database("admin").RunCommand(ctx, bson.D{
			{Key: "renameCollection", Value: "direct.docs"}, {Key: "to", Value: "direct.renamed"},
		}).Err()
		if err != nil {
			t.Fatalf("rename: %v", err)
		}
		wantNone(t, "direct", "docs", "b")
		wantValue(t, other, "b", 5)
		insert(t, coll, bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: int32(6)}})
		wantValue(t, coll, "b", 6)
		wantValue(t, other, "b", 5)
	})
	t.Run("database dropped and recreated", func(t *testing.T) {
		if err := db.Drop(ctx); err != nil {
			t.Fatalf("drop database: %v", err)
		}
		wantNone(t, "direct", "docs", "b")
		insert(t, coll, bson.D{{Key: "_id", Value: "b"}, {Key: "v", Value: int32(7)}})
		wantValue(t, coll, "b", 7)
	})
	t.Run("database created after the first lookup", func(t *testing.T) {
		wantNone(t, "later", "docs", "c")
		later := s.Database("later").Collection("docs")
		insert(t, later, bson.D{{Key: "_id", Value: "c"}, {Key: "v", Value: int32(8)}})
		wantValue(t, later, "c", 8)
	})
}

func TestFindRawConcurrent(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	d := store.DirectOf(s)
	coll := s.Database("direct").Collection("docs")
	page := htmlPage(20 << 10)
	for i := range 10 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprint(i)}, {Key: "body", Value: page}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	want := findWire(t, coll, "7")
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 12 {
		wg.Go(func() {
			for i := range 20 {
				if g%4 == 0 && i%5 == 0 {
					// A writer alongside the readers.
					if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "3"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: i}}}}); err != nil {
						errs <- err
						return
					}
				}
				got, err := d.FindRaw(ctx, "direct", "docs", "7")
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("goroutine %d read %d bytes, want %d", g, len(got), len(want))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDirectChosenAtOpen: the embedded implementation (direct access) is
// chosen for a store that runs the embedded server in this process, the
// wire one for a store opened by URI (another process's `db serve`), and
// direct reads fail once the store is closed.
func TestDirectChosenAtOpen(t *testing.T) {
	s := storetest.Open(t)
	if store.DirectOf(s) == nil || !s.Collection("db", "coll").Direct() {
		t.Error("the in-process embedded store has no direct access")
	}
	ctx := context.Background()
	byURI, err := store.Open(ctx, store.Options{URI: s.URI, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open by URI: %v", err)
	}
	defer byURI.Close(ctx)
	if d := store.DirectOf(byURI); d != nil || byURI.Collection("db", "coll").Direct() {
		t.Errorf("a store opened by URI has direct access (%p)", d)
	}

	closed, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Command: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	d := store.DirectOf(closed)
	if d == nil {
		t.Fatal("a second in-process store has no direct access")
	}
	if err := closed.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := d.FindRaw(ctx, "db", "coll", "id"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("FindRaw after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkFindByID reads one 44 KB HTML response document by _id over the
// wire and directly, and looks up an _id that is not there both ways.
func BenchmarkFindByID(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	fill, err := store.Open(ctx, store.Options{DataDir: dir, Command: "test"})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	coll := fill.Database("bench").Collection("responses")
	page := htmlPage(44 << 10)
	now := bson.DateTime(time.Now().UnixMilli())
	for i := range 200 {
		doc := bson.D{
			{Key: "_id", Value: fmt.Sprintf("GET https://example.com/page/%d", i)},
			{Key: "url", Value: fmt.Sprintf("https://example.com/page/%d", i)},
			{Key: "method", Value: "GET"},
			{Key: "status", Value: int32(200)},
			{Key: "proto", Value: "HTTP/1.1"},
			{Key: "headers", Value: bson.D{
				{Key: "Cache-Control", Value: "max-age=3600"},
				{Key: "Content-Type", Value: "text/html; charset=utf-8"},
				{Key: "Date", Value: "Fri, 27 Nov 2026 06:40:00 GMT"},
				{Key: "Etag", Value: `"abc123"`},
				{Key: "Set-Cookie", Value: bson.A{"a=1; Path=/", "b=2; Path=/"}},
			}},
			{Key: "body", Value: page},
			{Key: "content_type", Value: "text/html; charset=utf-8"},
			{Key: "size", Value: int64(len(page))},
			{Key: "created_at", Value: now},
			{Key: "validated_at", Value: now},
			{Key: "expires", Value: now + 3600e3},
			{Key: "etag", Value: `"abc123"`},
			{Key: "request", Value: bson.D{{Key: "method", Value: "GET"}, {Key: "url", Value: fmt.Sprintf("https://example.com/page/%d", i)}}},
		}
		if _, err := coll.InsertOne(ctx, doc); err != nil {
			b.Fatalf("insert: %v", err)
		}
	}
	if err := fill.Close(ctx); err != nil {
		b.Fatalf("close: %v", err)
	}
	// Reopened, the store has indexed _id of every collection before Open
	// returns (idindex.go), as it has in a long-running process.
	s := storetest.OpenDir(b, dir)
	coll = s.Database("bench").Collection("responses")
	id := "GET https://example.com/page/42"
	want := findWire(b, coll, id)
	d := store.DirectOf(s)
	b.Run("wire", func(b *testing.B) {
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			if _, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(int64(len(want)))
		for b.Loop() {
			got, err := d.FindRaw(ctx, "bench", "responses", id)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != len(want) {
				b.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
		}
	})
	b.Run("wire-miss", func(b *testing.B) {
		for b.Loop() {
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "GET https://example.com/none"}}).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				b.Fatalf("FindOne of a missing _id = %v, want mongo.ErrNoDocuments", err)
			}
		}
	})
	b.Run("direct-miss", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.FindRaw(ctx, "bench", "responses", "GET https://example.com/none"); !errors.Is(err, mongo.ErrNoDocuments) {
				b.Fatalf("FindRaw of a missing _id = %v, want mongo.ErrNoDocuments", err)
			}
		}
	})
}

func TestFindRawWhileClosing(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Command: "test"})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	coll := s.Database("direct").Collection("docs")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "body", Value: htmlPage(20 << 10)}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	d := store.DirectOf(s)
	var wg sync.WaitGroup
	started := make(chan struct{}, 12)
	for range 12 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := d.FindRaw(ctx, "direct", "docs", "a")
				if i == 0 {
					started <- struct{}{}
				}
				if errors.Is(err, mongo.ErrNoDocuments) {
					t.Errorf("FindRaw while closing = %v, want the document or an error", err)
					return
				}
				if err != nil {
					return // closed
				}
			}
		})
	}
	for range 12 {
		<-started
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait() // every reader saw the close: none hangs on the pool
}

// TestDirectWritesWhileClosing: writers racing the store's close each get
// an answer (none hangs, none crashes on a closed connection), and every
// write that was answered without an error is there when the data
// directory is opened again.
func TestDirectWritesWhileClosing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Command: "test"})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	coll := s.Database("direct").Collection("docs")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "seed"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	d := store.DirectOf(s)
	const writers = 12
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written []string
	)
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				raw, err := bson.Marshal(bson.D{{Key: "_id", Value: id}, {Key: "body", Value: htmlPage(2 << 10)}})
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					err = d.Upsert(ctx, "direct", "docs", raw)
				} else {
					err = d.InsertOne(ctx, "direct", "docs", raw)
				}
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("write %s while closing: %v, want the write or ErrClosed", id, err)
					}
					return
				}
				mu.Lock()
				written = append(written, id)
				mu.Unlock()
			}
		})
	}
	for range writers {
		<-started
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	if len(written) < writers {
		t.Fatalf("%d writes before the close; want at least one per writer", len(written))
	}

	s = storetest.OpenDir(t, dir)
	d = store.DirectOf(s)
	for _, id := range written {
		if _, err := d.FindRaw(ctx, "direct", "docs", id); err != nil {
			t.Errorf("write %s answered before the close, then: %v", id, err)
		}
	}
}
