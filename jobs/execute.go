package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// execution is this process's part in one run, from execute to its
// outcome.
type execution struct {
	r      *Runner
	ctx    context.Context
	job    *configs.Job
	run    *Run
	mode   startMode
	lease  *Lease // the job lock; nil for a joined worker
	log    *slog.Logger
	runs   *Runs
	worker string

	front   *frontier.Frontier // for the tally of a finished run
	changes *changes.Tracker   // what changed since the job's last run
	pipe    *pipeline.Pipeline // nil when the job has no outputs
	opened  bool               // pipe's sinks are open
	session Counters           // this process's counters, once the crawl returned
}

// execute runs run until it ends and records how. lease is the job lock,
// nil for a joined worker.
func (r *Runner) execute(ctx context.Context, job *configs.Job, run *Run, mode startMode, lease *Lease, revalidate bool) (*Outcome, error) {
	runs, _ := r.db()
	x := &execution{
		r: r, ctx: ctx, job: job, run: run, mode: mode, lease: lease, runs: runs, worker: r.worker(),
		log: r.log().With("job", job.Name, "run", run.ID),
	}
	reclaim, err := x.start()
	if err != nil {
		return nil, err
	}
	if mode != modeJoin {
		if err := r.prepareCache(ctx, job, x.log); err != nil {
			return x.finish(StatusFailed, err)
		}
	}
	x.front, err = frontier.New(ctx, r.Store, Database, frontier.Options{
		Now: r.Now, Lease: r.FrontierLease, Logger: x.log,
	})
	if err != nil {
		return x.finish(StatusFailed, err)
	}
	if x.pipe, err = r.pipeline(job); err != nil {
		return x.finish(StatusFailed, err)
	}
	if x.changes, err = r.changeTracker(ctx, job, run.ID); err != nil {
		return x.finish(StatusFailed, err)
	}
	if mode == modeResume && run.Commit != nil {
		// The crawl had completed: opening the outputs again would start
		// empty files over the committed ones. Only the commit is left.
		x.log.Info("the run's crawl had completed; finishing the commit of its outputs")
		return x.complete()
	}
	if x.pipe != nil {
		if err := x.pipe.Open(ctx, run.ID, mode != modeNew); err != nil {
			return x.finish(StatusFailed, fmt.Errorf("open outputs: %w", err))
		}
		x.opened = true
		defer func() { _ = x.pipe.Close() }()
	}
	crawlErr, lost := x.crawl(reclaim, revalidate)
	return x.end(crawlErr, lost)
}

// start records this worker in the run (and, for a resume, reopens it) and
// returns the workers whose frontier leases it takes over at once.
func (x *execution) start() (reclaim []string, err error) {
	if x.lease != nil {
		if err := x.lease.SetRun(x.ctx, x.run.ID); err != nil {
			return nil, err
		}
	}
	if x.mode == modeResume {
		if err := x.runs.Reopen(x.ctx, x.run); err != nil {
			return nil, err
		}
		// Leases held by this worker's earlier session, and by workers
		// that stopped reporting or whose process is gone, are taken over
		// at once instead of after they expire. We hold the job lock, so
		// no other `run` works on this run.
		reclaim = append(reclaim, x.worker)
		for id, w := range x.run.Workers {
			if id != x.worker && (x.r.now().Sub(w.Heartbeat) > 2*x.r.reportEvery() || holderDeadWorker(w)) {
				reclaim = append(reclaim, id)
			}
		}
	}
	w := Worker{ID: x.worker, Host: hostname(), PID: os.Getpid(), ParseRules: parseRules(x.job)}
	if err := x.runs.JoinWorker(x.ctx, x.run.ID, w); err != nil {
		return nil, err
	}
	return reclaim, nil
}

// crawl runs the crawler until the frontier is drained or the crawl stops,
// and returns the crawler's error and the cause that stopped it from
// outside (a lost job lock, a store gone), if any.
func (x *execution) crawl(reclaim []string, revalidate bool) (crawlErr, lost error) {
	r, job, run := x.r, x.job, x.run
	// A lost lock (another process took the job over after our lease
	// expired) stops the crawl.
	crawlCtx, cancel := context.WithCancelCause(x.ctx)
	defer cancel(nil)
	if x.lease != nil {
		go x.lease.KeepAlive(crawlCtx, func(err error) {
			x.log.Error("job lock lost; stopping", "err", err)
			cancel(err)
		})
	}
	if revalidate {
		crawlCtx = cache.WithRefresh(crawlCtx)
	}

	// A progress write that finds the store gone stops the crawl at once,
	// rather than after the crawler's own store calls time out.
	rep := &reporter{runs: x.runs, job: job.Name, runID: run.ID, worker: x.worker, every: r.reportEvery(), now: r.now, show: r.Progress, log: x.log, down: cancel}
	x.log.Info("run starting", "resume", x.mode != modeNew, "revalidate", revalidate, "store", r.Store.Describe())
	// The job's options (crawlopts.go), then this run's.
	opts := r.crawlerOptions(job)
	opts.RunID, opts.Worker = run.ID, x.worker
	opts.Frontier, opts.Resume, opts.Reclaim, opts.HostLeases = x.front, x.mode != modeNew, reclaim, hasOption(run, OptionHostLeases)
	opts.Pipeline, opts.Progress = x.pipe, rep.update
	opts.Parses = parses.New(r.Store.Collection(Database, parses.DefaultCollection))
	opts.Changes = x.changes
	opts.Logger, opts.ShutdownGrace, opts.LeaseRenew = x.log, r.ShutdownGrace, r.FrontierLease/4
	opts.OnInterrupt, opts.StopNow = r.OnInterrupt, r.StopNow
	p, crawlErr := crawler.Run(crawlCtx, opts)
	x.session = countersOf(p)
	lost = context.Cause(crawlCtx)
	if store.IsUnavailable(crawlErr) || store.IsUnavailable(lost) {
		rep.gone = true // the record keeps the last progress written
	}
	if !rep.gone {
		if err := rep.flush(context.WithoutCancel(x.ctx), p); err != nil {
			x.log.Warn("write final progress", "err", err)
		}
	}
	x.front.Forget(run.ID)
	return crawlErr, lost
}

// end records how the crawl ended.
func (x *execution) end(crawlErr, lost error) (*Outcome, error) {
	switch {
	case store.IsUnavailable(lost) && !store.IsUnavailable(crawlErr):
		return x.finish(StatusInterrupted, lost)
	case crawlErr == nil:
		return x.complete()
	case errors.Is(lost, ErrLeaseLost):
		return x.finish(StatusInterrupted, fmt.Errorf("%w: %w", crawler.ErrInterrupted, lost))
	case errors.Is(crawlErr, crawler.ErrInterrupted) || x.ctx.Err() != nil:
		if !errors.Is(crawlErr, crawler.ErrInterrupted) {
			crawlErr = fmt.Errorf("%w: %w", crawler.ErrInterrupted, crawlErr)
		}
		return x.finish(StatusInterrupted, crawlErr)
	default:
		return x.finish(StatusFailed, crawlErr)
	}
}

// complete commits the outputs of a run whose crawl completed and records
// the run completed; when an output fails to commit, the run is failed and
// a resume finishes the commit.
func (x *execution) complete() (*Outcome, error) {
	if err := x.commitOutputs(); err != nil {
		switch {
		case errors.Is(err, pipeline.ErrOutputMissing):
			err = fmt.Errorf("commit outputs: %w (the run's items for it are gone: start a new run with `crawlcache run %s`)", err, x.job.Source)
		case !store.IsUnavailable(err):
			err = fmt.Errorf("commit outputs: %w (outputs already committed are kept: fix the cause, then `crawlcache resume %s` finishes the commit)", err, x.run.ID)
		}
		return x.finish(StatusFailed, err)
	}
	out, err := x.finish(StatusCompleted, nil)
	if err != nil || out.Run.Status != StatusCompleted {
		return out, err
	}
	c := out.Run.Counters
	if x.mode != modeJoin && len(x.job.Outputs) > 0 && c.Pages > 0 && c.Items == 0 {
		x.log.Warn("the extract section yielded no item on any page: check extract.item and the fields' selectors against a page (crawlcache cache show URL)",
			"pages", c.Pages, "item", x.job.Extract.Item)
	}
	// Every process that saw the run complete judges it, a joined worker
	// too, so that each exits as the run deserves.
	out.Verdict = verdict(c, x.job.MaxErrorRatio)
	return out, out.Verdict
}

// verdict returns an error wrapping ErrTooManyErrors when a completed run
// with counters c fetched no page, or when its failed URLs exceed
// maxRatio of those it fetched or failed.
func verdict(c Counters, maxRatio float64) error {
	switch {
	case c.Pages == 0:
		return fmt.Errorf("%w: no page could be fetched (%d URLs failed, %d blocked by robots.txt)", ErrTooManyErrors, c.Errors, c.Robots)
	case c.ErrorRatio() > maxRatio:
		return fmt.Errorf("%w: %d of %d URLs failed (%.1f%%, more than max_error_ratio %g)",
			ErrTooManyErrors, c.Errors, c.Pages+c.Errors, 100*c.ErrorRatio(), maxRatio)
	}
	return nil
}

// fault calls the Runner's fault-injection hook.
func (x *execution) fault(step string) {
	if x.r.fault != nil {
		x.r.fault(step)
	}
}

// commitOutputs makes the run's outputs final one at a time. Under the job
// lock it records in the run that the commit began, then each output once
// it is committed, so that a resume after a failure or a crash at any step
// finishes the commit: outputs recorded are left alone, a file output
// whose partial file was already renamed is kept as it is, and the others
// are renamed into place. An output that fails does not stop the others.
// A joined worker commits its own file outputs without records.
func (x *execution) commitOutputs() error {
	if x.pipe == nil {
		return nil
	}
	ctx := context.WithoutCancel(x.ctx)
	if x.mode == modeJoin {
		return x.pipe.Commit(ctx)
	}
	x.fault("commit-begin")
	if x.run.Commit == nil {
		if err := x.runs.BeginCommit(ctx, x.run.ID); err != nil {
			return err
		}
	}
	x.fault("commit-started")
	var errs []error
	for i, s := range x.pipe.Sinks {
		o := x.job.Outputs[i]
		where := o.Path
		if o.Kind == configs.OutputMongoDB {
			where = o.Collection
		}
		key := OutputKey(o.Kind, where)
		if x.run.Commit.Committed(key) {
			continue
		}
		x.fault("before " + key)
		var err error
		if x.opened {
			err = s.Commit(ctx)
		} else if f, ok := s.(pipeline.Finisher); ok {
			err = f.Finish(ctx, x.run.ID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s output %s: %w", o.Kind, where, err))
			continue
		}
		x.fault("after " + key)
		if err := x.runs.OutputCommitted(ctx, x.run.ID, key); err != nil {
			return err
		}
		x.fault("recorded " + key)
	}
	return errors.Join(errs...)
}

// finish records how the run ended and returns its outcome, also when the
// store is gone (then built from what this process knows).
func (x *execution) finish(status Status, cause error) (*Outcome, error) {
	r, run, mode := x.r, x.run, x.mode
	if status == StatusFailed && x.ctx.Err() != nil && !errors.Is(cause, crawler.ErrInterrupted) {
		// A step cut short by Ctrl-C: the run is interrupted, not failed
		// (and the store did not go away).
		status, cause = StatusInterrupted, fmt.Errorf("%w: %w", crawler.ErrInterrupted, context.Cause(x.ctx))
	}
	cause = r.storeDown(cause)
	down := errors.Is(cause, store.ErrUnreachable)
	if down && status == StatusFailed {
		status = StatusInterrupted // resumable once the store is back
	}
	cctx, cancel := cleanupCtx(x.ctx, down)
	defer cancel()
	// A joined worker records only completion: its interrupt or failure
	// leaves the run to the others.
	if mode != modeJoin || status == StatusCompleted {
		status, cause, down = x.record(cctx, status, cause, down)
	}
	var final *Run
	if !down {
		var err error
		if final, err = x.runs.Get(cctx, run.ID); err != nil {
			x.log.Warn("read the run record back", "err", err)
		}
	}
	if final == nil {
		final = localRecord(run, status, cause, x.session, mode, r.now())
		return &Outcome{Run: final, Resumed: mode == modeResume, Session: x.session}, cause
	}
	return &Outcome{Run: final, Resumed: mode == modeResume, Session: sessionOf(final, x.worker)}, cause
}

// alone reports whether this process's counters are the whole run's: a
// run it started and crawled alone, never resumed, with no other worker.
// Its reports then already hold every page, error and item exactly once,
// and the tally, which reads the run's whole frontier (seconds for a few
// thousand pages, in silence at the end of the run), would change nothing.
func (x *execution) alone(ctx context.Context) bool {
	if x.mode != modeNew {
		return false
	}
	rec, err := x.runs.Get(ctx, x.run.ID)
	if err != nil {
		return false
	}
	_, me := rec.Workers[x.worker]
	return me && len(rec.Workers) == 1 && rec.Resumes == 0
}

// record writes the run's end (status, error, tally) to its record and
// returns the status, cause and store state as they then stand.
func (x *execution) record(ctx context.Context, status Status, cause error, down bool) (Status, error, bool) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	var t Tally
	solo := down || x.alone(ctx)
	if x.front != nil && !solo {
		var err error
		if t, err = x.r.tally(ctx, x.runs, x.front, x.job, x.run.ID); err != nil {
			x.log.Warn("count the run's pages and items; keeping the reported counters", "err", err)
		}
	}
	if status == StatusCompleted && !down && x.changes != nil {
		n, sum, err := x.changes.FinishSummary(ctx)
		if swept := (*changes.SweepError)(nil); errors.As(err, &swept) {
			x.log.Warn("sweep the job's page states older than the cache TTL; the next run tries again", "err", err)
			err = nil
		}
		if err != nil {
			x.log.Warn("record what changed since the job's last run; the run's change counts are this process's", "err", err)
		} else {
			t.Changes = &n
			if !solo {
				t.setSummary(sum)
			}
		}
	}
	x.fault("finish-before")
	_, err := x.runs.FinishTally(ctx, x.run.ID, status, msg, t)
	if err == nil {
		x.fault("finish-after")
		return status, cause, down
	}
	if down { // already said; the record stays running until the next run
		err = &StoreDownError{Store: x.r.Store.Describe(), Err: err}
	}
	switch err = x.r.storeDown(err); {
	case !errors.Is(err, store.ErrUnreachable):
		cause = errors.Join(cause, err)
	case cause == nil: // completed, but the store did not take it
		cause, status, down = err, StatusInterrupted, true
	default:
		down = true
	}
	return status, cause, down
}
