package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"crawlcache/cache"
	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// OptionRevalidate is recorded in Run.Options for a run started with
// StartOptions.Revalidate, so that its resume revalidates too.
const OptionRevalidate = "revalidate"

// OptionHostLeases is recorded in Run.Options when the run's workers
// fetch a host only while holding its lease in the frontier, so that
// rate.per_host holds for a fleet of workers. Runs on a MongoDB URI use
// it; runs on the embedded store (one machine) do not, unless
// Runner.HostLeases.
const OptionHostLeases = "host_leases"

// DefaultReportEvery is how often a running worker writes its progress to
// the run record.
const DefaultReportEvery = 2 * time.Second

// Errors returned by Runner.
var (
	// ErrPreviousRunUnfinished is wrapped by *UnfinishedError.
	ErrPreviousRunUnfinished = errors.New("previous run did not finish")
	// ErrTooManyErrors is wrapped by the error Run, Resume and Join return for a
	// run that completed (its outputs committed) but fetched no page, or
	// whose failed URLs exceed the job's max_error_ratio.
	ErrTooManyErrors = errors.New("too many errors")
)

// UnfinishedError is returned by Runner.Run when the job's last run was
// interrupted (or its process died) and neither Fresh nor Resume was set.
type UnfinishedError struct{ Run *Run }

// Error names the unfinished run and how to resume it.
func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("the last run of job %s, %s, was %s (started %s, %d pages done): continue it with `crawlcache resume %s` (or `run --resume`), or start over with `run --fresh`",
		e.Run.Job, e.Run.ID, e.Run.Status, e.Run.Started.UTC().Format(time.RFC3339), e.Run.Counters.Pages, e.Run.ID)
}

// Unwrap makes errors.Is(err, ErrPreviousRunUnfinished) true.
func (e *UnfinishedError) Unwrap() error { return ErrPreviousRunUnfinished }

// Runner runs jobs against one store: it takes the job lock, creates or
// reopens the run record, prepares the cache (TTL, sweep), the frontier and
// the pipeline, runs the crawler and records the outcome. Exported fields
// may be left zero; set them before the first call. It is safe for
// concurrent use on different jobs.
type Runner struct {
	// Store is the open store. Required.
	Store *store.Store
	// WorkerID names this process in the run record, the job lock and
	// frontier leases. If empty, NewWorkerID().
	WorkerID string
	// Now is the clock for records, locks and the cache. If nil, time.Now.
	Now func() time.Time
	// Logger receives run notes. If nil, slog.Default().
	Logger *slog.Logger
	// Progress, if set, is called with this process's progress about once a
	// second (e.g. Reporter.Update).
	Progress func(Snapshot)
	// ReportEvery is how often progress is written to the run record; if
	// zero, DefaultReportEvery.
	ReportEvery time.Duration
	// LockTTL is the job lock lease; if zero, DefaultLockTTL.
	LockTTL time.Duration
	// FrontierLease is the lease of a claimed URL and of a host (with host
	// leases); they are renewed every quarter of it. If zero, the
	// frontier's and crawler's defaults.
	FrontierLease time.Duration
	// ShutdownGrace is how long in-flight pages may finish after an
	// interrupt; if zero, the crawler's default.
	ShutdownGrace time.Duration
	// OnInterrupt, if set, is called at once when ctx is cancelled during
	// the crawl, with the number of pages in flight the run now finishes
	// (crawler.Options.OnInterrupt).
	OnInterrupt func(inFlight int)
	// StopNow, closed after ctx is cancelled, cuts the shutdown grace
	// short: fetches in flight are cancelled, the run is recorded
	// interrupted, and those pages stay in the frontier for a resume. Nil
	// waits the whole grace.
	StopNow <-chan struct{}
	// Upstream replaces the network transport below the cache (tests).
	Upstream http.RoundTripper
	// Chromium is the browser for jobs that render pages; if empty, one
	// found on PATH (render.FindChromium).
	Chromium string
	// HostLeases makes new runs use host leases (OptionHostLeases) even on
	// the embedded store, so that workers started with Join on the same
	// store share rate.per_host.
	HostLeases bool

	// fault, if set, is called at each step of committing a run's outputs
	// and recording its end (fault-injection tests stop the process there).
	fault func(step string)

	workerOnce sync.Once
}

// StartOptions modify one Runner.Run.
type StartOptions struct {
	// Fresh starts a new run even when the job's last run is unfinished.
	Fresh bool
	// Resume continues the job's last run when it is unfinished, instead
	// of returning an *UnfinishedError. A finished last run is not resumed:
	// a new run starts.
	Resume bool
	// Revalidate makes every cached page a conditional request to the
	// origin in this run, however fresh it is (cache.WithRefresh): unchanged
	// pages cost a 304, changed ones a download. It is recorded in the run,
	// so a resume of it revalidates too.
	Revalidate bool
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Runner) worker() string {
	r.workerOnce.Do(func() {
		if r.WorkerID == "" {
			r.WorkerID = NewWorkerID()
		}
	})
	return r.WorkerID
}

func (r *Runner) db() (*Runs, *Locker) {
	lk := NewLocker(r.Store, r.Now)
	lk.TTL = r.LockTTL
	return NewRuns(r.Store, r.Now), lk
}

// Run runs job: it takes the job's lock (an error wrapping ErrLocked names
// the holder), then starts a new run, or resumes the last one as
// StartOptions say. It returns the outcome whenever a run record exists
// (when the store stopped answering, as this process knows it), together
// with a non-nil error when the run did not complete: it wraps
// crawler.ErrInterrupted for an interrupt, is a *StoreDownError (wrapping
// store.ErrUnreachable; the run is left interrupted) when the store stopped
// answering, and is the cause otherwise.
func (r *Runner) Run(ctx context.Context, job *configs.Job, o StartOptions) (out *Outcome, err error) {
	if _, err := r.pipeline(job); err != nil { // a bad extract spec fails before any record
		return nil, err
	}
	if err := r.checkRender(job); err != nil { // no browser: fail before any record
		return nil, err
	}
	defer func() { err = r.endErr(ctx, err) }()
	runs, locker := r.db()
	lease, err := r.acquire(ctx, locker, job.Name)
	if err != nil {
		return nil, err
	}
	defer func() { r.release(ctx, lease, err) }()

	last, err := runs.Last(ctx, job.Name)
	if err != nil {
		return nil, err
	}
	if last != nil && last.Status == StatusRunning && r.liveWorkers(last) == 0 {
		// We hold the lock, so no `run` process works on it any more;
		// joined workers may (issue: several machines), and while one
		// reports, the run is not marked interrupted. A process killed
		// after it claimed the run's end had decided it: settled says how.
		if _, err := runs.Finish(ctx, last.ID, StatusInterrupted, "its process stopped without recording an end (crash or kill)"); err != nil {
			return nil, err
		}
		if last, err = runs.settled(ctx, last.ID); err != nil {
			return nil, err
		}
	}
	if last != nil && last.Status != StatusCompleted && last.Status != StatusFailed {
		switch {
		case o.Resume:
			return r.execute(ctx, job, last, modeResume, lease, hasOption(last, OptionRevalidate))
		case !o.Fresh:
			return nil, &UnfinishedError{Run: last}
		}
	}
	run := &Run{
		ID: NewRunID(job.Name, r.now()), Job: job.Name, ConfigPath: job.Source, ConfigHash: job.Hash,
		Status: StatusRunning,
	}
	if o.Revalidate {
		run.Options = append(run.Options, OptionRevalidate)
	}
	if r.HostLeases || !r.Store.Embedded {
		run.Options = append(run.Options, OptionHostLeases)
	}
	if err := runs.Create(ctx, run); err != nil {
		return nil, err
	}
	return r.execute(ctx, job, run, modeNew, lease, o.Revalidate)
}

// Resume continues run runID. job is its config (load it from
// Run.ConfigPath); a config whose hash differs from the run's is used with
// a warning. It returns an error wrapping ErrNotResumable for a completed
// run, ErrRunNotFound, or ErrLocked when the job is running.
func (r *Runner) Resume(ctx context.Context, runID string, job *configs.Job) (out *Outcome, err error) {
	if _, err := r.pipeline(job); err != nil {
		return nil, err
	}
	defer func() { err = r.endErr(ctx, err) }()
	runs, locker := r.db()
	run, err := runs.Get(ctx, runID)
	if err != nil {
		return nil, err
	}
	if run.Status == StatusCompleted {
		return nil, fmt.Errorf("run %s completed at %s: %w", runID, run.Finished.UTC().Format(time.RFC3339), ErrNotResumable)
	}
	if job.Name != run.Job {
		return nil, fmt.Errorf("run %s belongs to job %s, not %s: %w", runID, run.Job, job.Name, ErrNotResumable)
	}
	lease, err := r.acquire(ctx, locker, run.Job)
	if err != nil {
		return nil, err
	}
	defer func() { r.release(ctx, lease, err) }()
	if run, err = runs.Get(ctx, runID); err != nil { // may have changed before we held the lock
		return nil, err
	}
	if run.Status == StatusCompleted {
		return nil, fmt.Errorf("run %s: %w (completed)", runID, ErrNotResumable)
	}
	if job.Hash != "" && run.ConfigHash != "" && job.Hash != run.ConfigHash {
		r.log().Warn("the job's config changed since the run started; resuming with the current file", "run", runID, "config", job.Source)
	}
	return r.execute(ctx, job, run, modeResume, lease, hasOption(run, OptionRevalidate))
}

// endErr is the error Run, Resume and Join return: an interrupt when ctx
// was cancelled (a store call cut short by Ctrl-C is not the store going
// away), else err with a store that stopped answering said so.
func (r *Runner) endErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, crawler.ErrInterrupted) && !errors.Is(err, ErrTooManyErrors) {
		return fmt.Errorf("%w: %w", crawler.ErrInterrupted, context.Cause(ctx))
	}
	return r.storeDown(err)
}

// release gives the job lock up; when the store is gone (err says so) it
// tries only briefly: the lease expires anyway.
func (r *Runner) release(ctx context.Context, lease *Lease, err error) {
	rctx, cancel := cleanupCtx(ctx, store.IsUnavailable(err))
	defer cancel()
	_ = lease.Release(rctx)
}

// acquire takes the job lock, breaking one whose holder is a dead process
// on this host (so that a resume after kill -9 need not wait for the lease
// to expire).
func (r *Runner) acquire(ctx context.Context, locker *Locker, job string) (*Lease, error) {
	lease, err := locker.Acquire(ctx, job, r.worker(), "")
	var le *LockedError
	if !errors.As(err, &le) || !holderDead(le.Holder) {
		return lease, err
	}
	r.log().Info("breaking the lock of a process that no longer exists", "job", job, "owner", le.Holder.Owner, "pid", le.Holder.PID)
	if err := locker.Expire(ctx, job, le.Holder); err != nil {
		return nil, err
	}
	return locker.Acquire(ctx, job, r.worker(), "")
}

// holderDead reports whether a lock's holder is a process on this host that
// no longer exists.
func holderDead(h Lock) bool {
	host, _ := os.Hostname()
	if h.Host == "" || h.Host != host || h.PID <= 0 || h.PID == os.Getpid() || runtime.GOOS == "windows" {
		return false
	}
	p, err := os.FindProcess(h.PID)
	if err != nil {
		return true
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
}

func hasOption(run *Run, opt string) bool {
	for _, o := range run.Options {
		if o == opt {
			return true
		}
	}
	return false
}

// liveWorkers counts the run's workers, other than this one, that
// reported recently and whose process is not known to be gone.
func (r *Runner) liveWorkers(run *Run) int {
	n := 0
	for id, w := range run.Workers {
		if id != r.worker() && r.now().Sub(w.Heartbeat) <= 3*r.reportEvery() && !holderDeadWorker(w) {
			n++
		}
	}
	return n
}

// Join makes this process one more worker of run runID, which must be
// running: it claims URLs from the run's frontier alongside the others
// (host leases keep rate.per_host for the whole fleet) without taking the
// job lock. When it sees the frontier drained it completes the run (once,
// whichever worker is first); when interrupted it just leaves, and the
// run goes on. File outputs are written per machine, so a fleet should
// use the mongodb output. It returns an error wrapping ErrNotResumable
// when the run is not running, and one wrapping ErrTooManyErrors (with the
// Outcome) when the run completed with too many errors, as Run does.
func (r *Runner) Join(ctx context.Context, runID string, job *configs.Job) (out *Outcome, err error) {
	if _, err := r.pipeline(job); err != nil {
		return nil, err
	}
	defer func() { err = r.endErr(ctx, err) }()
	runs, _ := r.db()
	run, err := runs.Get(ctx, runID)
	if err != nil {
		return nil, err
	}
	if run.Status != StatusRunning {
		return nil, fmt.Errorf("join run %s: it is %s: %w", runID, run.Status, ErrNotResumable)
	}
	return r.execute(ctx, job, run, modeJoin, nil, hasOption(run, OptionRevalidate))
}

// How execute starts a run.
type startMode int

const (
	modeNew    startMode = iota // a new run record
	modeResume                  // an interrupted run, under the job lock
	modeJoin                    // a running run, as an extra worker
)

func holderDeadWorker(w Worker) bool {
	return holderDead(Lock{Host: w.Host, PID: w.PID})
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func (r *Runner) reportEvery() time.Duration {
	if r.ReportEvery > 0 {
		return r.ReportEvery
	}
	return DefaultReportEvery
}

// prepareCache applies the job's cache.ttl (never overwriting a different
// TTL already set: that takes `crawlcache cache ttl`). It does not sweep
// expired entries: a sweep scans the whole cache, so it runs off the run's
// path, in `schedule` and `cache purge --expired`.
func (r *Runner) prepareCache(ctx context.Context, job *configs.Job, log *slog.Logger) error {
	if !job.TTLSet {
		return nil
	}
	admin := cache.NewAdmin(r.Store, cache.DefaultDatabase, r.Now)
	if job.TTL > 0 {
		info, err := admin.SetTTL(ctx, job.TTL, false)
		if err != nil {
			return fmt.Errorf("apply cache.ttl %s: %w", job.TTL, err)
		}
		if info.Kept {
			log.Info("the store keeps its cache TTL; the job's cache.ttl is not applied (change it with `crawlcache cache ttl`)",
				"store_ttl", info.TTL, "job_ttl", job.TTL)
		}
	} else if info, err := admin.TTL(ctx); err == nil && info.Set {
		log.Info("the job asks for no cache TTL but the store has one; keeping it", "store_ttl", info.TTL)
	}
	return nil
}

// pipeline builds the job's extract → outputs pipeline; nil when the job
// has no outputs.
func (r *Runner) pipeline(job *configs.Job) (*pipeline.Pipeline, error) {
	if len(job.Outputs) == 0 {
		return nil, nil
	}
	var columns []string
	for _, f := range job.Extract.Fields {
		columns = append(columns, f.Name)
	}
	ex, err := extractor(job)
	if err != nil {
		return nil, fmt.Errorf("job %s extract: %w", job.Name, err)
	}
	p := &pipeline.Pipeline{Extractor: ex}
	for _, o := range job.Outputs {
		switch o.Kind {
		case configs.OutputMongoDB:
			p.Sinks = append(p.Sinks, pipeline.NewCountedMongoSink(r.Store.Collection(Database, o.Collection),
				r.Store.Collection(Database, CountersCollection), r.worker()))
		case configs.OutputJSONL:
			p.Sinks = append(p.Sinks, pipeline.NewJSONLSink(o.Path))
		case configs.OutputCSV:
			p.Sinks = append(p.Sinks, pipeline.NewCSVSink(o.Path, columns))
		default:
			return nil, fmt.Errorf("job %s: unknown output kind %q", job.Name, o.Kind)
		}
	}
	return p, nil
}

// localRecord is the run record as this process knows it, for an outcome
// when the store can no longer be read: the record as the run started, with
// this session's counters added and the final status.
func localRecord(run *Run, status Status, cause error, session Counters, mode startMode, now time.Time) *Run {
	rec := *run
	rec.Status = status
	rec.Counters = rec.Counters.Add(session)
	if mode == modeResume {
		rec.Resumes++
	}
	t := now.UTC()
	rec.Finished, rec.Updated = &t, t
	if cause != nil {
		rec.Error = cause.Error()
	}
	return &rec
}

// sessionOf returns the counters worker reported in run.
func sessionOf(run *Run, worker string) Counters {
	if w, ok := run.Workers[worker]; ok {
		return w.Counters
	}
	return Counters{}
}

// reporter turns the crawler's progress callbacks into run record updates
// (every `every`) and display updates.
type reporter struct {
	runs   *Runs
	job    string
	runID  string
	worker string
	every  time.Duration
	now    func() time.Time
	show   func(Snapshot)
	log    *slog.Logger
	down   func(error) // called when a write finds the store gone

	gone bool // a write found the store gone: no more writes

	written      Counters  // what the run record already has from this worker
	writtenSplit Breakdown // the same for the breakdown
	last         time.Time
}

func countersOf(p crawler.Progress) Counters {
	return Counters{
		Pages: p.Pages, Hits: p.Hits, Misses: p.Misses, Revalidated: p.Revalidated, Stale: p.Stale,
		Errors: p.Errors, Items: p.Items, NetworkBytes: p.NetworkBytes, SavedBytes: p.SavedBytes,
		Robots: p.Robots, Retries: p.Retries, Parsed: p.Parsed, Reused: p.Reused,
		New: p.New, Changed: p.Changed, Unchanged: p.Unchanged, Gone: p.Gone,
	}
}

// update is called by the crawler from one goroutine.
func (rp *reporter) update(p crawler.Progress) {
	if rp.show != nil {
		rp.show(Snapshot{Job: rp.job, RunID: rp.runID, Counters: countersOf(p), Queue: p.Queue, Elapsed: p.Elapsed, QueueUnknown: p.Loading})
	}
	if t := rp.now(); t.Sub(rp.last) >= rp.every && !rp.gone {
		rp.last = t
		if err := rp.flush(context.Background(), p); err != nil {
			rp.log.Warn("write progress to the run record", "err", err)
			if store.IsUnavailable(err) {
				rp.gone = true // each write would wait the server-selection timeout
				if rp.down != nil {
					rp.down(err)
				}
			}
		}
	}
}

// flush writes p to the run record (counters as increments since the last
// write).
func (rp *reporter) flush(ctx context.Context, p crawler.Progress) error {
	c := countersOf(p)
	split := Breakdown{ErrorKinds: p.ErrorKinds, Statuses: p.Statuses}
	if err := rp.runs.report(ctx, rp.runID, rp.worker, c, c.Sub(rp.written), split.sub(rp.writtenSplit), p.Queue); err != nil {
		return err
	}
	rp.written, rp.writtenSplit = c, split
	return nil
}
