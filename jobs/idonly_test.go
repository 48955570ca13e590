package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// filterLog records the filters of the commands the client sends for the
// run records and the locks while it is on.
type filterLog struct {
	mu   sync.Mutex
	on   bool
	seen []string // "command collection filter" of every filter not _id equality alone
}

func (f *filterLog) onCommand(c store.Command) {
	if c.Database != Database || !slices.Contains([]string{RunsCollection, LocksCollection, LastRunsCollection}, c.Collection) || c.Name == "insert" {
		return
	}
	elems, _ := c.Filter.Elements()
	if len(elems) == 1 && elems[0].Key() == "_id" && elems[0].Value().Type == bson.TypeString {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on {
		f.seen = append(f.seen, fmt.Sprintf("%s %s %s", c.Name, c.Collection, c.Filter))
	}
}

func (f *filterLog) record(on bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on = on
	out := f.seen
	f.seen = nil
	return out
}

// TestRunPathSendsOnlyIDFilters: on the embedded store a filter other than
// _id equality alone decodes every document of the collection (every run
// of every job, every lock), so nothing on a run's path sends one: taking
// and keeping the job lock, starting, reporting, finishing, committing and
// reopening a run, with other runs and locks in the store.
func TestRunPathSendsOnlyIDFilters(t *testing.T) {
	ctx := context.Background()
	log := &filterLog{}
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Command: "test", OnCommand: log.onCommand})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	clock := newFakeClock()
	runs, locker := NewRuns(s, clock.Now), NewLocker(s, clock.Now)
	for i := range 20 { // history: other jobs' runs and locks
		job := fmt.Sprint("old", i)
		lease, err := locker.Acquire(ctx, job, "w", "")
		if err != nil {
			t.Fatal(err)
		}
		r := &Run{ID: NewRunID(job, clock.Now()), Job: job}
		if err := runs.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := runs.Finish(ctx, r.ID, StatusCompleted, ""); err != nil {
			t.Fatal(err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run := &Run{ID: NewRunID("docs", clock.Now()), Job: "docs"}
	var lease *Lease
	steps := []struct {
		name string
		op   func() error
	}{
		{"acquire", func() (err error) { lease, err = locker.Acquire(ctx, "docs", "w", ""); return err }},
		{"create", func() error { return runs.Create(ctx, run) }},
		{"set run on the lock", func() error { return lease.SetRun(ctx, run.ID) }},
		{"join", func() error { return runs.JoinWorker(ctx, run.ID, Worker{ID: "w"}) }},
		{"report", func() error { return runs.Report(ctx, run.ID, "w", Counters{Pages: 1}, Counters{Pages: 1}, 3) }},
		{"last", func() error { _, err := runs.Last(ctx, "docs"); return err }},
		{"finish interrupted", func() error { _, err := runs.Finish(ctx, run.ID, StatusInterrupted, "stop"); return err }},
		{"reopen", func() error {
			rec, err := runs.settled(ctx, run.ID)
			if err != nil {
				return err
			}
			return runs.Reopen(ctx, rec)
		}},
		{"renew", func() error { clock.Advance(10 * time.Second); return lease.Renew(ctx) }},
		{"begin commit", func() error { return runs.BeginCommit(ctx, run.ID) }},
		{"output committed", func() error { return runs.OutputCommitted(ctx, run.ID, "jsonl:out") }},
		{"finish completed", func() error { _, err := runs.Finish(ctx, run.ID, StatusCompleted, ""); return err }},
		{"release", func() error { return lease.Release(ctx) }},
		{"expire", func() error {
			b, err := locker.Acquire(ctx, "docs", "w2", "")
			if err != nil {
				return err
			}
			return locker.Expire(ctx, "docs", b.Lock())
		}},
	}
	for _, st := range steps {
		log.record(true)
		err := st.op()
		got := log.record(false)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(got) > 0 {
			t.Errorf("%s sent filters other than _id equality: %v", st.name, got)
		}
	}
	rec, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusCompleted || rec.Resumes != 1 || !rec.Commit.Committed("jsonl:out") {
		t.Errorf("run = status %s, resumes %d, commit %+v; want completed, 1, jsonl:out committed", rec.Status, rec.Resumes, rec.Commit)
	}
}
