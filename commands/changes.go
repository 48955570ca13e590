package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"crawlcache/changes"
	"crawlcache/jobs"
	"crawlcache/store"
)

// runsChangesCommand is `runs changes RUN_ID [--kind KIND] [--json]`.
func runsChangesCommand() *cli.Command {
	return &cli.Command{
		Name:      "changes",
		Usage:     "list a run's pages by what changed since the job's previous runs",
		ArgsUsage: "RUN_ID",
		Description: "KIND is new (never fetched by the job before), changed (body differs, ignoring changes.ignore_css/ignore_regex),\n" +
			"unchanged (304, fresh hit or same body), gone (404/410 where it was 2xx, or no longer reached from the seeds) or error",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "kind", Usage: "only pages of this kind: " + strings.Join(changes.Kinds, ", "), EnvVars: []string{"CRAWLCACHE_KIND"}},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per line", EnvVars: []string{"CRAWLCACHE_JSON"}},
		}, storeFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: crawlcache runs changes RUN_ID [--kind KIND] [--json]", 1)
			}
			kind := c.String("kind")
			if kind != "" && !slices.Contains(changes.Kinds, kind) {
				return cli.Exit(fmt.Sprintf("runs changes: --kind %q: want one of %s", kind, strings.Join(changes.Kinds, ", ")), 2)
			}
			return withStore(c, func(ctx context.Context, s *store.Store) error {
				runID := c.Args().First()
				if _, err := jobs.NewRuns(s, nil).Get(ctx, runID); err != nil {
					return storeDown(s, err)
				}
				return listChanges(c, s, runID, kind)
			})
		},
	}
}

// listChanges prints the change records of runID (of kind, if set).
func listChanges(c *cli.Context, s *store.Store, runID, kind string) error {
	w := c.App.Writer
	records := s.Collection(jobs.Database, changes.RecordsCollection)
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		return storeDown(s, changes.List(c.Context, records, runID, kind, func(r changes.Record) error { return enc.Encode(r) }))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSTATUS\tURL")
	n := 0
	err := changes.List(c.Context, records, runID, kind, func(r changes.Record) error {
		n++
		status := "-"
		if r.Status != 0 {
			status = fmt.Sprint(r.Status)
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Kind, status, r.URL)
		return err
	})
	if err != nil {
		return storeDown(s, err)
	}
	if n == 0 {
		fmt.Fprintf(w, "no pages recorded for run %s%s (runs of an earlier release record none)\n", runID, kindSuffix(kind))
		return nil
	}
	return tw.Flush()
}

func kindSuffix(kind string) string {
	if kind == "" {
		return ""
	}
	return " of kind " + kind
}
