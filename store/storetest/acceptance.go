package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// RunAcceptance runs the storage contract's acceptance suite against the
// implementation open returns (a fresh one per case): every operation the
// packages use, unique-_id conflicts, concurrent writers, counters, scans,
// TTL, and the failure modes (a collection that does not exist, a store
// closed or gone). An implementation is done when it passes.
func RunAcceptance(t *testing.T, open func(t testing.TB) Impl) {
	cases := []struct {
		name string
		run  func(t *testing.T, im Impl)
	}{
		{"missing collection reads as empty", testMissing},
		{"insert, get, duplicate _id", testInsertGet},
		{"get all answers as get", testGetAll},
		{"concurrent get alls see the writes made before them", testGetAllSeesEarlierWrites},
		{"insert many reports duplicates", testInsertMany},
		{"upsert inserts then replaces", testUpsert},
		{"delete", testDelete},
		{"scan, find one, count", testScan},
		{"scan by _id prefix", testScanIDPrefix},
		{"update one and many", testUpdate},
		{"find one and update", testFindOneAndUpdate},
		{"concurrent writers", testConcurrentWriters},
		{"concurrent inserts of one _id", testConcurrentDuplicate},
		{"counters under concurrency", testCounters},
		{"concurrent updates of one document by two clients", testConcurrentUpdates},
		{"concurrent claims of one document by two clients", testConcurrentClaims},
		{"a replace among updates", testReplaceAmongUpdates},
		{"secondary index", testIndex},
		{"ttl", testTTL},
		{"closed store", testClosed},
		{"store gone", testGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			im := open(t)
			tc.run(t, im)
		})
	}
}

// acceptanceDoc is the document the suite stores.
type acceptanceDoc struct {
	ID   string    `bson:"_id"`
	N    int64     `bson:"n"`
	Tag  string    `bson:"tag,omitempty"`
	Body []byte    `bson:"body,omitempty"`
	At   time.Time `bson:"at,omitempty"`
}

func coll(t testing.TB, im Impl, name string) *store.Collection {
	t.Helper()
	c := im.Store.Collection(im.DB, name)
	if c.Direct() != im.Direct {
		t.Fatalf("%s: Direct() = %v, want %v", c, c.Direct(), im.Direct)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func decode(t testing.TB, raw bson.Raw) acceptanceDoc {
	t.Helper()
	var d acceptanceDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode %v: %v", raw, err)
	}
	return d
}

func mustGet(t testing.TB, c *store.Collection, id string) acceptanceDoc {
	t.Helper()
	raw, err := c.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return decode(t, raw)
}

func ids(t testing.TB, c *store.Collection, filter any, opts store.FindOptions) []string {
	t.Helper()
	var got []string
	err := c.Scan(ctxT(t), filter, opts, func(raw bson.Raw) error {
		got = append(got, decode(t, raw).ID)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%v): %v", filter, err)
	}
	return got
}

func testMissing(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "missing")
	if _, err := c.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	if _, err := c.FindOne(ctx, bson.D{{Key: "n", Value: 1}}, store.FindOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindOne: err = %v, want ErrNotFound", err)
	}
	if got := ids(t, c, bson.D{}, store.FindOptions{}); len(got) != 0 {
		t.Errorf("Scan: got %v, want nothing", got)
	}
	n := 0
	if err := c.ScanIDPrefix(ctx, "a", func(bson.Raw) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("ScanIDPrefix: %d documents, err %v; want 0, nil", n, err)
	}
	if n, err := c.Count(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("Count = %d, %v; want 0, nil", n, err)
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if n, err := c.DeleteMany(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("DeleteMany = %d, %v; want 0, nil", n, err)
	}
	if names, err := c.Indexes(ctx); err != nil || len(names) != 0 {
		t.Errorf("Indexes = %v, %v; want none", names, err)
	}
	if _, ok, err := c.TTL(ctx, "ttl"); err != nil || ok {
		t.Errorf("TTL: ok %v, err %v; want false, nil", ok, err)
	}
	if err := c.DropIndex(ctx, "x"); err != nil {
		t.Errorf("DropIndex: %v", err)
	}
	if err := c.Drop(ctx); err != nil {
		t.Errorf("Drop: %v", err)
	}
	if _, err := im.Store.Collection("acceptance_no_such_db", "c").Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get in a missing database: err = %v, want ErrNotFound", err)
	}
}

func testInsertGet(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "docs")
	if err := im.Store.EnsureCollections(ctx, im.DB, "docs"); err != nil {
		t.Fatal(err)
	}
	body := []byte("<html>\x00\xff body</html>")
	want := acceptanceDoc{ID: "page/1", N: 7, Tag: "<a&b>", Body: body, At: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)}
	if err := c.Insert(ctx, want); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	got := mustGet(t, c, "page/1")
	if got.ID != want.ID || got.N != want.N || got.Tag != want.Tag || string(got.Body) != string(body) || !got.At.Equal(want.At) {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	err := c.Insert(ctx, acceptanceDoc{ID: "page/1", N: 8})
	if !errors.Is(err, store.ErrDuplicateID) {
		t.Fatalf("second Insert of one _id: err = %v, want ErrDuplicateID", err)
	}
	if got := mustGet(t, c, "page/1"); got.N != 7 {
		t.Errorf("after a refused Insert n = %d, want 7 (unchanged)", got.N)
	}
	// A document the direct path hands to the server (not a string _id
	// elsewhere, a bson.D) still goes in.
	if err := c.Insert(ctx, bson.D{{Key: "_id", Value: "page/2"}, {Key: "n", Value: int64(2)}}); err != nil {
		t.Fatalf("Insert bson.D: %v", err)
	}
	if got := mustGet(t, c, "page/2"); got.N != 2 {
		t.Errorf("Get(page/2).n = %d, want 2", got.N)
	}
	if _, err := c.Get(ctx, "page/3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a missing _id: err = %v, want ErrNotFound", err)
	}
}

func testInsertMany(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "many")
	if err := c.Insert(ctx, acceptanceDoc{ID: "b", N: 1}); err != nil {
		t.Fatal(err)
	}
	dups, err := c.InsertMany(ctx, []any{acceptanceDoc{ID: "a", N: 2}, acceptanceDoc{ID: "b", N: 2}, acceptanceDoc{ID: "c", N: 2}})
	if err != nil {
		t.Fatalf("InsertMany: %v", err)
	}
	if want := map[int]bool{1: true}; fmt.Sprint(dups) != fmt.Sprint(want) {
		t.Errorf("InsertMany dups = %v, want %v", dups, want)
	}
	for id, n := range map[string]int64{"a": 2, "b": 1, "c": 2} {
		if got := mustGet(t, c, id); got.N != n {
			t.Errorf("%s.n = %d, want %d", id, got.N, n)
		}
	}
	if dups, err := c.InsertMany(ctx, nil); err != nil || len(dups) != 0 {
		t.Errorf("InsertMany(nil) = %v, %v", dups, err)
	}
}

func testUpsert(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "upsert")
	for _, n := range []int64{1, 2} {
		if err := c.Upsert(ctx, "k", acceptanceDoc{ID: "k", N: n}); err != nil {
			t.Fatalf("Upsert n=%d: %v", n, err)
		}
		if got := mustGet(t, c, "k"); got.N != n {
			t.Errorf("after Upsert n=%d: got n=%d", n, got.N)
		}
	}
	if n, err := c.Count(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func testDelete(t *testing.T, im Impl) {
	ctx := ctxT(t)
	c := coll(t, im, "del")
	for _, id := range []string{"a", "b", "c"} {
		if err := c.Insert(ctx, acceptanceDoc{ID: id, N: 1, Tag: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete of a missing _id: %v", err)
	}
	n, err := c.DeleteMany(ctx, bson.D{{Key: "tag", Value: "b"}})
	if err != nil || n != 1 {
		t.Errorf("DeleteMany = %d, %v; want 1", n, err)
	}
	if got := ids(t, c, bson.D{}, store.FindOptions{}); !slices.Equal(got, []string{"c"}) {
		t.Errorf("left %v, want [c]", got)
	}
}

// getter is a Getter that is not a store's collection: GetAll reads it
// with its own Get.
type getter struct{ c *store.Collection }

func (g getter) Get(ctx context.Context, id string) (bson.Raw, error) { return g.c.Get(ctx, id) }

// testGetAll checks that GetAll answers each lookup as Get does, across
// collections and databases, for documents that exist and do not, an
// ObjectID _id whose JSON text is the string looked up, collections and
// a database that do not exist, and a Getter of another kind.
func testGetAll(t *testing.T, im Impl) {
	ctx := ctxT(t)
	a, b := coll(t, im, "a"), coll(t, im, "b")
	other := im.Store.Collection(im.DB+"_other", "c")
	for i, c := range []*store.Collection{a, b, other} {
		for j := range 3 {
			id := fmt.Sprintf("%s-%d", c.Name(), j)
			if err := c.Insert(ctx, acceptanceDoc{ID: id, N: int64(10*i + j), Body: make([]byte, 5000*j)}); err != nil {
				t.Fatalf("insert %s: %v", id, err)
			}
		}
	}
	oid := bson.NewObjectID()
	if err := a.Insert(ctx, bson.D{{Key: "_id", Value: oid}, {Key: "n", Value: 99}}); err != nil {
		t.Fatalf("insert ObjectID: %v", err)
	}
	ls := []store.Lookup{
		{Coll: a, ID: "a-0"}, {Coll: b, ID: "b-2"}, {Coll: a, ID: "a-2"},
		{Coll: a, ID: "none"}, {Coll: a, ID: oid.Hex()},
		{Coll: other, ID: "c-1"}, {Coll: coll(t, im, "missing"), ID: "a-0"},
		{Coll: im.Store.Collection(im.DB+"_no_such_db", "c"), ID: "a-0"},
		{Coll: getter{b}, ID: "b-1"}, {Coll: b, ID: "b-1"},
	}
	store.GetAll(ctx, ls)
	for _, l := range ls {
		raw, err := l.Coll.Get(ctx, l.ID)
		if errors.Is(err, store.ErrNotFound) {
			if !errors.Is(l.Err, store.ErrNotFound) || l.Raw != nil {
				t.Errorf("GetAll of %q: %v, %v; want ErrNotFound as Get", l.ID, l.Raw, l.Err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get(%q): %v", l.ID, err)
		}
		if l.Err != nil || !slices.Equal(l.Raw, raw) {
			t.Errorf("GetAll of %q = %v, %v; want %v as Get", l.ID, decode(t, l.Raw), l.Err, decode(t, raw))
		}
	}
	if ls[0].Raw == nil || decode(t, ls[5].Raw).N != 21 || ls[3].Err == nil || ls[4].Err == nil {
		t.Errorf("GetAll found %v, %v, %v, %v", ls[0].Raw, ls[5].Raw, ls[3].Err, ls[4].Err)
	}
	// One lookup, and none.
	one := []store.Lookup{{Coll: b, ID: "b-0"}}
	store.GetAll(ctx, one)
	if one[0].Err != nil || decode(t, one[0].Raw).N != 10 {
		t.Errorf("GetAll of one = %v, %v", one[0].Raw, one[0].Err)
	}
	store.GetAll(ctx, nil)
}

// testGetAllSeesEarlierWrites: many goroutines each write their own
// documents, then read them back with GetAll, round after round, while
// the others do the same (on the embedded store their lookups share read
// transactions): each read answers exactly what its goroutine wrote last,
// never an older version nor another goroutine's document.
func testGetAllSeesEarlierWrites(t *testing.T, im Impl) {
	ctx := ctxT(t)
	a, b := coll(t, im, "a"), coll(t, im, "b")
	const workers, rounds = 12, 15
	for _, err := range concurrently(workers, func(w int) error {
		for r := range rounds {
			ida, idb := fmt.Sprintf("a-%d", w), fmt.Sprintf("b-%d", w)
			n := int64(w*1000 + r)
			if err := a.Upsert(ctx, ida, acceptanceDoc{ID: ida, N: n}); err != nil {
				return err
			}
			if err := b.Upsert(ctx, idb, acceptanceDoc{ID: idb, N: -n, Body: make([]byte, 3000)}); err != nil {
				return err
			}
			ls := []store.Lookup{{Coll: a, ID: ida}, {Coll: b, ID: idb}, {Coll: a, ID: "none"}}
			store.GetAll(ctx, ls)
			var da, db acceptanceDoc
			if ls[0].Err != nil || ls[1].Err != nil || !errors.Is(ls[2].Err, store.ErrNotFound) ||
				bson.Unmarshal(ls[0].Raw, &da) != nil || bson.Unmarshal(ls[1].Raw, &db) != nil {
				return fmt.Errorf("worker %d round %d: GetAll = %v / %v / %v", w, r, ls[0].Err, ls[1].Err, ls[2].Err)
			}
			if da.ID != ida || da.N != n || db.ID != idb || db.N != -n {
				return fmt.Errorf("worker %d round %d: read %s=%d, %s=%d; want %s=%d, %s=%d", w, r, da.ID, da.N, db.ID, db.N, ida, n, idb, -n)
			}
		}
		return nil
	}) {
		t.Error(err)
	}
}

// concurrently runs f(0) … f(n-1) at once and returns the errors they
// returned.
func concurrently(n int, f func(w int) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Go(func() { errs[w] = f(w) })
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}
