package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// openPages opens an embedded store whose http_cache.pages holds n random
// pages.
func openPages(t *testing.T, n int) *store.Store {
	t.Helper()
	s := storetest.Open(t)
	if err := s.EnsureCollections(context.Background(), "http_cache", "pages"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var docs []bson.D
	for i := range n {
		docs = append(docs, randomPage(r, i))
	}
	insertPages(t, s, docs)
	if err := store.IndexIDsOf(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// runBoth runs cmd through the front and directly on FerretDB and
// returns both replies (their cursor ids zeroed: each side numbers its
// own).
func runBoth(t *testing.T, s *store.Store, db string, cmd bson.D) (got, want bson.Raw) {
	t.Helper()
	run := func(d *mongo.Database) bson.Raw {
		raw, err := d.RunCommand(context.Background(), cmd).Raw()
		if err != nil && raw == nil {
			var ce mongo.CommandError
			if errors.As(err, &ce) {
				return bson.Raw(fmt.Sprintf("error %d", ce.Code))
			}
			t.Fatalf("%v: %v", cmd, err)
		}
		return raw
	}
	return run(frontClient(t, s).Database(db)), run(s.Database(db))
}

func TestFrontForwardsWhatItCannotAnswer(t *testing.T) {
	s := openPages(t, 120)
	url := func(p string) bson.Regex { return bson.Regex{Pattern: p} }
	cases := []struct {
		name string
		db   string
		cmd  bson.D
	}{
		{"projection of a dotted path", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "filter", Value: bson.D{{Key: "status", Value: 404}}}, {Key: "projection", Value: bson.D{{Key: "url.x", Value: 1}}}}},
		{"projection mixing inclusion and exclusion", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "filter", Value: bson.D{{Key: "status", Value: 404}}}, {Key: "projection", Value: bson.D{{Key: "url", Value: 1}, {Key: "status", Value: 0}}}}},
		{"projection of _id only", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "filter", Value: bson.D{{Key: "status", Value: 404}}}, {Key: "projection", Value: bson.D{{Key: "_id", Value: 1}}}}},
		{"projection setting a value", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "filter", Value: bson.D{{Key: "status", Value: 404}}}, {Key: "projection", Value: bson.D{{Key: "url", Value: "x"}}}}},
		{"$or", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "filter", Value: bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "status", Value: 404}}, bson.D{{Key: "status", Value: 200}}}}}}}},
		{"$ne", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status", Value: bson.D{{Key: "$ne", Value: 404}}}}}}},
		{"$exists", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "url", Value: bson.D{{Key: "$exists", Value: false}}}}}}},
		{"regex with the x option", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "url", Value: bson.Regex{Pattern: "^http", Options: "x"}}}}}},
		{"regex with an option FerretDB ignores", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "url", Value: bson.Regex{Pattern: "^http", Options: "u"}}}}}},
		{"regex that does not compile", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "url", Value: url("^http(")}}}}},
		{"$options alone", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "url", Value: bson.D{{Key: "$options", Value: "i"}}}}}}},
		{"equality with null", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status", Value: nil}}}}},
		{"string for a number", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status", Value: "404"}}}}},
		{"another field", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "note", Value: "n1"}}}}},
		{"dotted field", "http_cache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status.x", Value: 1}}}}},
		{"sort on another field", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "sort", Value: bson.D{{Key: "note", Value: 1}}}, {Key: "limit", Value: 5}}},
		{"$natural sort", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "sort", Value: bson.D{{Key: "$natural", Value: -1}}}, {Key: "limit", Value: 5}}},
		{"negative limit", "http_cache", bson.D{{Key: "find", Value: "pages"}, {Key: "limit", Value: -3}}},
		{"group by another field", "http_cache", bson.D{{Key: "aggregate", Value: "pages"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$note"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}}}}, {Key: "cursor", Value: bson.D{}}}},
		{"group after a limit", "http_cache", bson.D{{Key: "aggregate", Value: "pages"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$limit", Value: 10}}, bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$status"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}}}}, {Key: "cursor", Value: bson.D{}}}},
		{"sum of a field", "http_cache", bson.D{{Key: "aggregate", Value: "pages"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$url"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: "$status"}}}}}}}}, {Key: "cursor", Value: bson.D{}}}},
		{"another collection", "http_cache", bson.D{{Key: "count", Value: "responses"}, {Key: "query", Value: bson.D{{Key: "status", Value: 404}}}}},
		{"another database", "crawlcache", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status", Value: 404}}}}},
		{"a collection that does not exist", "nowhere", bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: bson.D{{Key: "status", Value: 404}}}}},
		{"a write", "http_cache", bson.D{{Key: "insert", Value: "pages"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: "new"}, {Key: "status", Value: 201}}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := store.FrontAnswered(s)
			got := frontClient(t, s).Database(tc.db).RunCommand(context.Background(), tc.cmd)
			answered := store.FrontAnswered(s) - before
			if answered != 0 {
				t.Errorf("the front answered %v itself; want it forwarded", tc.cmd)
			}
			if got.Err() == nil && tc.name != "a write" {
				g, w := runBoth(t, s, tc.db, tc.cmd)
				if !bytes.Equal(stripCursorID(t, g), stripCursorID(t, w)) {
					t.Errorf("%v through the front = %v, want %v", tc.cmd, g, w)
				}
			}
		})
	}

	// A document whose status is an array, or a string: queries on status
	// go to FerretDB, and answer the same.
	insertPages(t, s, []bson.D{
		{{Key: "_id", Value: "dirty-array"}, {Key: "status", Value: bson.A{404, 200}}},
		{{Key: "_id", Value: "dirty-string"}, {Key: "status", Value: "404"}},
	})
	for _, filter := range []bson.D{{{Key: "status", Value: 404}}, {{Key: "status", Value: bson.D{{Key: "$gte", Value: 400}}}}} {
		before := store.FrontAnswered(s)
		got, err := frontClient(t, s).Database("http_cache").Collection("pages").CountDocuments(context.Background(), filter)
		if err != nil {
			t.Fatal(err)
		}
		if store.FrontAnswered(s) != before {
			t.Errorf("countDocuments(%v) with an array status stored: answered by the front; want it forwarded", filter)
		}
		want, err := s.Database("http_cache").Collection("pages").CountDocuments(context.Background(), filter)
		if err != nil || got != want {
			t.Errorf("countDocuments(%v) = %d, want %d (%v)", filter, got, want, err)
		}
	}
}

// stripCursorID is reply with its cursor id set to 0 (each side numbers
// its own cursors).
func stripCursorID(t *testing.T, reply bson.Raw) bson.Raw {
	t.Helper()
	var d bson.D
	if err := bson.Unmarshal(reply, &d); err != nil {
		return reply
	}
	for i, e := range d {
		if e.Key != "cursor" {
			continue
		}
		c, _ := e.Value.(bson.D)
		for j := range c {
			if c[j].Key == "id" {
				c[j].Value = int64(0)
			}
		}
		d[i].Value = c
	}
	out, _ := bson.Marshal(d)
	return out
}

func TestFrontCursorsGetMoreAndKill(t *testing.T) {
	s := openPages(t, 1500)
	front := frontClient(t, s).Database("http_cache").Collection("pages")
	direct := s.Database("http_cache").Collection("pages")
	filter := bson.D{{Key: "url", Value: bson.Regex{Pattern: "^http://"}}}
	for _, batch := range []int32{0, 1, 7, 101, 250, 5000} {
		opts := options.Find()
		if batch > 0 {
			opts.SetBatchSize(batch)
		}
		before := store.FrontAnswered(s)
		got := findAll(t, front, filter, opts)
		want := findAll(t, direct, filter, opts)
		if !slices.EqualFunc(got, want, func(a, b bson.Raw) bool { return bytes.Equal(a, b) }) {
			t.Errorf("batchSize %d: %d documents through the front, want the %d FerretDB gives", batch, len(got), len(want))
		}
		if store.FrontAnswered(s) == before {
			t.Errorf("batchSize %d: the front answered nothing", batch)
		}
	}

	// A cursor closed early is killed by the front; a getMore of it then
	// finds nothing, as MongoDB says it (CursorNotFound, 43).
	cur, err := front.Find(context.Background(), filter, options.Find().SetBatchSize(5))
	if err != nil {
		t.Fatal(err)
	}
	id := cur.ID()
	if id == 0 {
		t.Fatal("no cursor left open after a first batch of 5")
	}
	before := store.FrontAnswered(s)
	if err := cur.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if store.FrontAnswered(s) != before+1 {
		t.Errorf("killCursors was not answered by the front")
	}
	err = front.Database().RunCommand(context.Background(), bson.D{{Key: "getMore", Value: id}, {Key: "collection", Value: "pages"}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 43 {
		t.Errorf("getMore of a killed cursor: %v, want CursorNotFound (43)", err)
	}
}

// TestFrontSeesRevalidation: a 304 writes the page's validated_at, and a
// query by validated_at through the front finds it at once.
func TestFrontSeesRevalidation(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified) // RFC 9110 §15.4.5
			return
		}
		fmt.Fprintf(w, "<html>%s</html>", r.URL.Path)
	}))
	defer origin.Close()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := storetest.Open(t)
	ctx := context.Background()
	tr, err := cache.New(ctx, s, cache.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	get := func(ctx context.Context, path string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		get(ctx, p)
	}
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	get(cache.WithRefresh(ctx), "/b") // a 304

	pages := frontClient(t, s).Database(cache.DefaultDatabase).Collection(cache.PagesCollection)
	before := store.FrontAnswered(s)
	docs := findAll(t, pages, bson.D{{Key: "validated_at", Value: bson.D{{Key: "$gte", Value: now}}}}, options.Find())
	if store.FrontAnswered(s) == before {
		t.Error("the query by validated_at was not answered by the front")
	}
	var urls []string
	for _, d := range docs {
		urls = append(urls, d.Lookup("url").StringValue())
	}
	if want := []string{origin.URL + "/b"}; !slices.Equal(urls, want) {
		t.Errorf("pages validated since the 304: %v, want %v", urls, want)
	}
}

// TestFrontIndexesOnReleaseFixture: a data directory written by the
// previous release gets the front's indexes when opened, and answers
// through the front as FerretDB does; dropping the collection (and
// writing it again) still works with them.
func TestFrontIndexesOnReleaseFixture(t *testing.T) {
	s := storetest.OpenFixtureWith(t, storetest.FixtureE6C68C8, cache.Migrations()...)
	ctx := context.Background()
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, "http_cache.sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// An index an earlier build of the front made (one per type and one
	// per value) is dropped.
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'pages'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE INDEX "` + table + `_crawlcache_front_status_value" ON "` + table + `" (json_extract(_ferretdb_sjson, '$.status'))`); err != nil {
		t.Fatal(err)
	}
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%_crawlcache_front_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("front indexes on the fixture's pages: %d, want 3 (type and value of status, url, validated_at)", n)
	}
	front := frontClient(t, s).Database("http_cache").Collection("pages")
	direct := s.Database("http_cache").Collection("pages")
	filter := bson.D{{Key: "status", Value: 200}}
	before := store.FrontAnswered(s)
	got, want := findAll(t, front, filter, options.Find()), findAll(t, direct, filter, options.Find())
	if len(want) == 0 || !slices.EqualFunc(got, want, func(a, b bson.Raw) bool { return bytes.Equal(a, b) }) {
		t.Errorf("find(%v) on the fixture: %d documents through the front, want the %d FerretDB gives (more than 0)", filter, len(got), len(want))
	}
	if store.FrontAnswered(s) == before {
		t.Error("the fixture's query was not answered by the front")
	}

	// Drop, write again through FerretDB and the direct writer, clear.
	if err := direct.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	insertPages(t, s, []bson.D{{{Key: "_id", Value: "a"}, {Key: "status", Value: 200}}, {{Key: "_id", Value: "b"}, {Key: "status", Value: 404}}})
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.DeleteMany(ctx, bson.D{{Key: "status", Value: 404}}); err != nil {
		t.Fatal(err)
	}
	c, err := front.CountDocuments(ctx, bson.D{{Key: "status", Value: bson.D{{Key: "$gte", Value: 100}}}})
	if err != nil || c != 1 {
		t.Errorf("after drop, writes and a delete: countDocuments through the front = %d (%v), want 1", c, err)
	}
}

// BenchmarkPageUpsert writes page summaries through the direct writer,
// new ones (a page stored) and replacements (a 304), in http_cache.pages
// (with the query front's indexes) and in a collection without them:
// what the indexes cost a crawl.
func BenchmarkPageUpsert(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b)
	if err := s.EnsureCollections(ctx, "http_cache", "pages", "pages_plain"); err != nil {
		b.Fatal(err)
	}
	if err := store.IndexIDsOf(ctx, s); err != nil {
		b.Fatal(err)
	}
	next := 0
	for _, name := range []string{"pages_plain", "pages", "pages_plain", "pages"} {
		for _, mode := range []string{"new", "replace"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				coll := s.Collection("http_cache", name)
				for b.Loop() {
					next++
					n := next
					if mode == "replace" {
						n %= 2000
					}
					id := fmt.Sprintf("%032x", n)
					page := bson.D{{Key: "_id", Value: id}, {Key: "url", Value: "https://example.com/products/" + id},
						{Key: "status", Value: int32(200)}, {Key: "validated_at", Value: time.Now()}}
					if err := coll.Upsert(ctx, id, page); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestFrontSurvivesBrokenClients: a client that sends garbage, a length
// out of range or half a message, or leaves in the middle of a cursor,
// loses its own connection and nothing else.
func TestFrontSurvivesBrokenClients(t *testing.T) {
	s := openPages(t, 300)
	addr := strings.TrimSuffix(strings.TrimPrefix(s.URI, "mongodb://"), "/")
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0xff, 0xff, 0xff, 0x7f, 1, 2, 3},               // 2 GB announced
		{8, 0, 0, 0, 1, 2, 3, 4},                        // shorter than a header
		{100, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7}, // half an OP_MSG, then gone
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(junk)
		_ = c.Close()
	}
	// A cursor left open by a client that disconnects.
	c := frontClient(t, s)
	cur, err := c.Database("http_cache").Collection("pages").Find(context.Background(), bson.D{}, options.Find().SetBatchSize(3))
	if err != nil {
		t.Fatal(err)
	}
	_ = cur // abandoned
	_ = c.Disconnect(context.Background())

	// Concurrent clients, with writes going on, all get FerretDB's answer.
	front := frontClient(t, s).Database("http_cache").Collection("pages")
	direct := s.Database("http_cache").Collection("pages")
	want := findAll(t, direct, bson.D{{Key: "status", Value: bson.D{{Key: "$gte", Value: 400}}}}, options.Find())
	done := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := range 10 {
				if w == 0 {
					// Writes of pages the query does not select.
					_, err := direct.InsertOne(context.Background(), bson.D{{Key: "_id", Value: fmt.Sprintf("w%d", i)}, {Key: "status", Value: 200}})
					if err != nil {
						done <- err
						return
					}
					continue
				}
				cur, err := front.Find(context.Background(), bson.D{{Key: "status", Value: bson.D{{Key: "$gte", Value: 400}}}}, options.Find().SetBatchSize(int32(1+i)))
				if err != nil {
					done <- err
					return
				}
				var n int
				for cur.Next(context.Background()) {
					n++
				}
				if err := cur.Err(); err != nil || n != len(want) {
					done <- fmt.Errorf("client %d: %d pages (%v), want %d", w, n, err, len(want))
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestFrontClosesWithTheStore: closing the store closes the front's
// connections; a client still connected gets an error, and the data
// directory opens again with its pages and answers through the new front.
func TestFrontClosesWithTheStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureCollections(ctx, "http_cache", "pages"); err != nil {
		t.Fatal(err)
	}
	insertPages(t, s, []bson.D{{{Key: "_id", Value: "a"}, {Key: "status", Value: 404}}})
	// A server gone is a server selection error after this long.
	client, err := mongo.Connect(options.Client().ApplyURI(s.URI).SetServerSelectionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	pages := client.Database("http_cache").Collection("pages")
	if n, err := pages.CountDocuments(ctx, bson.D{{Key: "status", Value: 404}}); err != nil || n != 1 {
		t.Fatalf("countDocuments before close = %d (%v), want 1", n, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a bound on a hang, not a timing assertion
	defer cancel()
	if _, err := pages.CountDocuments(qctx, bson.D{{Key: "status", Value: 404}}); err == nil {
		t.Error("countDocuments through the front of a closed store succeeded")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Error("countDocuments through the front of a closed store hung")
	}
	s2 := storetest.OpenDir(t, dir)
	if err := store.IndexIDsOf(ctx, s2); err != nil {
		t.Fatal(err)
	}
	before := store.FrontAnswered(s2)
	n, err := frontClient(t, s2).Database("http_cache").Collection("pages").CountDocuments(ctx, bson.D{{Key: "status", Value: 404}})
	if err != nil || n != 1 || store.FrontAnswered(s2) == before {
		t.Errorf("reopened: countDocuments = %d (%v), answered by the front: %v; want 1, true", n, err, store.FrontAnswered(s2) != before)
	}
}
