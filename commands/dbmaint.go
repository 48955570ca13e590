package commands

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"crawlcache/store"
)

// dataDirFlag is --data-dir alone: the db maintenance commands work on the
// embedded store's files, never through a server.
func dataDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "data-dir",
		Value:   store.DefaultDataDir,
		Usage:   "directory of the embedded store",
		EnvVars: []string{"CRAWLCACHE_DATA_DIR"},
	}
}

// dbMaintenanceCommands are `db check`, `db recover` and `db compact`.
func dbMaintenanceCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:  "check",
			Usage: "check every file of the embedded store for damage (SQLite integrity check); exit 1 when one is damaged",
			Description: "Reads every database file of --data-dir without changing it and prints a verdict per file.\n" +
				"Stop the process that serves the directory first. Exit status: 0 all files intact, 1 damage\n" +
				"found (then `crawlcache db recover` copies what is readable into a new directory).",
			Flags:  []cli.Flag{dataDirFlag()},
			Action: runDBCheck,
		},
		{
			Name:      "recover",
			Usage:     "copy every readable document of a damaged embedded store into a new data directory, and say what was lost",
			ArgsUsage: " ",
			Description: "Reads the files of --data-dir row by row, skipping damaged pages, and writes every document it\n" +
				"can read into a new data directory --out (which must not exist or be empty). The damaged\n" +
				"directory is not changed. Exit status: 0 everything copied, 1 something was lost (listed).",
			Flags: []cli.Flag{dataDirFlag(),
				&cli.StringFlag{Name: "out", Usage: "new data directory to copy into (required)", EnvVars: []string{"CRAWLCACHE_RECOVER_OUT"}},
			},
			Action: runDBRecover,
		},
		{
			Name:  "compact",
			Usage: "give the space of deleted documents back to the disk (SQLite VACUUM of every file)",
			Description: "SQLite files never shrink after a purge. compact rewrites each file of --data-dir to the size its\n" +
				"data needs. It refuses while another process serves the directory, and needs free disk space\n" +
				"for a copy of the largest file.",
			Flags:  []cli.Flag{dataDirFlag()},
			Action: runDBCompact,
		},
	}
}

func runDBCheck(c *cli.Context) error {
	dir := c.String("data-dir")
	checks, err := store.Check(c.Context, dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSIZE\tVERDICT")
	var bad []string
	for _, ch := range checks {
		verdict := "ok"
		if !ch.OK {
			verdict = "DAMAGED"
			bad = append(bad, ch.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Name, fmtSize(ch.Size+ch.WALSize), verdict)
	}
	tw.Flush()
	for _, ch := range checks {
		for _, p := range ch.Problems {
			fmt.Fprintf(c.App.Writer, "  %s: %s\n", ch.Name, p)
		}
	}
	if len(checks) == 0 {
		fmt.Fprintf(c.App.Writer, "%s holds no database file yet\n", dir)
	}
	if len(bad) > 0 {
		return cli.Exit(fmt.Sprintf("damaged: %s. Copy what is readable into a new data directory with `crawlcache db recover --data-dir %s --out NEW_DIR`, then use --data-dir NEW_DIR",
			strings.Join(bad, ", "), dir), 1)
	}
	fmt.Fprintf(c.App.Writer, "all %d files of %s are intact\n", len(checks), dir)
	return nil
}

func runDBRecover(c *cli.Context) error {
	dir, out := c.String("data-dir"), c.String("out")
	if out == "" {
		return cli.Exit("db recover: --out NEW_DIR is required (a new data directory to copy into)", 2)
	}
	rec, err := store.Recover(c.Context, dir, out, nil)
	if rec != nil {
		fmt.Fprint(c.App.Writer, rec)
	}
	if err != nil {
		return err
	}
	if rec.Lost() {
		return cli.Exit(fmt.Sprintf("recovered into %s; some documents could not be read (above, LOST). %s is unchanged; use --data-dir %s from now on", out, dir, out), 1)
	}
	fmt.Fprintf(c.App.Writer, "recovered everything into %s; %s is unchanged; use --data-dir %s from now on\n", out, dir, out)
	return nil
}

func runDBCompact(c *cli.Context) error {
	dir := c.String("data-dir")
	res, err := store.Compact(c.Context, dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tBEFORE\tAFTER")
	var before, after int64
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, fmtSize(r.Before), fmtSize(r.After))
		before, after = before+r.Before, after+r.After
	}
	tw.Flush()
	fmt.Fprintf(c.App.Writer, "compacted %s: %s -> %s\n", dir, fmtSize(before), fmtSize(after))
	return nil
}
