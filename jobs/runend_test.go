package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// newRun creates a run of job "race" with status st in runs.
func newRun(t *testing.T, runs *Runs, id string, st Status) *Run {
	t.Helper()
	r := &Run{ID: id, Job: "race", Status: st, Started: time.Now().UTC()}
	if err := runs.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// race calls op from n goroutines at once, each with its own Runs (as
// separate processes have), and returns how many won and how many were
// refused with ErrNotResumable; any other error fails the test.
func race(t *testing.T, s *store.Store, n int, op func(rs *Runs, i int) (bool, error)) (won, refused int) {
	t.Helper()
	var w, r atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := NewRuns(s, nil)
			<-start
			ok, err := op(rs, i)
			switch {
			case errors.Is(err, ErrNotResumable):
				r.Add(1)
			case err != nil:
				t.Errorf("contender %d: %v", i, err)
			case ok:
				w.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return int(w.Load()), int(r.Load())
}

// TestRunDecisionsOneWinner: of several processes finishing, beginning the
// commit of or reopening the same run at once, exactly one makes each
// decision, and the record shows that one's.
func TestRunDecisionsOneWinner(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	runs := NewRuns(s, nil)
	const n = 8
	run := newRun(t, runs, "race-20261127T000000Z-0001", StatusRunning)

	won, _ := race(t, s, n, func(rs *Runs, i int) (bool, error) {
		pages := int64(100 + i)
		return rs.FinishTally(ctx, run.ID, StatusInterrupted, fmt.Sprint("worker ", i), Tally{Pages: &pages})
	})
	if won != 1 {
		t.Fatalf("finishers that won = %d, want 1", won)
	}
	rec, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusInterrupted || rec.Error != fmt.Sprint("worker ", rec.Counters.Pages-100) {
		t.Errorf("record after the finish race: status %s, error %q, pages %d; want interrupted with the winner's error and pages",
			rec.Status, rec.Error, rec.Counters.Pages)
	}

	won, refused := race(t, s, n, func(rs *Runs, _ int) (bool, error) {
		seen := *run // each process read the record before the race
		err := rs.Reopen(ctx, &seen)
		return err == nil, err
	})
	if won != 1 || refused != n-1 {
		t.Fatalf("reopen race: %d reopened, %d refused; want 1 and %d", won, refused, n-1)
	}
	if rec, err = runs.Get(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusRunning || rec.Resumes != 1 || rec.Finished != nil || rec.Error != "" {
		t.Errorf("record after the reopen race: status %s, resumes %d, finished %v, error %q; want running, 1, none, none",
			rec.Status, rec.Resumes, rec.Finished, rec.Error)
	}

	won, _ = race(t, s, n, func(rs *Runs, _ int) (bool, error) { return rs.beginCommit(ctx, run.ID) })
	if won != 1 {
		t.Fatalf("commits begun = %d, want 1", won)
	}
	if err := runs.OutputCommitted(ctx, run.ID, "jsonl:out"); err != nil {
		t.Fatal(err)
	}
	if err := runs.BeginCommit(ctx, run.ID); err != nil { // a resume finishing the commit
		t.Fatal(err)
	}
	if rec, err = runs.Get(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if rec.Commit == nil || rec.Commit.Started.IsZero() || !rec.Commit.Committed("jsonl:out") {
		t.Errorf("commit after the race and a second begin = %+v, want started with jsonl:out committed", rec.Commit)
	}

	// The second session ends once too, although the first one's end is
	// claimed.
	won, _ = race(t, s, n, func(rs *Runs, _ int) (bool, error) {
		return rs.FinishTally(ctx, run.ID, StatusCompleted, "", Tally{})
	})
	if won != 1 {
		t.Fatalf("finishers of the resumed session that won = %d, want 1", won)
	}
	if rec, err = runs.Get(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusCompleted || rec.Error != "" {
		t.Errorf("record = status %s, error %q; want completed with no error", rec.Status, rec.Error)
	}
	if rec, err = runs.Get(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := runs.Reopen(ctx, rec); !errors.Is(err, ErrNotResumable) {
		t.Errorf("reopen of a completed run: err = %v, want ErrNotResumable", err)
	}
}

// insertClaim stores doc in the locks collection as a process killed right
// after it claimed a decision would have left it.
func insertClaim(t *testing.T, s *store.Store, doc any) {
	t.Helper()
	if err := s.Collection(Database, LocksCollection).Insert(context.Background(), doc); err != nil {
		t.Fatal(err)
	}
}

// deadPID is a process id no process has (above Linux's pid_max).
const deadPID = 1 << 23

// TestRunDecisionsSurviveKill: a process killed between claiming a
// decision and writing the record leaves a run the next process completes.
func TestRunDecisionsSurviveKill(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		claim       func(runID string, now time.Time) any
		wantErr     error
		wantStatus  Status
		wantResumes int
	}{
		{"killed after claiming the end as completed",
			func(id string, now time.Time) any {
				pages := int64(42)
				return endClaim{ID: runClaimID(id, "end", 0), Run: id, Status: StatusCompleted, Finished: now,
					Tally: Tally{Pages: &pages}, Host: hostname(), PID: deadPID}
			}, ErrNotResumable, StatusCompleted, 0},
		{"killed after claiming the end as interrupted",
			func(id string, now time.Time) any {
				return endClaim{ID: runClaimID(id, "end", 0), Run: id, Status: StatusInterrupted, Finished: now,
					Error: "interrupted", Host: hostname(), PID: deadPID}
			}, nil, StatusRunning, 1},
		{"killed after claiming a reopen",
			func(id string, now time.Time) any {
				return reopenClaim{ID: runClaimID(id, "reopen", 0), Run: id, At: now, Host: hostname(), PID: deadPID}
			}, nil, StatusRunning, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			runs := NewRuns(s, nil)
			run := newRun(t, runs, "kill-20261127T000000Z-0001", StatusRunning)
			insertClaim(t, s, tc.claim(run.ID, time.Now().UTC()))
			err := runs.Reopen(ctx, run)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("reopen: err = %v, want %v", err, tc.wantErr)
			}
			rec, err := runs.Get(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != tc.wantStatus || rec.Resumes != tc.wantResumes {
				t.Errorf("record = status %s, resumes %d; want %s, %d", rec.Status, rec.Resumes, tc.wantStatus, tc.wantResumes)
			}
			if tc.wantStatus == StatusCompleted && rec.Counters.Pages != 42 {
				t.Errorf("pages = %d, want 42 (the claimed tally)", rec.Counters.Pages)
			}
		})
	}

	t.Run("killed after claiming the commit", func(t *testing.T) {
		s := storetest.Open(t)
		runs := NewRuns(s, nil)
		run := newRun(t, runs, "kill-20261127T000000Z-0002", StatusRunning)
		started := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
		insertClaim(t, s, commitClaim{ID: runClaimID(run.ID, "commit", -1), Run: run.ID, Started: started})
		won, err := runs.beginCommit(ctx, run.ID)
		if err != nil || won {
			t.Fatalf("beginCommit = %v, %v; want false (claimed before), nil", won, err)
		}
		rec, err := runs.Get(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Commit == nil || !rec.Commit.Started.Equal(started) {
			t.Errorf("commit = %+v, want started %s (the claim's)", rec.Commit, started)
		}
	})

	t.Run("a live process's unwritten reopen is its own", func(t *testing.T) {
		s := storetest.Open(t)
		runs := NewRuns(s, nil)
		run := newRun(t, runs, "kill-20261127T000000Z-0003", StatusInterrupted)
		insertClaim(t, s, reopenClaim{ID: runClaimID(run.ID, "reopen", 0), Run: run.ID, At: time.Now().UTC(), Host: hostname(), PID: 1})
		if err := runs.Reopen(ctx, run); !errors.Is(err, ErrNotResumable) {
			t.Errorf("reopen while another live process reopens: err = %v, want ErrNotResumable", err)
		}
	})
}

// TestRunDecisionsOnReleaseFixture: run records written by the previous
// release (no claims) are finished and reopened as ours are.
func TestRunDecisionsOnReleaseFixture(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	runs := NewRuns(s, nil)
	const id = "fixture-public-20261203T125433Z-d066"
	run, err := runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := runs.Reopen(ctx, run); !errors.Is(err, ErrNotResumable) {
		t.Fatalf("reopen of the fixture's completed run: err = %v, want ErrNotResumable", err)
	}
	if won, err := runs.Finish(ctx, id, StatusFailed, "late"); err != nil || won {
		t.Fatalf("finish of a completed run = %v, %v; want false, nil", won, err)
	}
	// The same record as the previous release leaves a run it interrupted.
	if _, err := s.Collection(Database, RunsCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: StatusInterrupted}}}}, false); err != nil {
		t.Fatal(err)
	}
	if err := runs.Reopen(ctx, run); err != nil {
		t.Fatalf("reopen of the fixture's run once interrupted: %v", err)
	}
	if won, err := runs.Finish(ctx, id, StatusCompleted, ""); err != nil || !won {
		t.Fatalf("finish of the reopened fixture run = %v, %v; want true, nil", won, err)
	}
	rec, err := runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusCompleted || rec.Resumes != 1 || rec.Counters.Pages != 8 || rec.Counters.Items != 76 {
		t.Errorf("fixture run = status %s, resumes %d, pages %d, items %d; want completed, 1, 8, 76",
			rec.Status, rec.Resumes, rec.Counters.Pages, rec.Counters.Items)
	}
}
