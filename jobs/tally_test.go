package jobs

import (
	"context"
	"maps"
	"testing"
	"time"

	"crawlcache/changes"
	"crawlcache/store/storetest"
)

// TestCacheTally: the run's cache counters never end below the sum of its
// workers' own totals, which a lost increment leaves them under.
func TestCacheTally(t *testing.T) {
	w := func(hits, misses, bytes int64) Worker {
		return Worker{Counters: Counters{Hits: hits, Misses: misses, NetworkBytes: bytes}}
	}
	for _, tc := range []struct {
		name     string
		reported Counters
		workers  map[string]Worker
		want     *Counters
	}{
		{name: "increments all landed", reported: Counters{Pages: 9, Hits: 5, Misses: 4, NetworkBytes: 40},
			workers: map[string]Worker{"a": w(3, 2, 20), "b": w(2, 2, 20)}},
		{name: "one increment lost", reported: Counters{Pages: 9, Hits: 3, Misses: 4, NetworkBytes: 40},
			workers: map[string]Worker{"a": w(3, 2, 20), "b": w(2, 2, 20)},
			want:    &Counters{Pages: 9, Hits: 5, Misses: 4, NetworkBytes: 40}},
		{name: "a worker's last report missing keeps the higher run counter", reported: Counters{Hits: 7, Misses: 1},
			workers: map[string]Worker{"a": w(5, 3, 0)},
			want:    &Counters{Hits: 7, Misses: 3}},
		{name: "no workers recorded", reported: Counters{Hits: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cacheTally(tc.reported, tc.workers)
			switch {
			case (got == nil) != (tc.want == nil):
				t.Fatalf("cacheTally = %+v, want %+v", got, tc.want)
			case got != nil && *got != *tc.want:
				t.Errorf("cacheTally = %+v, want %+v", *got, *tc.want)
			}
		})
	}
}

// TestFinishTallySetsCacheCounters: the tally reaches the run record in
// the finishing update.
func TestFinishTallySetsCacheCounters(t *testing.T) {
	ctx := context.Background()
	runs := NewRuns(storetest.Open(t), nil)
	run := &Run{ID: "tally-20261127T000000Z-0001", Job: "tally", Status: StatusRunning, Started: time.Now()}
	if err := runs.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	// Two reports whose increments were lost: only the workers' totals
	// say what they did.
	for _, id := range []string{"a", "b"} {
		if err := runs.Report(ctx, run.ID, id, Counters{Pages: 2, Hits: 2, SavedBytes: 100}, Counters{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	pages := int64(4)
	if _, err := runs.FinishTally(ctx, run.ID, StatusCompleted, "", Tally{Pages: &pages, Cache: cacheTally(rec.Counters, rec.Workers)}); err != nil {
		t.Fatal(err)
	}
	if rec, err = runs.Get(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if c := rec.Counters; c.Pages != 4 || c.Hits != 4 || c.SavedBytes != 200 {
		t.Errorf("counters after finish = %+v, want pages 4, hits 4, saved_bytes 200", c)
	}
}

// TestFinishTallySetsSummary: parsed, reused and the breakdown counted
// from the run's records replace what the workers reported (a killed
// session's last reports lost, pages of it fetched again by the resume).
func TestFinishTallySetsSummary(t *testing.T) {
	ctx := context.Background()
	runs := NewRuns(storetest.Open(t), nil)
	run := &Run{ID: "sum-20261127T000000Z-0001", Job: "sum", Status: StatusRunning, Started: time.Now()}
	if err := runs.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	reported := Breakdown{ErrorKinds: map[string]int64{"network": 3}, Statuses: map[string]int64{"200": 9, "503": 1}}
	if err := runs.report(ctx, run.ID, "a", Counters{Parsed: 7}, Counters{Parsed: 7, Reused: 2}, reported, 0); err != nil {
		t.Fatal(err)
	}
	var tally Tally
	tally.setSummary(changes.Summary{Parsed: 10, Reused: 1, Complete: true,
		Statuses: map[string]int64{"200": 11, "404": 1}, ErrorKinds: map[string]int64{"network": 1}})
	if _, err := runs.FinishTally(ctx, run.ID, StatusCompleted, "", tally); err != nil {
		t.Fatal(err)
	}
	rec, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.Counters; c.Parsed != 10 || c.Reused != 1 {
		t.Errorf("parsed, reused = %d, %d; want 10, 1", c.Parsed, c.Reused)
	}
	if b := rec.Breakdown; !maps.Equal(b.Statuses, map[string]int64{"200": 11, "404": 1}) || !maps.Equal(b.ErrorKinds, map[string]int64{"network": 1}) {
		t.Errorf("breakdown = %+v, want statuses 200 ×11, 404 ×1 and 1 network error", b)
	}

	var none Tally
	none.setSummary(changes.Summary{Parsed: 1}) // incomplete: records of an earlier release
	if none.Parses != nil || none.Breakdown != nil {
		t.Errorf("an incomplete summary set %+v, %+v; want nothing (the reports are kept)", none.Parses, none.Breakdown)
	}
}

// TestReportAfterFinish: a worker's report that arrives after another
// worker completed the run (seen in the fleet test: the record said 197
// pages for 195 URLs) leaves the counters the end counted itself as they
// are, and still adds the cache's counters and the worker's own totals.
func TestReportAfterFinish(t *testing.T) {
	ctx := context.Background()
	runs := NewRuns(storetest.Open(t), nil)
	run := &Run{ID: "late-20261127T000000Z-0001", Job: "late", Status: StatusRunning, Started: time.Now()}
	if err := runs.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := runs.Report(ctx, run.ID, "a", Counters{Pages: 9, Items: 9, New: 9, Misses: 9}, Counters{Pages: 9, Items: 9, New: 9, Misses: 9}, 1); err != nil {
		t.Fatal(err)
	}
	pages, items := int64(10), int64(10)
	var tally Tally
	tally.Pages, tally.Items = &pages, &items
	tally.Changes = &changes.Counts{New: 10}
	if _, err := runs.FinishTally(ctx, run.ID, StatusCompleted, "", tally); err != nil {
		t.Fatal(err)
	}
	// a's last page, reported late.
	last := Counters{Pages: 1, Items: 1, New: 1, Misses: 1, NetworkBytes: 500}
	if err := runs.Report(ctx, run.ID, "a", Counters{Pages: 10, Items: 10, New: 10, Misses: 10, NetworkBytes: 500}, last, 0); err != nil {
		t.Fatal(err)
	}
	rec, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.Counters; c.Pages != 10 || c.Items != 10 || c.New != 10 || c.Misses != 10 || c.NetworkBytes != 500 {
		t.Errorf("counters after a late report = %+v; want pages, items and new 10 (the end's), misses 10 and network_bytes 500 (added)", c)
	}
	if w := rec.Workers["a"].Counters; w.Pages != 10 || rec.Status != StatusCompleted {
		t.Errorf("worker a's totals = %+v, status %s; want pages 10, completed", w, rec.Status)
	}
}
