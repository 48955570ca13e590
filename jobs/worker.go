package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"crawlcache/configs"
	"crawlcache/crawler"
)

// DefaultWorkPoll is how often Runner.Work looks for running runs while it
// waits for one (WorkOptions.Wait).
const DefaultWorkPoll = time.Second

// ErrNoRunningRun is returned by Runner.Work when no run it may join was
// running (within WorkOptions.Wait).
var ErrNoRunningRun = errors.New("no running run to join")

// WorkOptions say which runs Runner.Work joins and how it finds their
// configs.
type WorkOptions struct {
	// RunID joins only this run; it must be running.
	RunID string
	// Job joins only the running runs of this job. Ignored with RunID.
	Job string
	// LoadJob returns the config of run (e.g. from run.ConfigPath, or by
	// run.Job from a directory of configs). Required.
	LoadJob func(ctx context.Context, run *Run) (*configs.Job, error)
	// Wait is how long Work keeps looking for a running run before its
	// first join; zero means it looks once. After a join it always looks
	// once more, then returns when nothing is left.
	Wait time.Duration
	// Poll is how often it looks while waiting; if zero, DefaultWorkPoll.
	Poll time.Duration
	// Stale: a running run whose record nobody updated for this long is
	// not joined (its processes died: `crawlcache resume` continues it). If
	// zero, DefaultLockTTL.
	Stale time.Duration
}

// Work makes this process a worker of running runs: with RunID it joins
// that run (Join); otherwise it joins, oldest first, every running run
// (of Job, if set) that records OptionHostLeases and is alive, one after
// another, looking again after each, until none is left. It never starts a
// run. It returns the outcome of each run it joined, and:
//   - an error wrapping ErrNoRunningRun when it joined nothing;
//   - an error wrapping crawler.ErrInterrupted when ctx was cancelled
//     during a join (the run goes on without this worker);
//   - an error wrapping ErrTooManyErrors when a run it joined completed
//     with too many errors (see Outcome.Verdict), as Run and Resume do;
//   - the first other join error (a failed join does not stop the others).
func (r *Runner) Work(ctx context.Context, o WorkOptions) ([]*Outcome, error) {
	if o.LoadJob == nil {
		return nil, errors.New("work: WorkOptions.LoadJob is nil")
	}
	if o.RunID != "" {
		runs, _ := r.db()
		run, err := runs.Get(ctx, o.RunID)
		if err != nil {
			return nil, err
		}
		if run.Status != StatusRunning {
			return nil, fmt.Errorf("join run %s: it is %s: %w", run.ID, run.Status, ErrNoRunningRun)
		}
		out, err := r.join(ctx, run, o)
		if out == nil {
			return nil, err
		}
		return []*Outcome{out}, err
	}

	var (
		outs     []*Outcome
		firstErr error
		tried    = map[string]bool{}
		deadline = r.now().Add(o.Wait)
	)
	for {
		next, err := r.nextRun(ctx, o, tried)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: %w", crawler.ErrInterrupted, err)
			}
			return outs, errors.Join(firstErr, err)
		}
		if next == nil {
			if len(outs) > 0 || firstErr != nil || !r.now().Before(deadline) {
				break
			}
			if err := r.pause(ctx, o.Poll); err != nil {
				return outs, errors.Join(firstErr, err)
			}
			continue
		}
		tried[next.ID] = true
		out, err := r.join(ctx, next, o)
		if out != nil {
			outs = append(outs, out)
		}
		if ctx.Err() != nil {
			return outs, errors.Join(firstErr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrTooManyErrors) {
				r.log().Warn("worker: join failed", "run", next.ID, "err", err)
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if len(outs) == 0 && firstErr == nil {
		what := "any job"
		if o.Job != "" {
			what = "job " + o.Job
		}
		return nil, fmt.Errorf("%w of %s", ErrNoRunningRun, what)
	}
	return outs, firstErr
}

// join loads run's config and joins it.
func (r *Runner) join(ctx context.Context, run *Run, o WorkOptions) (*Outcome, error) {
	job, err := o.LoadJob(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("config of run %s (job %s): %w", run.ID, run.Job, err)
	}
	if job.Name != run.Job {
		return nil, fmt.Errorf("config %s is job %s, but run %s belongs to job %s", job.Source, job.Name, run.ID, run.Job)
	}
	if job.Hash != "" && run.ConfigHash != "" && job.Hash != run.ConfigHash {
		r.log().Warn("worker: the job's config differs from the one the run started with; using it", "run", run.ID, "config", job.Source)
	}
	r.log().Info("worker: joining run", "run", run.ID, "job", run.Job, "worker", r.worker())
	out, err := r.Join(ctx, run.ID, job)
	if err != nil && ctx.Err() != nil && !errors.Is(err, crawler.ErrInterrupted) {
		// Interrupted while joining (e.g. creating indexes): the store
		// calls failed because ctx ended, not because the store did.
		err = fmt.Errorf("%w: %w", crawler.ErrInterrupted, err)
	}
	return out, err
}

// nextRun returns the oldest running run Work may join and has not tried,
// or nil.
func (r *Runner) nextRun(ctx context.Context, o WorkOptions, tried map[string]bool) (*Run, error) {
	runs, _ := r.db()
	list, err := runs.List(ctx, ListOptions{Job: o.Job})
	if err != nil {
		return nil, err
	}
	stale := o.Stale
	if stale <= 0 {
		stale = DefaultLockTTL
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Started.Before(list[j].Started) })
	for _, run := range list {
		switch {
		case run.Status != StatusRunning || tried[run.ID]:
		case !hasOption(run, OptionHostLeases):
			// Its workers do not take host leases: joining would break
			// rate.per_host. Only `run --store URI` (or Runner.HostLeases)
			// starts runs that a fleet may share.
			tried[run.ID] = true
			r.log().Warn("worker: not joining a run started without host leases (on the embedded store); start it with --store URI", "run", run.ID)
		case r.now().Sub(run.Updated) > stale:
			tried[run.ID] = true
			r.log().Warn("worker: not joining a run nobody has updated recently; its processes stopped: continue it with `crawlcache resume`",
				"run", run.ID, "updated", run.Updated.UTC().Format(time.RFC3339))
		default:
			return run, nil
		}
	}
	return nil, nil
}

// pause waits d (DefaultWorkPoll if zero) or until ctx ends.
func (r *Runner) pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		d = DefaultWorkPoll
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w while waiting for a run: %w", crawler.ErrInterrupted, ctx.Err())
	case <-t.C:
		return nil
	}
}
