package changes

import (
	"context"
	"errors"
	"maps"
	"testing"
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
