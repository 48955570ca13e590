package changes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"crawlcache/store/storetest"
)

// TestFinishSummaryCountsEachPageOnce: a run's summary (parsed, reused,
// statuses, failures by kind) is counted from its records, so a page a
// resumed run fetched twice (its first fetch was never acknowledged)
// counts once, with what it got last; a page no longer reached counts
// nothing; a record of an earlier release makes the summary incomplete.
func TestFinishSummaryCountsEachPageOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.run("shop", "shop-1", page{"/a", 200, "a"}, page{"/gone", 200, "g"})

	tr := e.tracker("shop", "shop-2")
	for _, o := range []Observation{
		{URL: "/a", Status: 200, Body: []byte("a"), Parse: ParseParsed},
		{URL: "/a", Status: 200, Body: []byte("a"), Parse: ParseReused}, // the resume fetched it again
		{URL: "/b", Status: 200, Body: []byte("b"), Parse: ParseParsed},
		{URL: "/img", Status: 200, Body: []byte("png")},
		{URL: "/missing", Status: 404, Body: []byte("no")},
		{URL: "/down", Err: errors.New("status 503 after 2 retries"), ErrorKind: "http_503", Status: 503},
		{URL: "/refused", Err: errors.New("connection refused"), ErrorKind: "network"},
		{URL: "/refused", Err: errors.New("connection refused"), ErrorKind: "network"}, // failed in both sessions
	} {
		if _, err := tr.Observe(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	counts, sum, err := tr.FinishSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Gone != 1 {
		t.Errorf("gone = %d, want 1 (/gone no longer reached)", counts.Gone)
	}
	if !sum.Complete || sum.Parsed != 1 || sum.Reused != 1 {
		t.Errorf("summary = complete %v, parsed %d, reused %d; want complete, 1, 1", sum.Complete, sum.Parsed, sum.Reused)
	}
	if want := map[string]int64{"200": 3, "404": 1, "503": 1}; !maps.Equal(sum.Statuses, want) {
		t.Errorf("statuses = %v, want %v", sum.Statuses, want)
	}
	if want := map[string]int64{"http_503": 1, "network": 1}; !maps.Equal(sum.ErrorKinds, want) {
		t.Errorf("errors by kind = %v, want %v", sum.ErrorKinds, want)
	}

	// A record the previous release wrote (no counted flag) for a run
	// resumed across the upgrade.
	old := Record{ID: RecordID("shop-3", "/a"), Run: "shop-3", Job: "shop", URL: "/a", Kind: KindNew, Status: 200}
	if err := e.s.Collection("crawlcache", RecordsCollection).Upsert(ctx, old.ID, old); err != nil {
		t.Fatal(err)
	}
	if _, sum, err = e.tracker("shop", "shop-3").FinishSummary(ctx); err != nil {
		t.Fatal(err)
	}
	if sum.Complete {
		t.Errorf("summary over a record of an earlier release is complete; want incomplete")
	}
}

// TestFinishFindsExactlyThePagesNoLongerReached: Finish reads this run's
// and the previous run's records at once and matches them by URL hash; on
// a run of many pages every page the previous run reached and this one did
// not is gone, and no other, even a record whose _id is not its URL's
// (edited in Compass). A second Finish finds the same. On the embedded
// store and through the wire (a store reached by URI), whose scans are
// each in _id order by a different path.
func TestFinishFindsExactlyThePagesNoLongerReached(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testFinishGone(t, newEnv(t)) })
	t.Run("wire", func(t *testing.T) { testFinishGone(t, newEnvOn(t, storetest.OpenWire(t).Store)) })
}

func testFinishGone(t *testing.T, e *env) {
	ctx := context.Background()
	var first, second []page
	wantGone := map[string]bool{}
	for i := range 600 {
		p := page{fmt.Sprintf("/p/%d", i), 200, fmt.Sprint("body ", i)}
		first = append(first, p)
		if i%7 == 3 {
			wantGone[p.url] = true
			continue
		}
		second = append(second, p)
	}
	e.run("big", "big-1", first...)
	odd := Record{ID: "big-1/edited", Run: "big-1", Job: "big", URL: "/odd", Kind: KindNew, Status: 200, Counted: true}
	if err := e.s.Collection("crawlcache", RecordsCollection).Upsert(ctx, odd.ID, odd); err != nil {
		t.Fatal(err)
	}
	wantGone["/odd"] = true

	kinds, c := e.run("big", "big-2", second...)
	var gone []string
	for u, k := range kinds {
		if k == KindGone {
			gone = append(gone, u)
		}
		if k == KindGone != wantGone[u] {
			t.Errorf("%s is %q; gone wanted: %v", u, k, wantGone[u])
		}
	}
	if len(gone) != len(wantGone) || c.Gone != int64(len(wantGone)) || c.Unchanged != int64(len(second)) {
		t.Errorf("%d pages recorded gone, counts %+v; want %d gone, %d unchanged", len(gone), c, len(wantGone), len(second))
	}
	again, err := e.tracker("big", "big-2").Finish(ctx)
	if err != nil || again != c {
		t.Errorf("second Finish = %+v, %v; want %+v", again, err, c)
	}
}
