package changes

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Page states and records are documents anyone with the store can edit
// (Compass). A state that does not decode makes its page count as first
// seen, never fails the run, and is rewritten, so the next run is back to
// normal; a previous run's record that does not decode is skipped (its
// page cannot be known to have been reached, so it is not reported gone).
func TestDamagedStatesAndRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pages := e.s.Collection("crawlcache", PagesCollection)
	records := e.s.Collection("crawlcache", RecordsCollection)
	e.run("j", "j-1", page{"/a", 200, "a"}, page{"/b", 200, "b"}, page{"/c", 200, "c"}, page{"/d", 200, "d"})

	if _, err := pages.UpdateOne(ctx, bson.D{{Key: "_id", Value: PageID("j", "/a")}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "garbage"}}}}, false); err != nil {
		t.Fatal(err)
	}
	if err := pages.Upsert(ctx, PageID("j", "/b"), bson.D{{Key: "_id", Value: PageID("j", "/b")}, {Key: "versions", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.UpdateOne(ctx, bson.D{{Key: "_id", Value: RecordID("j-1", "/d")}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "kind", Value: 42}}}}, false); err != nil {
		t.Fatal(err)
	}

	kinds, c := e.run("j", "j-2", page{"/a", 200, "a"}, page{"/b", 200, "b"}, page{"/c", 200, "c"})
	want := map[string]string{"/a": KindNew, "/b": KindNew, "/c": KindUnchanged}
	for u, k := range want {
		if kinds[u] != k {
			t.Errorf("run 2: %s is %q, want %q", u, kinds[u], k)
		}
	}
	if c != (Counts{New: 2, Unchanged: 1}) || kinds["/d"] != "" {
		t.Errorf("run 2: counts %+v, /d %q; want 2 new, 1 unchanged, /d not recorded", c, kinds["/d"])
	}
	kinds, c = e.run("j", "j-3", page{"/a", 200, "a"}, page{"/b", 200, "b"}, page{"/c", 200, "c"})
	if c != (Counts{Unchanged: 3}) {
		t.Errorf("run 3: counts %+v, kinds %v; want the 3 pages unchanged (states rewritten)", c, kinds)
	}
}
