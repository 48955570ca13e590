package jobs

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// runReads records the finds sent for the runs and last_runs collections
// whose filter is anything but one _id.
type runReads struct {
	mu    sync.Mutex
	scans []string
}

func (rr *runReads) observe(c store.Command) {
	if c.Name != "find" && c.Name != "aggregate" && c.Name != "count" {
		return
	}
	if c.Collection != RunsCollection && c.Collection != LastRunsCollection {
		return
	}
	if c.Name == "find" && c.FilterKind == store.FilterID {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.scans = append(rr.scans, c.Name+" "+c.Collection+" "+c.Filter.String())
}

func (rr *runReads) take() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := rr.scans
	rr.scans = nil
	return out
}

// The last run of a job is found by _id at each start, also on a store
// written by the previous release (its run records are scanned once, on the
// first start, and never again), and follows the runs created since.
func TestLastRunByIDOnTheLastReleasesStore(t *testing.T) {
	ctx := context.Background()
	reads := &runReads{}
	s, err := store.Open(ctx, store.Options{
		DataDir: storetest.FixtureDir(t, storetest.FixtureE6C68C8), Logger: slog.New(slog.DiscardHandler),
		Command: "test", OnCommand: reads.observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	runs := NewRuns(s, nil)
	all, err := runs.List(ctx, ListOptions{})
	if err != nil || len(all) != 2 {
		t.Fatalf("fixture runs: %d, %v; want 2", len(all), err)
	}
	reads.take()

	last := func(job string) *Run {
		t.Helper()
		r, err := runs.Last(ctx, job)
		if err != nil {
			t.Fatalf("Last(%s): %v", job, err)
		}
		return r
	}
	// First start after the upgrade: one scan of the run records.
	for _, want := range all {
		if got := last(want.Job); got == nil || got.ID != want.ID {
			t.Errorf("Last(%s) = %v, want run %s of the fixture", want.Job, got, want.ID)
		}
	}
	if got := reads.take(); len(got) != 1 {
		t.Errorf("the first Lasts on the old store scanned %d times (%v), want once", len(got), got)
	}

	newer := &Run{ID: NewRunID(all[0].Job, time.Now()), Job: all[0].Job, Started: time.Now().UTC()}
	if err := runs.Create(ctx, newer); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		job    string
		wantID string // "" for none
	}{
		{all[0].Job, newer.ID},
		{all[1].Job, all[1].ID},
		{"never-ran", ""},
	}
	for _, tc := range cases {
		t.Run(tc.job, func(t *testing.T) {
			got := last(tc.job)
			switch {
			case tc.wantID == "" && got != nil:
				t.Errorf("Last(%s) = run %s, want none", tc.job, got.ID)
			case tc.wantID != "" && (got == nil || got.ID != tc.wantID):
				t.Errorf("Last(%s) = %v, want run %s", tc.job, got, tc.wantID)
			}
			if scans := reads.take(); len(scans) > 0 {
				t.Errorf("Last(%s) scanned: %v; want reads by _id only", tc.job, scans)
			}
		})
	}
}

// A crash between recording a run as its job's last and writing the run
// record leaves a pointer to no run: Last then finds the newest existing
// run, as if the pointer were not there.
func TestLastRunAfterCrashInCreate(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	runs := NewRuns(s, nil)
	old := &Run{ID: NewRunID("j", time.Now().Add(-time.Hour)), Job: "j"}
	if err := runs.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	ghost := &Run{ID: NewRunID("j", time.Now()), Job: "j", Started: time.Now().UTC()}
	if err := runs.setLast(ctx, ghost); err != nil { // and the process dies
		t.Fatal(err)
	}
	got, err := runs.Last(ctx, "j")
	if err != nil || got == nil || got.ID != old.ID {
		t.Fatalf("Last = %v, %v; want run %s", got, err, old.ID)
	}
}
