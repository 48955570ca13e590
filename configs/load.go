package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, parses and validates the job file at path. The error joins
// one *Error per mistake (see Errors); a file that cannot be read gives a
// single *Error with no line.
func Load(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: readMsg(err)}
	}
	return Parse(path, data)
}

// readMsg phrases a read error without repeating the path.
func readMsg(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return "cannot read: " + err.Error()
}

// Parse parses and validates a job file's bytes; name is the file path used
// in errors and Job.Source and must not be empty (it defaults to "config").
// ${ENV_VAR} references in headers are expanded from the environment.
func Parse(name string, data []byte) (*Job, error) {
	return parse(name, data, os.LookupEnv)
}

func parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Job, error) {
	if name == "" {
		name = "config"
	}
	sum := sha256.Sum256(data)
	job := &Job{Source: name, Hash: hex.EncodeToString(sum[:])}
	d := &decoder{file: name, lookupEnv: lookupEnv}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		d.errorf(nil, "", "empty file: a job needs at least name and seeds")
		return nil, joinErrors(d.errs)
	case err != nil:
		return nil, joinErrors(syntaxErrors(name, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "", "more than one YAML document: write one job per file")
	} else if !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, syntaxErrors(name, err)...)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			d.errorf(root, "", "empty file: a job needs at least name and seeds")
			return nil, joinErrors(d.errs)
		}
		root = root.Content[0]
	}
	d.job(root, job)
	if err := joinErrors(d.errs); err != nil {
		return nil, err
	}
	return job, nil
}

// LoadDir loads every *.yaml and *.yml file directly in dir, in name order.
// Errors of all files are joined; two jobs with the same name are an error
// naming both files. The returned jobs are those that loaded.
func LoadDir(dir string) ([]*Job, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{File: dir, Msg: readMsg(err)}
	}
	var jobs []*Job
	var errs []error
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		job, err := Load(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		jobs = append(jobs, job)
	}
	errs = append(errs, Unique(jobs))
	return jobs, errors.Join(errs...)
}

// Unique returns an error for every job whose name an earlier job in jobs
// already uses, naming both files; nil if all names differ.
func Unique(jobs []*Job) error {
	first := make(map[string]*Job, len(jobs))
	var errs []error
	for _, j := range jobs {
		if prev, dup := first[j.Name]; dup {
			errs = append(errs, &Error{File: j.Source, Line: j.nameLine, Key: "name",
				Msg: fmt.Sprintf("duplicate job name %q (also in %s)", j.Name, prev.Source)})
			continue
		}
		first[j.Name] = j
	}
	return errors.Join(errs...)
}

// Summary describes the job in one line for `crawlcache validate`, e.g.
// `job "example", 3 seeds, schedule "@every 6h"`.
func (j *Job) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %q, %d seed", j.Name, len(j.Seeds))
	if len(j.Seeds) != 1 {
		b.WriteString("s")
	}
	if j.Schedule != "" {
		fmt.Fprintf(&b, ", schedule %q", j.Schedule)
	}
	return b.String()
}

// AllowsHost reports whether the crawl may visit host (a URL's Hostname):
// it equals one of AllowedDomains or is a subdomain of one. Comparison is
// case-insensitive.
func (j *Job) AllowsHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return slices.ContainsFunc(j.AllowedDomains, func(d string) bool {
		return host == d || strings.HasSuffix(host, "."+d)
	})
}

// FollowsURL reports whether a discovered link passes the include and
// exclude filters: it matches some Include (or Include is empty) and no
// Exclude. Domain and depth checks are separate.
func (j *Job) FollowsURL(u string) bool {
	if len(j.Include) > 0 && !slices.ContainsFunc(j.Include, func(re *regexp.Regexp) bool { return re.MatchString(u) }) {
		return false
	}
	return !slices.ContainsFunc(j.Exclude, func(re *regexp.Regexp) bool { return re.MatchString(u) })
}
