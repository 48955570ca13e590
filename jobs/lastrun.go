package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// LastRunsCollection holds one document per job, _id the job name, that
// names the job's newest run: {_id: "docs", run_id: "docs-20261127T040512Z-3fa9",
// started: ISODate(…)}. Every start of a run reads the job's last run; this
// makes that two reads by _id instead of a scan of every run record (the
// embedded store decodes every document for any filter but _id).
const LastRunsCollection = "last_runs"

// lastRunsComplete is the _id of the document that says every job's newest
// run is in LastRunsCollection, so that a job without a document there has
// no runs. A store written by an earlier release has neither: the first
// Last scans the run records once and writes them. Job names cannot hold
// '#'.
const lastRunsComplete = "#complete"

// lastRun is a document of LastRunsCollection.
type lastRun struct {
	ID      string    `bson:"_id"`
	RunID   string    `bson:"run_id"`
	Started time.Time `bson:"started"`
}

// setLast records r as its job's newest run. Create calls it before it
// inserts r: a crash between the two leaves a pointer to a run that does
// not exist, which Last detects (and then scans), never a pointer that
// hides the newest run.
func (rs *Runs) setLast(ctx context.Context, r *Run) error {
	doc := lastRun{ID: r.Job, RunID: r.ID, Started: r.Started}
	if err := rs.last.Upsert(ctx, r.Job, doc); err != nil {
		return fmt.Errorf("record run %s as the last of job %s: %w", r.ID, r.Job, err)
	}
	return nil
}

// Last returns the job's newest run, or nil when it has none. It reads the
// job's document in LastRunsCollection and the run, both by _id. On a store
// written by an earlier release (no such documents yet), the first call
// scans the run records once and records every job's newest run. When the
// run named there does not exist (its creator crashed before writing it, or
// it was deleted by hand), Last finds the newest by scanning the job's run
// records.
func (rs *Runs) Last(ctx context.Context, job string) (*Run, error) {
	var p lastRun
	err := getDoc(ctx, rs.last, job, &p)
	switch {
	case err == nil:
		r, err := rs.Get(ctx, p.RunID)
		if errors.Is(err, ErrRunNotFound) {
			return rs.scanLast(ctx, job)
		}
		return r, err
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("find the last run of job %s: %w", job, err)
	}
	_, err = rs.last.Get(ctx, lastRunsComplete)
	switch {
	case err == nil:
		return nil, nil // recorded since the upgrade: the job never ran
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("find the last run of job %s: %w", job, err)
	}
	newest, err := rs.backfillLast(ctx)
	if err != nil {
		return nil, err
	}
	return newest[job], nil
}

// scanLast returns the job's newest run record by scanning them.
func (rs *Runs) scanLast(ctx context.Context, job string) (*Run, error) {
	runs, err := rs.List(ctx, ListOptions{Job: job, Limit: 1})
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return runs[0], nil
}

// backfillLast records every job's newest run on a store that has no
// LastRunsCollection yet (written by an earlier release), then marks it
// complete, and returns the newest run of each job. It scans every run
// record, once per store. A job's document already there (a run created
// meanwhile) is kept: it is newer.
func (rs *Runs) backfillLast(ctx context.Context) (map[string]*Run, error) {
	all, err := rs.List(ctx, ListOptions{})
	if err != nil {
		return nil, err
	}
	newest := make(map[string]*Run)
	for _, r := range all { // newest first
		if _, ok := newest[r.Job]; !ok && r.Job != "" {
			newest[r.Job] = r
		}
	}
	for job, r := range newest {
		err := rs.last.Insert(ctx, lastRun{ID: job, RunID: r.ID, Started: r.Started})
		if err != nil && !errors.Is(err, store.ErrDuplicateID) {
			return nil, fmt.Errorf("record run %s as the last of job %s: %w", r.ID, job, err)
		}
	}
	err = rs.last.Insert(ctx, bson.D{{Key: "_id", Value: lastRunsComplete}, {Key: "at", Value: rs.now().UTC()}})
	if err != nil && !errors.Is(err, store.ErrDuplicateID) {
		return nil, fmt.Errorf("record that every job's last run is in %s: %w", LastRunsCollection, err)
	}
	return newest, nil
}
