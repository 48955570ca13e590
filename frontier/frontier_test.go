package frontier_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/frontier"
)

func TestID(t *testing.T) {
	a := frontier.ID("run1", "https://example.org/")
	tests := []struct {
		name string
		got  string
		same bool
	}{
		{"deterministic", frontier.ID("run1", "https://example.org/"), true},
		{"other url", frontier.ID("run1", "https://example.org/x"), false},
		{"other run", frontier.ID("run2", "https://example.org/"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.got == a) != tt.same {
				t.Errorf("ID = %q, first = %q, want same=%v", tt.got, a, tt.same)
			}
		})
	}
	if !strings.HasPrefix(a, "run1-") || len(a) != len("run1-")+32 {
		t.Errorf("ID = %q, want run1- and 32 hex digits", a)
	}
}

func TestAddIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	f := newFrontier(t, db, clk)
	u := frontier.Link{URL: "https://example.org/a", Host: "example.org"}
	v := frontier.Link{URL: "https://example.org/b", Host: "example.org", Depth: 1, Parent: u.URL}

	steps := []struct {
		name      string
		f         *frontier.Frontier
		links     []frontier.Link
		wantAdded int
	}{
		{"same URL twice in one call", f, []frontier.Link{u, u}, 1},
		{"known URL again", f, []frontier.Link{u}, 0},
		{"one new one known", f, []frontier.Link{u, v}, 1},
		{"another process without the seen set", newFrontier(t, db, clk), []frontier.Link{v, u}, 0},
		{"empty", f, nil, 0},
	}
	for _, s := range steps {
		got, err := s.f.Add(ctx, "r", s.links)
		if err != nil {
			t.Fatalf("%s: Add: %v", s.name, err)
		}
		if got != s.wantAdded {
			t.Errorf("%s: added = %d, want %d", s.name, got, s.wantAdded)
		}
	}
	if got, want := mustCounts(t, f, "r"), (frontier.Counts{Pending: 2}); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}

func TestAddLargeBatch(t *testing.T) {
	f := newFrontier(t, openDB(t), newClock())
	if got := mustAdd(t, f, "r", links(1200, "a.example")); got != 1200 {
		t.Fatalf("added = %d, want 1200", got)
	}
	// A second process re-adds an overlapping set: only the new ones count.
	g := newFrontier(t, openDB(t), newClock()) // other store: all new
	if got := mustAdd(t, g, "r", links(10, "a.example")); got != 10 {
		t.Errorf("added on other store = %d, want 10", got)
	}
	if got := mustAdd(t, f, "r", links(1300, "a.example")); got != 100 {
		t.Errorf("added = %d, want 100", got)
	}
}

func TestClaimDone(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(3, "a.example"))

	es := mustClaim(t, f, "r", "w1", 2)
	if len(es) != 2 {
		t.Fatalf("claimed %d, want 2", len(es))
	}
	for _, e := range es {
		if e.State != frontier.Leased || e.Worker != "w1" || !e.LeaseUntil.Equal(clk.Now().Add(testLease)) || e.RunID != "r" || e.URL == "" || e.Host != "a.example" {
			t.Errorf("claimed entry = %+v, want leased to w1 until now+lease", e)
		}
	}
	if es[0].URL != "https://a.example/page/0" {
		t.Errorf("first claim = %s, want page/0 (FIFO)", es[0].URL)
	}
	if got := mustCounts(t, f, "r"); got != (frontier.Counts{Pending: 1, Leased: 2}) {
		t.Errorf("Counts after claim = %+v", got)
	}
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatalf("Done: %v", err)
	}
	unknown := frontier.ID("r", "https://a.example/never-added")
	for name, err := range map[string]error{
		"Done(malformed id)": f.Done(ctx, "r-nope"),
		"Done(unknown id)":   f.Done(ctx, unknown),
		"Fail(unknown id)":   f.Fail(ctx, unknown, errors.New("x"), true),
	} {
		if !errors.Is(err, frontier.ErrNotFound) {
			t.Errorf("%s = %v, want ErrNotFound", name, err)
		}
	}
	rest := mustClaim(t, f, "r", "w1", 5)
	if len(rest) != 1 {
		t.Fatalf("second claim got %d, want 1", len(rest))
	}
	if got := mustClaim(t, f, "r", "w1", 5); len(got) != 0 {
		t.Errorf("third claim got %v, want none", ids(got))
	}
	if got := mustCounts(t, f, "r"); got != (frontier.Counts{Leased: 2, Done: 1}) {
		t.Errorf("Counts = %+v", got)
	}
}

func TestDrained(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t)
	f := newFrontier(t, db, clk)
	other := newFrontier(t, db, clk)

	check := func(name string, fr *frontier.Frontier, want bool) {
		t.Helper()
		got, err := fr.Drained(ctx, "r")
		if err != nil {
			t.Fatalf("%s: Drained: %v", name, err)
		}
		if got != want {
			t.Errorf("%s: Drained = %v, want %v", name, got, want)
		}
	}
	check("empty run", f, true)
	mustAdd(t, f, "r", links(2, "a.example"))
	check("pending", f, false)
	es := mustClaim(t, f, "r", "w1", 2)
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	check("one leased here", f, false)
	check("one leased elsewhere", other, false)
	if err := f.Fail(ctx, es[1].ID, errors.New("boom"), false); err != nil {
		t.Fatal(err)
	}
	check("done and failed", f, true)
	// other last saw es[1] leased: it waits for that lease, scanning at
	// most every ScanInterval (5s by default on the embedded server).
	check("done and failed, other process, scanned just now", other, false)
	clk.Advance(6 * time.Second)
	check("done and failed, other process, next scan", other, true)
}

func TestPurge(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "old", links(5, "a.example"))
	mustAdd(t, f, "new", links(3, "a.example"))
	es := mustClaim(t, f, "old", "w", 2)
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	n, err := f.Purge(ctx, "old")
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if want := int64(5 + 3 + 1); n != want { // 5 entries, claim+done+claim log records, 1 worker
		t.Errorf("Purge deleted %d documents, want %d", n, want)
	}
	if got := mustCounts(t, f, "old"); got != (frontier.Counts{}) {
		t.Errorf("Counts(old) after Purge = %+v, want zero", got)
	}
	if got := mustCounts(t, f, "new"); got != (frontier.Counts{Pending: 3}) {
		t.Errorf("Counts(new) after Purge of old = %+v, want 3 pending", got)
	}
}

// A Frontier that is the only one ever registered for a run knows the whole
// run: Drained answers from memory. Shown by a document written behind its
// back (which no real worker does: every Frontier registers first).
func TestDrainedAloneDoesNotScan(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t)
	f := newFrontier(t, db, clk)
	mustAdd(t, f, "r", links(1, "a.example"))
	es := mustClaim(t, f, "r", "w", 1)
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Collection(testDB, frontier.EntriesCollection).Insert(ctx, bson.D{
		{Key: "_id", Value: frontier.ID("r", "https://unregistered.example/")}, {Key: "run_id", Value: "r"}, {Key: "url", Value: "https://unregistered.example/"},
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Drained(ctx, "r"); err != nil || !got {
		t.Errorf("Drained alone = %v, %v; want true from memory", got, err)
	}
	// A second Frontier (a worker joining) makes the first one scan.
	g := newFrontier(t, db, clk)
	if _, err := g.LoadRun(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Drained(ctx, "r"); err != nil || got {
		t.Errorf("Drained with another worker registered = %v, %v; want false (scan finds the entry)", got, err)
	}
}
