package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/jobs"
	"crawlcache/store"
)

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "list and inspect run records",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list runs, newest first",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "job", Usage: "only this job's runs", EnvVars: []string{"CRAWLCACHE_JOB"}},
					&cli.IntFlag{Name: "limit", Value: 20, Usage: "at most this many runs (0: all)", EnvVars: []string{"CRAWLCACHE_LIMIT"}},
					&cli.BoolFlag{Name: "json", Usage: "one JSON object per line", EnvVars: []string{"CRAWLCACHE_JSON"}},
				}, storeFlags()...),
				Action: func(c *cli.Context) error {
					return withStore(c, func(ctx context.Context, s *store.Store) error {
						list, err := jobs.NewRuns(s, nil).List(ctx, jobs.ListOptions{Job: c.String("job"), Limit: c.Int("limit")})
						if err != nil {
							return storeDown(s, err)
						}
						w := c.App.Writer
						if c.Bool("json") {
							enc := json.NewEncoder(w)
							for _, r := range list {
								if err := enc.Encode(summaryOf(r)); err != nil {
									return err
								}
							}
							return nil
						}
						if len(list) == 0 {
							fmt.Fprintln(w, "no runs yet: start one with `crawlcache run FILE`")
							return nil
						}
						tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
						fmt.Fprintln(tw, "RUN\tSTATUS\tSTARTED\tELAPSED\tPAGES\tHITS\t304s\tMISSES\tERRORS\tITEMS")
						for _, r := range list {
							c := r.Counters
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Status,
								r.Started.Local().Format("2006-01-02 15:04:05"), r.Elapsed().Round(time.Second),
								c.Pages, c.Hits, c.Revalidated, c.Misses, c.Errors, c.Items)
						}
						return tw.Flush()
					})
				},
			},
			{
				Name:      "show",
				Usage:     "show one run with its workers",
				ArgsUsage: "RUN_ID",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "the run record as JSON", EnvVars: []string{"CRAWLCACHE_JSON"}},
				}, storeFlags()...),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("usage: crawlcache runs show RUN_ID", 1)
					}
					return withStore(c, func(ctx context.Context, s *store.Store) error {
						r, err := jobs.NewRuns(s, nil).Get(ctx, c.Args().First())
						if err != nil {
							return storeDown(s, err)
						}
						if c.Bool("json") {
							out := struct {
								runSummary
								ConfigHash string        `json:"config_hash"`
								Options    []string      `json:"options,omitempty"`
								Workers    []jobs.Worker `json:"workers"`
							}{summaryOf(r), r.ConfigHash, r.Options, r.WorkerList()}
							enc := json.NewEncoder(c.App.Writer)
							enc.SetIndent("", "  ")
							return enc.Encode(out)
						}
						showRun(c, r)
						return nil
					})
				},
			},
			runsChangesCommand(),
		},
	}
}

func showRun(c *cli.Context, r *jobs.Run) {
	w := c.App.Writer
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "job\t%s\n", r.Job)
	fmt.Fprintf(tw, "config\t%s (sha256 %.12s)\n", r.ConfigPath, r.ConfigHash)
	fmt.Fprintf(tw, "started\t%s\n", r.Started.Local().Format(time.RFC3339))
	if r.Finished != nil {
		fmt.Fprintf(tw, "finished\t%s\n", r.Finished.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "last update\t%s\n", r.Updated.Local().Format(time.RFC3339))
	}
	if r.Resumes > 0 {
		fmt.Fprintf(tw, "resumes\t%d\n", r.Resumes)
	}
	if len(r.Options) > 0 {
		fmt.Fprintf(tw, "options\t%v\n", r.Options)
	}
	fmt.Fprintf(tw, "queue\t%d\n", r.Queue)
	_ = tw.Flush()
	jobs.WriteSummary(w, r)
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tPID\tSTARTED\tHEARTBEAT\tPAGES\tHITS\t304s\tMISSES\tERRORS\tITEMS")
	for _, wk := range r.WorkerList() {
		k := wk.Counters
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", wk.ID, wk.Host, wk.PID,
			wk.Started.Local().Format("15:04:05"), wk.Heartbeat.Local().Format("15:04:05"),
			k.Pages, k.Hits, k.Revalidated, k.Misses, k.Errors, k.Items)
	}
	_ = tw.Flush()
}
