package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/frontier"
	"crawlcache/jobs"
	"crawlcache/store"
)

// statusNotStarted is the --json status when no run was started (job
// locked, previous run unfinished, bad config).
const statusNotStarted = "not_started"

// Exit statuses of run, resume and worker (a contract with schedulers and
// CI; README and docs/readme/jobs.md list them).
const (
	// exitFailed: the run failed, or could not start (job locked, previous
	// run unfinished, invalid config, store unreachable).
	exitFailed = 1
	// exitUsage: wrong arguments or flags.
	exitUsage = 2
	// exitTooManyErrors: the run completed (outputs committed) but fetched
	// no page, or more URLs failed than the job's max_error_ratio allows.
	exitTooManyErrors = 3
	// exitInterrupted: stopped by Ctrl-C or SIGTERM (128+SIGINT); resumable.
	exitInterrupted = 130
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a job now: crawl, cache, extract, write outputs",
		ArgsUsage: "FILE",
		Description: "Takes the job's lock, starts a new run (or, after an interrupted run, asks you to resume it),\n" +
			"and crawls until the frontier is drained. Ctrl-C stops cleanly; `crawlcache resume RUN_ID` continues.\n" +
			"Exit status: 0 completed, 1 failed or not started (locked, unfinished previous run, bad config,\n" +
			"store unreachable), 2 bad arguments, 3 completed but no page fetched or errors over max_error_ratio,\n" +
			"130 interrupted (resumable).",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the run summary as one JSON object on the last line of standard output", EnvVars: []string{"CRAWLCACHE_JSON"}},
			&cli.BoolFlag{Name: "fresh", Usage: "start a new run even if the job's last run was interrupted", EnvVars: []string{"CRAWLCACHE_FRESH"}},
			&cli.BoolFlag{Name: "resume", Usage: "if the job's last run was interrupted, continue it instead of refusing", EnvVars: []string{"CRAWLCACHE_RESUME"}},
			&cli.BoolFlag{Name: "revalidate", Usage: "this run only: send a conditional request for every cached page, however fresh (unchanged pages cost a 304)", EnvVars: []string{"CRAWLCACHE_REVALIDATE"}},
			leaseFlag(),
			workerIDFlag(),
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: crawlcache run FILE (one job config)", exitUsage)
			}
			job, err := configs.Load(c.Args().First())
			if err != nil {
				return reportOutcome(c, nil, err)
			}
			reported := false
			err = withStore(c, func(ctx context.Context, s *store.Store) error {
				r, rep := newRunner(c, s)
				out, err := r.Run(ctx, job, jobs.StartOptions{
					Fresh: c.Bool("fresh"), Resume: c.Bool("resume"), Revalidate: c.Bool("revalidate"),
				})
				rep.Done()
				reported = true
				return reportOutcome(c, out, storeFull(s, err))
			})
			if !reported { // the store did not open
				return reportOutcome(c, nil, err)
			}
			return err
		},
	}
}

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "resume",
		Usage:     "continue an interrupted run with the same run id, frontier and outputs",
		ArgsUsage: "[RUN_ID]",
		Description: "Pages fetched before the interruption come back from the cache; pending URLs are crawled;\n" +
			"items already written are not written again. The job config is read from the path recorded\n" +
			"in the run (override with --config). A run whose crawl completed but whose outputs were not all\n" +
			"committed (a failure or a crash during the commit) only finishes the commit.\n" +
			"Exit status as for run: 0 completed, 1 failed or not started, 2 bad arguments, 3 completed with\n" +
			"too many errors (max_error_ratio), 130 interrupted.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "job", Usage: "resume the newest run of this job instead of naming a run", EnvVars: []string{"CRAWLCACHE_JOB"}},
			&cli.StringFlag{Name: "config", Usage: "job config to use instead of the path recorded in the run", EnvVars: []string{"CRAWLCACHE_CONFIG"}},
			&cli.BoolFlag{Name: "json", Usage: "print the run summary as one JSON object on the last line of standard output", EnvVars: []string{"CRAWLCACHE_JSON"}},
			leaseFlag(),
			workerIDFlag(),
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			if (c.NArg() == 1) == (c.String("job") != "") || c.NArg() > 1 {
				return cli.Exit("usage: crawlcache resume RUN_ID, or crawlcache resume --job NAME", exitUsage)
			}
			reported := false
			err := withStore(c, func(ctx context.Context, s *store.Store) error {
				reported = true
				runs := jobs.NewRuns(s, nil)
				var run *jobs.Run
				var err error
				if c.NArg() == 1 {
					run, err = runs.Get(ctx, c.Args().First())
				} else {
					run, err = runs.Last(ctx, c.String("job"))
					if err == nil && run == nil {
						err = fmt.Errorf("job %s has no runs", c.String("job"))
					}
				}
				if err != nil {
					return reportOutcome(c, nil, storeDown(s, err))
				}
				path := c.String("config")
				if path == "" {
					path = run.ConfigPath
				}
				job, err := configs.Load(path)
				if err != nil {
					return reportOutcome(c, nil, fmt.Errorf("load the config of run %s (use --config if it moved): %w", run.ID, err))
				}
				r, rep := newRunner(c, s)
				out, err := r.Resume(ctx, run.ID, job)
				rep.Done()
				return reportOutcome(c, out, storeFull(s, err))
			})
			if !reported { // the store did not open
				return reportOutcome(c, nil, err)
			}
			return err
		},
	}
}

// storeDown makes an error that says the store did not answer one sentence
// naming the store (as jobs.Runner does).
func storeDown(s *store.Store, err error) error {
	var sd *jobs.StoreDownError
	if err == nil || errors.As(err, &sd) || !store.IsUnavailable(err) {
		return err
	}
	return &jobs.StoreDownError{Store: s.Describe(), Err: err}
}

// storeFullError is an error of a store whose disk is full, with the
// store's description (Store.Describe) for the message that says where to
// free space.
type storeFullError struct {
	store string
	err   error
}

func (e *storeFullError) Error() string { return e.err.Error() }
func (e *storeFullError) Unwrap() error { return e.err }

// storeFull names s in err when err says that its disk is full.
func storeFull(s *store.Store, err error) error {
	if !store.IsFull(err) {
		return err
	}
	return &storeFullError{store: s.Describe(), err: err}
}

func workerIDFlag() cli.Flag {
	return &cli.StringFlag{Name: "worker-id", Usage: "name of this process in the run record, job lock and frontier leases (default host-pid-random)", EnvVars: []string{"CRAWLCACHE_WORKER_ID"}}
}

// leaseFlag is --lease of every command that crawls (run, resume, worker).
func leaseFlag() cli.Flag {
	return durationFlag("lease", frontier.DefaultLease, "lease of a claimed URL and of a host; if this process is killed, its work returns to other workers after it", "CRAWLCACHE_LEASE")
}

// newRunner builds a Runner with the progress display: a live line when
// standard error is a terminal, a log line every 10 s otherwise.
func newRunner(c *cli.Context, s *store.Store) (*jobs.Runner, *jobs.Reporter) {
	w := errWriter(c)
	f, isFile := w.(*os.File)
	rep := &jobs.Reporter{W: w, Live: isFile && term.IsTerminal(int(f.Fd()))}
	log := slog.New(rep.LogHandler(slog.Default().Handler()))
	return &jobs.Runner{
		Store: s, WorkerID: c.String("worker-id"), FrontierLease: flagDuration(c, "lease"), Progress: rep.Update, Logger: log,
		OnInterrupt: func(n int) {
			rep.Say(fmt.Sprintf("stopping: finishing %d pages in flight; Ctrl-C again to stop now", n))
		},
		StopNow: stopNow(c.Context), Chromium: c.String("chromium"),
	}, rep
}

// runSummary is the --json output: one flat object whose keys are a
// contract with scripts.
type runSummary struct {
	RunID          string  `json:"run_id"`
	Job            string  `json:"job"`
	Status         string  `json:"status"`
	Pages          int64   `json:"pages"`
	Hits           int64   `json:"hits"`
	Misses         int64   `json:"misses"`
	Revalidated    int64   `json:"revalidated"`
	Stale          int64   `json:"stale"`
	Errors         int64   `json:"errors"`
	Items          int64   `json:"items"`
	NetworkBytes   int64   `json:"network_bytes"`
	SavedBytes     int64   `json:"saved_bytes"`
	Queue          int64   `json:"queue"`
	Resumes        int     `json:"resumes"`
	Started        string  `json:"started"`
	Finished       string  `json:"finished,omitempty"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// ActiveSeconds is ElapsedSeconds without the time between a resumed
	// run's sessions.
	ActiveSeconds float64 `json:"active_seconds"`
	Config        string  `json:"config"`
	Error         string  `json:"error,omitempty"`
	// RobotsBlocked, Retries, ErrorRatio, ErrorsByKind and Statuses break
	// the run down as Scrapy's stats do.
	RobotsBlocked int64            `json:"robots_blocked"`
	Retries       int64            `json:"retries"`
	ErrorRatio    float64          `json:"error_ratio"`
	ErrorsByKind  map[string]int64 `json:"errors_by_kind"`
	Statuses      map[string]int64 `json:"statuses"`
	// Parsed and Reused: HTML pages parsed in the run, and those whose
	// links and items came from a stored parse instead.
	Parsed int64 `json:"parsed"`
	Reused int64 `json:"reused"`
	// New, Changed, Unchanged and Gone: the run's pages against the job's
	// previous runs (`runs changes` lists them).
	New       int64 `json:"new"`
	Changed   int64 `json:"changed"`
	Unchanged int64 `json:"unchanged"`
	Gone      int64 `json:"gone"`
}

func summaryOf(r *jobs.Run) runSummary {
	s := runSummary{
		RunID: r.ID, Job: r.Job, Status: string(r.Status),
		Pages: r.Counters.Pages, Hits: r.Counters.Hits, Misses: r.Counters.Misses, Revalidated: r.Counters.Revalidated,
		Stale: r.Counters.Stale, Errors: r.Counters.Errors, Items: r.Counters.Items,
		NetworkBytes: r.Counters.NetworkBytes, SavedBytes: r.Counters.SavedBytes,
		Queue: r.Queue, Resumes: r.Resumes, Started: r.Started.UTC().Format(time.RFC3339),
		ElapsedSeconds: r.Elapsed().Seconds(), ActiveSeconds: r.Active().Seconds(), Config: r.ConfigPath, Error: r.Error,
		RobotsBlocked: r.Counters.Robots, Retries: r.Counters.Retries, ErrorRatio: r.Counters.ErrorRatio(),
		ErrorsByKind: r.Breakdown.ErrorKinds, Statuses: r.Breakdown.Statuses,
		Parsed: r.Counters.Parsed, Reused: r.Counters.Reused,
		New: r.Counters.New, Changed: r.Counters.Changed, Unchanged: r.Counters.Unchanged, Gone: r.Counters.Gone,
	}
	if s.ErrorsByKind == nil {
		s.ErrorsByKind = map[string]int64{}
	}
	if s.Statuses == nil {
		s.Statuses = map[string]int64{}
	}
	if r.Finished != nil {
		s.Finished = r.Finished.UTC().Format(time.RFC3339)
	}
	return s
}

// reportOutcome prints the end of a run (summary table, or JSON with
// --json) and turns its status into the exit status.
func reportOutcome(c *cli.Context, out *jobs.Outcome, err error) error {
	if err != nil && c.Context.Err() != nil && !errors.Is(err, crawler.ErrInterrupted) && !errors.Is(err, jobs.ErrTooManyErrors) {
		// Ctrl-C cut a store call short: that is the interrupt, not a
		// store that went away.
		err = fmt.Errorf("%w: %w", crawler.ErrInterrupted, context.Cause(c.Context))
	}
	if out == nil || out.Run == nil {
		if err == nil {
			return nil
		}

		if c.Bool("json") {
			// Scripts always find one object on the last line.
			job := ""
			var ue *jobs.UnfinishedError
			var le *jobs.LockedError
			switch {
			case errors.As(err, &ue):
				job = ue.Run.Job
			case errors.As(err, &le):
				job = le.Job
			}
			b, _ := json.Marshal(runSummary{Job: job, Status: statusNotStarted, Error: err.Error()})
			fmt.Fprintln(c.App.Writer, string(b))
		}
		if errors.Is(err, crawler.ErrInterrupted) {
			return cli.Exit("interrupted before the run started", exitInterrupted)
		}
		return err
	}
	stdout := c.App.Writer
	human := stdout
	if c.Bool("json") {
		human = errWriter(c)
	}
	fmt.Fprintln(human)
	jobs.WriteSummary(human, out.Run)
	if c.Bool("json") {
		sum := summaryOf(out.Run)
		if errors.Is(err, jobs.ErrTooManyErrors) {
			sum.Error = err.Error()
		}
		b, jerr := json.Marshal(sum)
		if jerr != nil {
			return jerr
		}
		fmt.Fprintln(stdout, string(b))
	}
	var full *storeFullError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUnreachable):
		// Resumable, but not a Ctrl-C: exit 1, say how to go on.
		return cli.Exit(fmt.Sprintf("run %s %s: %v: resume it with crawlcache resume %s once the store answers again", out.Run.ID, out.Run.Status, err, out.Run.ID), 1)
	case errors.Is(err, crawler.ErrInterrupted):
		return cli.Exit(fmt.Sprintf("interrupted: resume with crawlcache resume %s", out.Run.ID), exitInterrupted)
	case errors.As(err, &full):
		// Resumable: what was written stays; free space and go on.
		return cli.Exit(fmt.Sprintf("run %s stopped: %v\nthe disk of the store (%s) is full: free space there, then continue with crawlcache resume %s (what the run finished is kept)", out.Run.ID, err, full.store, out.Run.ID), exitFailed)
	case errors.Is(err, jobs.ErrTooManyErrors):
		return cli.Exit(fmt.Sprintf("run %s completed with %v", out.Run.ID, err), exitTooManyErrors)
	default:
		return cli.Exit(fmt.Sprintf("run %s failed: %v", out.Run.ID, err), exitFailed)
	}
}

func errWriter(c *cli.Context) io.Writer {
	if c.App.ErrWriter != nil {
		return c.App.ErrWriter
	}
	return os.Stderr
}
