package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"crawlcache/configs"
	"crawlcache/frontier"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// downCleanup bounds each cleanup call (final progress, run status, job
// lock) once the store is known to have stopped answering: waiting the
// driver's full server-selection timeout for each, one after another, made
// a run take minutes to give up. What they would write is not lost: the
// lock and frontier leases expire, and the next run marks the run
// interrupted.
const downCleanup = 2 * time.Second

// StoreDownError is returned by Runner when the store stopped answering
// before or during a run. Its message names the store, not the driver's
// operation; errors.Is(err, store.ErrUnreachable) is true, and the
// driver's error is wrapped too. A run it stops is recorded interrupted
// (resumable) when the store still takes the write, and otherwise stays
// running until the next `run` or `resume` marks it interrupted.
type StoreDownError struct {
	// Store describes the store (store.Store.Describe).
	Store string
	// Err is the first error that showed the store was gone.
	Err error
}

// Error says which store stopped answering.
func (e *StoreDownError) Error() string {
	return fmt.Sprintf("%s: %s stopped answering", store.ErrUnreachable, e.Store)
}

// Unwrap returns store.ErrUnreachable and the driver's error.
func (e *StoreDownError) Unwrap() []error { return []error{store.ErrUnreachable, e.Err} }

// storeDown returns err as a *StoreDownError when it says the store did not
// answer, and err unchanged otherwise.
func (r *Runner) storeDown(err error) error {
	var sd *StoreDownError
	if err == nil || errors.As(err, &sd) || !store.IsUnavailable(err) {
		return err
	}
	r.log().Warn("store stopped answering", "store", r.Store.Describe(), "err", err)
	return &StoreDownError{Store: r.Store.Describe(), Err: err}
}

// cleanupCtx is the context of a cleanup call after the run: unbounded by
// an interrupt, and bounded by downCleanup when the store is gone.
func cleanupCtx(ctx context.Context, down bool) (context.Context, context.CancelFunc) {
	bg := context.WithoutCancel(ctx)
	if down {
		return context.WithTimeout(bg, downCleanup)
	}
	return context.WithCancel(bg)
}

// tally reads what the run's durable state says it did: pages and URLs
// failed for good from its frontier, items from its mongodb output. A URL
// skipped by robots.txt is failed in the frontier without being an error,
// so errors are never raised above what the workers reported, only capped
// by the frontier (a failure counted twice across a kill). Items are known
// only when the job has a mongodb output: file outputs are counted by the
// workers.
func (r *Runner) tally(ctx context.Context, runs *Runs, front *frontier.Frontier, job *configs.Job, runID string) (Tally, error) {
	var t Tally
	counts, err := front.Counts(ctx, runID)
	if err != nil {
		return t, err
	}
	rec, err := runs.Get(ctx, runID)
	if err != nil {
		return t, err
	}
	reported := rec.Counters
	t.Cache = cacheTally(reported, rec.Workers)
	pages, failed := int64(counts.Done), int64(counts.Failed)
	t.Pages = &pages
	if reported.Errors > failed {
		t.Errors = &failed
	}
	for _, o := range job.Outputs {
		if o.Kind != configs.OutputMongoDB {
			continue
		}
		// One document by _id: counting the items by run_id scanned every
		// item of every run on the embedded store.
		workers := make([]string, 0, len(rec.Workers)+1)
		for id := range rec.Workers {
			workers = append(workers, id)
		}
		if _, ok := rec.Workers[r.worker()]; !ok {
			workers = append(workers, r.worker())
		}
		n, ok, err := pipeline.ItemCount(ctx, r.Store.Collection(Database, CountersCollection), runID, o.Collection, workers)
		if err != nil {
			return t, err
		}
		if ok {
			t.Items = &n
		}
		break
	}
	return t, nil
}
