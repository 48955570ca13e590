package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
	"crawlcache/jobs"
	"crawlcache/store"
)

func scheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "run every job that has a `schedule` when it is due, until Ctrl-C",
		Description: "Loads every *.yaml job in --configs. A job runs when its cron expression or @every descriptor\n" +
			"is due, never twice at once: several schedulers (on several machines) on one store run each\n" +
			"due job once. An interrupted run of a job is resumed at its next occurrence. Serves Prometheus\n" +
			"/metrics and /healthz on --metrics-addr. SIGHUP, or a changed file in --configs, reloads the job\n" +
			"files without stopping runs in progress (an invalid file keeps its jobs' previous definition).\n" +
			"Ctrl-C interrupts running jobs (resumable) and exits.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "configs", Value: "configs", Usage: "directory of job configs", EnvVars: []string{"CRAWLCACHE_CONFIGS"}},
			&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:9090", Usage: "address for /metrics and /healthz (empty: no HTTP server)", EnvVars: []string{"CRAWLCACHE_METRICS_ADDR"}},
			&cli.BoolFlag{Name: "once", Usage: "run every scheduled job once now, then exit", EnvVars: []string{"CRAWLCACHE_ONCE"}},
			&cli.StringFlag{Name: "reload-poll", Value: "2s", Usage: "how often to look for changed job files in --configs (0: only on SIGHUP)", EnvVars: []string{"CRAWLCACHE_RELOAD_POLL"}},
			workerIDFlag(),
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			all, err := configs.LoadDir(c.String("configs"))
			if err != nil {
				return err
			}
			var ln net.Listener
			if addr := c.String("metrics-addr"); addr != "" {
				if ln, err = net.Listen("tcp", addr); err != nil {
					return fmt.Errorf("--metrics-addr %s: %w", addr, err)
				}
			}
			return withStore(c, func(ctx context.Context, s *store.Store) error {
				return schedule(ctx, c, s, all, ln)
			})
		},
	}
}

func schedule(ctx context.Context, c *cli.Context, s *store.Store, all []*configs.Job, ln net.Listener) error {
	log := slog.Default()
	poll, err := configs.ParseDuration(c.String("reload-poll"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("--reload-poll %q: %v", c.String("reload-poll"), err), exitUsage)
	}
	runner := &jobs.Runner{
		Store: s, WorkerID: c.String("worker-id"), Logger: log, StopNow: stopNow(ctx), Chromium: c.String("chromium"),
		OnInterrupt: func(n int) {
			log.Info("stopping: finishing the pages in flight; Ctrl-C again to stop now", "in_flight", n)
		},
	}
	metrics := jobs.NewMetrics()
	metrics.SetVersion(Version)
	runner.Progress = metrics.Progress
	sched, err := jobs.NewScheduler(jobs.SchedulerOptions{
		Jobs:   all,
		Locker: jobs.NewLocker(s, nil),
		Run: func(ctx context.Context, job *configs.Job) (*jobs.Outcome, error) {
			return runner.Run(ctx, job, jobs.StartOptions{Resume: true})
		},
		Metrics: metrics,
		Logger:  log,
	})
	if err != nil {
		return err
	}
	next := sched.Jobs()
	if len(next) == 0 {
		return fmt.Errorf("no job in %s has a schedule", c.String("configs"))
	}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		log.Info("scheduled", "job", name, "next", next[name].Local().Format(time.RFC3339))
	}

	var srv *http.Server
	if ln != nil {
		srv = &http.Server{Handler: metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics", "health", "http://"+ln.Addr().String()+"/healthz")
	}
	// The first look at the job files is taken before anyone is told the
	// scheduler runs: a change made after that line is seen.
	watch := jobs.NewDirWatch(c.String("configs"))
	log.Info("scheduler running", "jobs", len(next), "store", s.Describe(), "once", c.Bool("once"))
	// Expired cache entries, and parse records of pages no longer cached,
	// are swept here, beside the runs (a sweep scans a whole collection, so
	// no run does it): with --once after the runs.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	sw := &sweeper{s: s, log: log}
	if c.Bool("once") {
		close(swept)
	} else {
		go func() { defer close(swept); sw.loop(sweepCtx) }()
	}
	said := make(chan struct{})
	if c.Bool("once") {
		close(said)
	} else {
		go watchConfigs(sweepCtx, sched, watch, c.String("configs"), poll, log)
		go func() { defer close(said); sayStopping(ctx, sched, log) }()
	}
	sched.Loop(ctx, c.Bool("once"))
	<-said // Loop returns only once ctx is done (or after --once)
	stopSweep()
	<-swept
	if c.Bool("once") {
		sw.once(ctx)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	log.Info("scheduler stopped")
	return nil
}

// watchConfigs reloads the job files on SIGHUP and, every poll (0: never),
// when a file in dir changed, until ctx is done.
func watchConfigs(ctx context.Context, sched *jobs.Scheduler, w *jobs.DirWatch, dir string, poll time.Duration, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changed := make(chan struct{}, 1)
	if poll > 0 {
		go w.Run(ctx, poll, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}
	for {
		why := "SIGHUP"
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-changed:
			why = "a file changed in " + dir
		}
		all, err := configs.LoadDir(dir)
		rep := sched.Reload(all, err, time.Now())
		for _, e := range rep.Errors {
			log.Error("schedule: job file invalid; the jobs it defined keep their previous definition", "err", e)
		}
		log.Info("schedule: job files reloaded", "why", why, "added", rep.Added, "changed", rep.Changed,
			"removed", rep.Removed, "kept_previous", rep.Kept, "running", sched.Running())
		next := sched.Jobs()
		for _, name := range append(rep.Added, rep.Changed...) {
			log.Info("scheduled", "job", name, "next", next[name].Local().Format(time.RFC3339))
		}
	}
}

// sayStopping says, at the first Ctrl-C, what the scheduler does: no new
// runs, and the runs in progress are interrupted (resumable).
func sayStopping(ctx context.Context, sched *jobs.Scheduler, log *slog.Logger) {
	<-ctx.Done()
	running := sched.Running()
	if len(running) == 0 {
		log.Info("schedule: stopping: no run in progress; no new run will start; shutting down")
		return
	}
	log.Info(fmt.Sprintf("schedule: stopping: no new run will start; interrupting %d running (%s): "+
		"the pages in flight finish (up to 10s), then each run is recorded interrupted and resumes at its job's next occurrence "+
		"(or with `crawlcache resume --job NAME`); Ctrl-C again to stop now", len(running), strings.Join(running, ", ")),
		"running", running)
}
