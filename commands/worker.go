package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/jobs"
	"crawlcache/store"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "join running runs as one more worker (several machines sharing one MongoDB)",
		Description: "Claims URLs of a running run from the shared frontier, with leases, and fetches a host only\n" +
			"while it holds that host's lease, so rate.per_host holds for the whole fleet. It never starts a run:\n" +
			"start one with `crawlcache run FILE --store URI`. Without --run or --job it joins every running run,\n" +
			"one after another, and exits when none is left (status 0, also when there was nothing to do),\n" +
			"which suits systemd Restart=always. The run is completed by whichever worker sees it drained;\n" +
			"exit status 3 when a run it joined completed with too many errors (max_error_ratio), as for run.\n" +
			"Ctrl-C hands this worker's URLs back and exits with status 130; the run goes on.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "join only this run (exit status 1 if it is not running)", EnvVars: []string{"CRAWLCACHE_RUN"}},
			&cli.StringFlag{Name: "job", Usage: "join only running runs of this job", EnvVars: []string{"CRAWLCACHE_JOB"}},
			&cli.StringFlag{Name: "configs", Usage: "find a run's job config in this directory by job name (default: the path recorded in the run)", EnvVars: []string{"CRAWLCACHE_CONFIGS"}},
			durationFlag("wait", 0, "keep looking this long for a running run before giving up (0: look once)", "CRAWLCACHE_WAIT"),
			leaseFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per joined run on standard output", EnvVars: []string{"CRAWLCACHE_JSON"}},
			workerIDFlag(),
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("usage: crawlcache worker [--run ID | --job NAME] [--configs DIR]", exitUsage)
			}
			if c.String("run") != "" && c.String("job") != "" {
				return cli.Exit("worker: give --run or --job, not both", exitUsage)
			}
			return withStore(c, func(ctx context.Context, s *store.Store) error {
				r, rep := newRunner(c, s)
				outs, err := r.Work(ctx, jobs.WorkOptions{
					RunID: c.String("run"), Job: c.String("job"), Wait: flagDuration(c, "wait"),
					LoadJob: jobLoader(c.String("configs")),
				})
				rep.Done()
				return reportWork(c, r.WorkerID, outs, err)
			})
		},
	}
}

// jobLoader returns how the worker finds a run's config: the path recorded
// in the run, or the job of the same name in dir.
func jobLoader(dir string) func(context.Context, *jobs.Run) (*configs.Job, error) {
	return func(_ context.Context, run *jobs.Run) (*configs.Job, error) {
		if dir == "" {
			job, err := configs.Load(run.ConfigPath)
			if err != nil {
				return nil, fmt.Errorf("load %s (recorded in the run; use --configs DIR on another machine): %w", run.ConfigPath, err)
			}
			return job, nil
		}
		list, err := configs.LoadDir(dir) // other files' errors do not matter here
		for _, j := range list {
			if j.Name == run.Job {
				return j, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("no job named %s in %s: %w", run.Job, dir, err)
		}
		return nil, fmt.Errorf("no job named %s in %s", run.Job, dir)
	}
}

// workSummary is one line of `worker --json`: the run summary plus what
// this worker did in it.
type workSummary struct {
	runSummary
	Worker  string        `json:"worker"`
	Session jobs.Counters `json:"session"`
}

// reportWork prints each joined run and turns the outcome into the exit
// status: 0 when every join ended normally (or there was nothing to join),
// 130 when interrupted, 3 when a run it joined completed with too many
// errors (max_error_ratio), 1 otherwise.
func reportWork(c *cli.Context, worker string, outs []*jobs.Outcome, err error) error {
	human := c.App.Writer
	if c.Bool("json") {
		human = errWriter(c)
	}
	for _, out := range outs {
		if out == nil || out.Run == nil {
			continue
		}
		fmt.Fprintln(human)
		jobs.WriteSummary(human, out.Run)
		s := out.Session
		fmt.Fprintf(human, "worker  %s: %d pages (hits %d, 304s %d, misses %d), %d errors, %d items\n",
			worker, s.Pages, s.Hits, s.Revalidated, s.Misses, s.Errors, s.Items)
		if c.Bool("json") {
			sum := summaryOf(out.Run)
			if out.Verdict != nil {
				sum.Error = out.Verdict.Error()
			}
			b, jerr := json.Marshal(workSummary{sum, worker, s})
			if jerr != nil {
				return jerr
			}
			fmt.Fprintln(c.App.Writer, string(b))
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, crawler.ErrInterrupted):
		return cli.Exit("worker interrupted: its URLs were handed back; the run goes on", exitInterrupted)
	case errors.Is(err, jobs.ErrTooManyErrors):
		for _, out := range outs {
			if out != nil && out.Run != nil && out.Verdict != nil {
				return cli.Exit(fmt.Sprintf("worker: run %s completed with %v", out.Run.ID, out.Verdict), exitTooManyErrors)
			}
		}
		return cli.Exit(fmt.Sprintf("worker: %v", err), exitTooManyErrors)
	case errors.Is(err, jobs.ErrNoRunningRun) && c.String("run") == "":
		fmt.Fprintf(errWriter(c), "crawlcache worker: %v: nothing to do (%s)\n", err, time.Now().UTC().Format(time.RFC3339))
		return nil
	default:
		return cli.Exit(fmt.Sprintf("worker: %v", err), 1)
	}
}
