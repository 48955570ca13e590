package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"crawlcache/configs"
)

// RunFunc runs one job to its end for the scheduler and returns the
// outcome. It returns an error wrapping ErrLocked when the job is already
// running elsewhere. Runner.Run is the usual RunFunc.
type RunFunc func(ctx context.Context, job *configs.Job) (*Outcome, error)

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Jobs are the job configs; those without a Schedule are ignored.
	Jobs []*configs.Job
	// Locker claims each due occurrence, so that of several schedulers on
	// one store exactly one starts it. Required.
	Locker *Locker
	// Run runs a due job. Required.
	Run RunFunc
	// Owner names this scheduler in claims; if empty, NewWorkerID().
	Owner string
	// Start is the time from which the first occurrences are computed
	// (occurrences at or before Start are not run). If zero, time.Now().
	Start time.Time
	// Metrics, if non-nil, records each run.
	Metrics *Metrics
	// Logger receives one line per started, skipped and finished run. If
	// nil, slog.Default().
	Logger *slog.Logger
}

// Scheduler runs jobs when their cron schedule says they are due. Call Tick
// with the current time (Loop does it from the wall clock). A job never has
// two runs at once: this process tracks its own runs, and the job lock
// covers other processes. Its methods are safe for concurrent use.
type Scheduler struct {
	o       SchedulerOptions
	log     *slog.Logger
	entries []*entry
	wg      sync.WaitGroup
	wake    chan struct{} // Reload changed the entries: Loop looks again

	mu sync.Mutex
}

type entry struct {
	job   *configs.Job
	sched cron.Schedule
	next  time.Time
	// seen are the last occurrences handled, oldest first; claims older
	// than these are deleted.
	seen    []time.Time
	running bool
	removed bool // no longer scheduled; kept until its run ends
}

// ParseSchedule parses a 5-field cron expression or a descriptor (@daily,
// @every 6h). "@every" schedules are aligned to the Unix epoch rather than
// to the process start, so that schedulers started at different times
// compute the same occurrences.
func ParseSchedule(spec string) (cron.Schedule, error) {
	// Days ("@every 1d") are read as job files read every duration.
	if d, ok, err := configs.ParseEvery(spec); ok {
		if err != nil {
			return nil, fmt.Errorf("parse schedule %q: %w", spec, err)
		}
		return alignedEvery(cron.Every(d).Delay), nil
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w", spec, err)
	}
	if cd, ok := s.(cron.ConstantDelaySchedule); ok {
		return alignedEvery(cd.Delay), nil
	}
	return s, nil
}

// alignedEvery fires at every multiple of the delay since the Unix epoch.
type alignedEvery time.Duration

func (a alignedEvery) Next(t time.Time) time.Time {
	d := time.Duration(a)
	return t.Truncate(d).Add(d)
}

// NewScheduler validates the jobs' schedules and computes each job's first
// occurrence after Start.
func NewScheduler(o SchedulerOptions) (*Scheduler, error) {
	if o.Locker == nil || o.Run == nil {
		return nil, errors.New("new scheduler: Locker and Run are required")
	}
	if o.Owner == "" {
		o.Owner = NewWorkerID()
	}
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	s := &Scheduler{o: o, log: o.Logger, wake: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.Default()
	}
	seen := map[string]bool{}
	for _, j := range o.Jobs {
		if j.Schedule == "" {
			continue
		}
		if seen[j.Name] {
			return nil, fmt.Errorf("new scheduler: job %s is defined twice (%s)", j.Name, j.Source)
		}
		seen[j.Name] = true
		sc, err := ParseSchedule(j.Schedule)
		if err != nil {
			return nil, fmt.Errorf("job %s (%s): %w", j.Name, j.Source, err)
		}
		e := &entry{job: j, sched: sc, next: sc.Next(o.Start)}
		s.entries = append(s.entries, e)
		if o.Metrics != nil {
			o.Metrics.Register(j.Name)
			o.Metrics.NextRun(j.Name, e.next)
		}
	}
	sort.Slice(s.entries, func(i, k int) bool { return s.entries[i].job.Name < s.entries[k].job.Name })
	return s, nil
}

// Jobs returns the scheduled jobs' names with their next occurrence.
func (s *Scheduler) Jobs() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.entries))
	for _, e := range s.entries {
		if !e.removed {
			out[e.job.Name] = e.next
		}
	}
	return out
}

// Running returns the names of the jobs whose run this scheduler has in
// progress, sorted.
func (s *Scheduler) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.entries {
		if e.running {
			out = append(out, e.job.Name)
		}
	}
	return out
}

// Next returns the earliest next occurrence over all jobs, or the zero time
// when no job is scheduled.
func (s *Scheduler) Next() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n time.Time
	for _, e := range s.entries {
		if e.removed {
			continue
		}
		if n.IsZero() || e.next.Before(n) {
			n = e.next
		}
	}
	return n
}

// Tick starts, in the background, a run of every job due at now: whose
// next occurrence is at or before now, that this process is not running
// already, and whose occurrence this scheduler claims first in the store.
// Occurrences missed while the scheduler was down or busy collapse into
// one. It returns the names of the jobs it started; Wait waits for them.
// Runs get ctx: cancelling it interrupts them.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) []string {
	var started []string
	s.mu.Lock()
	var due []*entry
	var occ []time.Time
	for _, e := range s.entries {
		if e.removed || now.Before(e.next) {
			continue
		}
		at := e.next
		e.next = e.sched.Next(now)
		if s.o.Metrics != nil {
			s.o.Metrics.NextRun(e.job.Name, e.next)
		}
		e.seen = append(e.seen, at)
		if len(e.seen) > 3 {
			// No scheduler is three occurrences late: that claim is no
			// longer needed to fence one.
			_ = s.o.Locker.ForgetOccurrence(context.WithoutCancel(ctx), e.job.Name, e.seen[0])
			e.seen = e.seen[1:]
		}
		if e.running {
			s.log.Info("schedule: skipped, previous run still in progress", "job", e.job.Name, "due", at, "next", e.next.Local().Format(time.RFC3339))
			continue
		}
		due = append(due, e)
		occ = append(occ, at)
	}
	s.mu.Unlock()

	for i, e := range due {
		at := occ[i]
		ok, err := s.o.Locker.ClaimOccurrence(ctx, e.job.Name, at, s.o.Owner)
		if err != nil {
			s.log.Error("schedule: claim failed", "job", e.job.Name, "due", at, "err", err)
			continue
		}
		if !ok {
			s.skippedClaimed(ctx, e.job.Name, at)
			continue
		}
		s.mu.Lock()
		e.running = true
		s.mu.Unlock()
		started = append(started, e.job.Name)
		s.wg.Add(1)
		go s.run(ctx, e, e.job, at)
	}
	return started
}

// skippedClaimed says, at info level, that the occurrence of job at `at`
// is not run here because another scheduler (or an earlier `schedule
// --once` in the same minute) claimed it, naming the claim.
func (s *Scheduler) skippedClaimed(ctx context.Context, job string, at time.Time) {
	attrs := []any{"job", job, "due", at.UTC().Format(time.RFC3339)}
	owner, claimed, found, err := s.o.Locker.OccurrenceClaim(ctx, job, at)
	switch {
	case err != nil:
		attrs = append(attrs, "err", err)
	case found:
		attrs = append(attrs, "claimed_by", owner, "claimed_at", claimed.UTC().Format(time.RFC3339))
	}
	s.log.Info("schedule: skipped: this occurrence was already claimed, and each occurrence runs once per store "+
		"(another scheduler took it, or an earlier `schedule --once` in the same minute did); "+
		"to run the job now anyway, use `crawlcache run FILE`", attrs...)
}

// run runs job, the definition of e when it was due (a reload may change
// e's meanwhile).
func (s *Scheduler) run(ctx context.Context, e *entry, job *configs.Job, at time.Time) {
	defer s.wg.Done()
	defer s.ended(e)
	name := job.Name
	s.log.Info("schedule: run starting", "job", name, "due", at.UTC().Format(time.RFC3339), "next", s.nextOf(e))
	if s.o.Metrics != nil {
		s.o.Metrics.Started(name)
	}
	out, err := s.o.Run(ctx, job)
	switch {
	case errors.Is(err, ErrLocked):
		s.log.Info("schedule: skipped, job is running elsewhere", "job", name, "err", err)
	case out != nil && out.Run != nil:
		r := out.Run
		if s.o.Metrics != nil {
			s.o.Metrics.Finished(r, out.Session)
		}
		attrs := []any{"job", name, "run", r.ID, "status", r.Status, "pages", r.Counters.Pages,
			"hits", r.Counters.Hits, "revalidated", r.Counters.Revalidated, "misses", r.Counters.Misses,
			"errors", r.Counters.Errors, "items", r.Counters.Items, "elapsed", r.Elapsed().Round(time.Millisecond)}
		if ctx.Err() == nil { // stopping: there is no next run here
			attrs = append(attrs, "next", s.nextOf(e))
		}
		if err != nil {
			s.log.Error("schedule: run ended", append(attrs, "err", err)...)
		} else {
			s.log.Info("schedule: run ended", attrs...)
		}
	case err != nil:
		s.log.Error("schedule: run could not start", "job", name, "err", err)
	}
	if s.o.Metrics != nil && (out == nil || out.Run == nil) {
		s.o.Metrics.running.WithLabelValues(name).Set(0)
	}
}

// nextOf is e's next occurrence for a log line ("none" once the job is no
// longer scheduled).
func (s *Scheduler) nextOf(e *entry) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.removed {
		return "none (the job was removed)"
	}
	return e.next.Local().Format(time.RFC3339)
}

// ended marks e's run over; an entry removed by a reload meanwhile goes.
func (s *Scheduler) ended(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.running = false
	if !e.removed {
		return
	}
	if i := slices.Index(s.entries, e); i >= 0 {
		s.entries = slices.Delete(s.entries, i, i+1)
	}
	if s.o.Metrics != nil {
		s.o.Metrics.Forget(e.job.Name)
	}
}

// Wait blocks until every run started by Tick has returned.
func (s *Scheduler) Wait() { s.wg.Wait() }

// Loop ticks at each next occurrence by the wall clock until ctx is
// cancelled, then waits for the runs it started (they see ctx cancelled and
// stop as interrupted). With once set it runs every scheduled job now,
// once, and returns when those runs end; the occurrence claimed is the
// current minute, so several `schedule --once` on one store within a minute
// run each job once.
func (s *Scheduler) Loop(ctx context.Context, once bool) {
	if once {
		now := time.Now()
		s.mu.Lock()
		for _, e := range s.entries {
			e.next = now.Truncate(time.Minute)
		}
		s.mu.Unlock()
		s.Tick(ctx, now)
		s.Wait()
		return
	}
	for {
		next := s.Next()
		if next.IsZero() {
			select {
			case <-ctx.Done():
			case <-s.wake:
				continue
			}
			break
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			s.Wait()
			return
		case <-s.wake: // reloaded: the next occurrence may be another
			t.Stop()
			continue
		case <-t.C:
		}
		s.Tick(ctx, time.Now())
	}
	s.Wait()
}
