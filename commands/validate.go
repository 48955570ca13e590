package commands

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check job config files without crawling",
		ArgsUsage: "FILE|DIR...",
		Description: "Loads each job file strictly and prints one ok line per valid file, or every mistake\n" +
			"as file:line: key: message. A directory means every *.yaml and *.yml file in it; job names\n" +
			"must be unique across all the files given. Exits 1 if any file is invalid. Needs no store.",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.Exit("validate: name one or more config files or directories", 2)
			}
			files, err := configFiles(c.Args().Slice())
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if bad := validateFiles(c.App.Writer, files); bad > 0 {
				return cli.Exit(fmt.Sprintf("%d of %d config files invalid", bad, len(files)), 1)
			}
			return nil
		},
	}
}

// configFiles expands directories into their *.yaml and *.yml files.
func configFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil || !fi.IsDir() {
			files = append(files, a) // Load reports a missing file
			continue
		}
		var inDir []string
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(a, pat))
			if err != nil {
				return nil, fmt.Errorf("list configs in %s: %w", a, err)
			}
			inDir = append(inDir, m...)
		}
		if len(inDir) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml or *.yml files", a)
		}
		slices.Sort(inDir)
		files = append(files, inDir...)
	}
	seen := make(map[string]bool)
	return slices.DeleteFunc(files, func(f string) bool {
		dup := seen[filepath.Clean(f)]
		seen[filepath.Clean(f)] = true
		return dup
	}), nil
}

// validateFiles loads every file and prints, in file order, an ok line or
// every mistake; it returns how many files are invalid (a file whose job
// name another file already uses is invalid).
func validateFiles(w io.Writer, files []string) int {
	type result struct {
		job *configs.Job
		err error
	}
	results := make([]result, len(files))
	var jobs []*configs.Job
	for i, f := range files {
		job, err := configs.Load(f)
		results[i] = result{job, err}
		if err == nil {
			jobs = append(jobs, job)
		}
	}
	dups := make(map[*configs.Job]error)
	for _, e := range configs.Errors(configs.Unique(jobs)) {
		for _, j := range jobs {
			if j.Source == e.File {
				dups[j] = e
			}
		}
	}
	bad := 0
	for i, r := range results {
		if r.err == nil {
			r.err = dups[r.job]
		}
		if r.err != nil {
			bad++
			printErrors(w, r.err)
			continue
		}
		fmt.Fprintf(w, "ok  %s (%s)\n", files[i], r.job.Summary())
	}
	return bad
}

// printErrors prints one line per mistake.
func printErrors(w io.Writer, err error) {
	list := configs.Errors(err)
	if len(list) == 0 {
		fmt.Fprintln(w, err)
		return
	}
	for _, e := range list {
		fmt.Fprintln(w, e)
	}
}
