package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"crawlcache/jobs"
	"crawlcache/testsite"
)

// TestCLIConfigMistakes runs `crawlcache validate` and `crawlcache run` on
// files with one representative mistake of each kind: both must fail and
// name the file, the line and the key (configs has the exhaustive unit
// tests; this checks that the CLI shows them).
func TestCLIConfigMistakes(t *testing.T) {
	requireCommands(t, "validate", "run")
	dir := t.TempDir()
	dataDir := t.TempDir()
	const head = "name: bad\nseeds: ['http://127.0.0.1:9/']\n"
	cases := []struct {
		name, yaml, want string // want: "line: key" after the file name
	}{
		{"unknown key", head + "max_dept: 3\n", ":3: max_dept"},
		{"wrong type", head + "rate:\n  per_host: fast\n", ":4: rate.per_host"},
		{"bad duration", head + "retry:\n  backoff: 1w\n", ":4: retry.backoff"},
		{"bad regexp", head + "include: ['(unclosed']\n", ":3: include[0]"},
		{"bad selector", head + "extract:\n  fields:\n    title: {css: 'h1 >'}\n", ":5: extract.fields.title.css"},
		{"bad cron", head + "schedule: '61 * * * *'\n", ":3: schedule"},
		{"two output kinds", head + "outputs:\n  - {jsonl: {path: a.jsonl}, csv: {path: a.csv}}\n", ":4: outputs[0]"},
		{"missing required key", "name: bad\n", ":1: seeds"},
		{"unset environment variable", head + "headers:\n  Authorization: 'Bearer ${CRAWLCACHE_E2E_UNSET}'\n", ":4: headers.Authorization"},
		{"bad size", head + "max_body_size: 10 parsecs\n", ":3: max_body_size"},
	}
	// validate takes every file at once and reports each; run stops at
	// its file's mistakes before touching the store.
	var paths []string
	for i, tc := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
		cases[i].want = path + tc.want
	}
	res := runCLI(t, dir, nil, append([]string{"validate"}, paths...)...)
	if res.Code == 0 {
		t.Errorf("validate: exit 0 for %d bad files", len(paths))
	}
	for _, tc := range cases {
		if out := res.Stdout + res.Stderr; !strings.Contains(out, tc.want) {
			t.Errorf("%s: validate output does not contain %q:\n%s", tc.name, tc.want, out)
		}
	}
	for i, tc := range cases {
		if i%3 != 0 { // a few representative cases; each is a process
			continue
		}
		res := runCLI(t, dir, nil, "run", "--data-dir", dataDir, paths[i])
		if out := res.Stdout + res.Stderr; res.Code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: run: exit %d, output %q; want a non-zero exit and %q", tc.name, res.Code, out, tc.want)
		}
	}
}

// runJSON is the run summary that `crawlcache run --json` prints.
func runJSON(t *testing.T, res cliResult) map[string]any {
	t.Helper()
	var m map[string]any
	line := res.lastLine()
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("last stdout line %q is not a JSON object: %v (exit %d, stderr %s)", line, err, res.Code, res.Stderr)
	}
	for _, k := range []string{"run_id", "job", "status"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("--json: %q = %v (%T), want a string", k, m[k], m[k])
		}
	}
	for _, k := range []string{"pages", "hits", "misses", "revalidated", "stale", "errors", "items", "network_bytes", "saved_bytes"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("--json: %q = %v (%T), want a number", k, m[k], m[k])
		}
	}
	return m
}

// TestCLIRunJSON checks the `run --json` contract: the last line of
// standard output is one JSON object with the documented keys, the exit
// status is 0 only for a completed run, and the store flags and their
// environment variables choose where runs and the cache live.
func TestCLIRunJSON(t *testing.T) {
	requireCommands(t, "run", "runs", "cache")
	site := smallSite(15, testsite.Options{Seed: 21})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "contract", Base: srv.URL, Dir: dir})
	dataDir := t.TempDir()

	first := runCLI(t, dir, nil, "run", "--json", "--data-dir", dataDir, cfg)
	if first.Code != 0 {
		t.Fatalf("run: exit %d, stderr %s", first.Code, first.Stderr)
	}
	m := runJSON(t, first)
	pages := float64(len(site.ReachableURLs(srv.URL)))
	if m["status"] != "completed" || m["job"] != "contract" || m["pages"] != pages || m["misses"] != pages || m["hits"] != 0.0 {
		t.Errorf("first run summary %v; want completed, job contract, %v pages all misses", m, pages)
	}
	if m["items"].(float64) < float64(len(site.Products())) || m["network_bytes"].(float64) <= 0 {
		t.Errorf("first run items %v, network_bytes %v; want >= %d and > 0", m["items"], m["network_bytes"], len(site.Products()))
	}

	// The environment variable chooses the same data directory: all hits.
	second := runCLI(t, dir, []string{"CRAWLCACHE_DATA_DIR=" + dataDir}, "run", "--json", cfg)
	if second.Code != 0 {
		t.Fatalf("second run: exit %d, stderr %s", second.Code, second.Stderr)
	}
	if m2 := runJSON(t, second); m2["hits"] != pages || m2["misses"] != 0.0 || m2["saved_bytes"].(float64) <= 0 {
		t.Errorf("second run (CRAWLCACHE_DATA_DIR) summary %v; want %v hits, 0 misses, saved bytes", m2, pages)
	}
	if _, err := os.Stat(filepath.Join(dir, "crawlcache-data")); err == nil {
		t.Errorf("CRAWLCACHE_DATA_DIR ignored: the default data directory was created in %s", dir)
	}

	// runs ls and cache stats read the same data directory, by flag and by
	// environment variable; an empty directory has neither.
	empty := t.TempDir()
	for _, tc := range []struct {
		name      string
		env, args []string
		runs      int
		cached    bool
	}{
		{"--data-dir", nil, []string{"--data-dir", dataDir}, 2, true},
		{"CRAWLCACHE_DATA_DIR", []string{"CRAWLCACHE_DATA_DIR=" + dataDir}, nil, 2, true},
		{"empty --data-dir", []string{"CRAWLCACHE_DATA_DIR=" + dataDir}, []string{"--data-dir", empty}, 0, false},
	} {
		res := runCLI(t, dir, tc.env, append([]string{"runs", "ls", "--json"}, tc.args...)...)
		if n := strings.Count(res.Stdout, `"run_id"`); res.Code != 0 || n != tc.runs {
			t.Errorf("%s: runs ls: exit %d, %d runs (%s); want %d", tc.name, res.Code, n, res.Stderr, tc.runs)
		}
		res = runCLI(t, dir, tc.env, append([]string{"cache", "stats", "--json"}, tc.args...)...)
		var st struct{ Entries int64 }
		if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || res.Code != 0 || (st.Entries > 0) != tc.cached {
			t.Errorf("%s: cache stats: exit %d, %d entries (%v, %s); want entries %v", tc.name, res.Code, st.Entries, err, res.Stderr, tc.cached)
		}
	}

	// --store and CRAWLCACHE_STORE: a MongoDB URI (here an embedded server
	// this test runs) instead of a data directory.
	_, s := startServer(t, t.TempDir(), "", 5*time.Second)
	for _, tc := range []struct {
		name      string
		env, args []string
	}{
		{"--store", nil, []string{"--store", s.URI}},
		{"CRAWLCACHE_STORE", []string{"CRAWLCACHE_STORE=" + s.URI}, nil},
	} {
		res := runCLI(t, dir, tc.env, append(append([]string{"run", "--json", "--fresh"}, tc.args...), cfg)...)
		if res.Code != 0 {
			t.Fatalf("%s: run: exit %d, stderr %s", tc.name, res.Code, res.Stderr)
		}
		id, _ := runJSON(t, res)["run_id"].(string)
		if _, err := s.Collection(jobs.Database, jobs.RunsCollection).Get(context.Background(), id); err != nil {
			t.Errorf("%s: run %s is not in the store at %s: %v", tc.name, id, s.URI, err)
		}
		res = runCLI(t, dir, tc.env, append([]string{"runs", "ls", "--json"}, tc.args...)...)
		if !strings.Contains(res.Stdout, id) {
			t.Errorf("%s: runs ls does not list %s: %s %s", tc.name, id, res.Stdout, res.Stderr)
		}
		res = runCLI(t, dir, tc.env, append([]string{"cache", "stats", "--json"}, tc.args...)...)
		var st struct{ Entries int64 }
		if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || st.Entries == 0 {
			t.Errorf("%s: cache stats: %d entries (%v, %s); want the run's pages", tc.name, st.Entries, err, res.Stderr)
		}
	}
}

// TestCLIRunNotCompleted checks that a run that does not complete still
// prints its JSON summary last and exits non-zero: a failed run (its output
// cannot be written) exits 1, an interrupted one (SIGINT) exits 130.
func TestCLIRunNotCompleted(t *testing.T) {
	requireCommands(t, "run")
	site := smallSite(200, testsite.Options{Seed: 22, Latency: 20 * time.Millisecond})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	dataDir := t.TempDir()

	// A JSONL path under a regular file cannot be created.
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	failing := writeJob(t, jobSpec{Name: "failing", Base: srv.URL, Dir: dir, OutDir: blocker})
	res := runCLI(t, dir, nil, "run", "--json", "--data-dir", dataDir, failing)
	if res.Code != 1 {
		t.Errorf("failing run: exit %d, want 1 (stderr %s)", res.Code, res.Stderr)
	}
	if m := runJSON(t, res); m["status"] != string(jobs.StatusFailed) {
		t.Errorf("failing run status %v, want failed", m["status"])
	}

	slow := writeJob(t, jobSpec{Name: "slow", Base: srv.URL, Dir: dir, Parallelism: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := cliCommand(ctx, dir, nil, "run", "--json", "--data-dir", dataDir, slow)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "the run to fetch 10 pages", func() bool { return site.Counts().Bodies >= 10 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	res = cliResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
	if res.Code != 130 {
		t.Errorf("interrupted run: exit %d, want 130 (stderr %s)", res.Code, res.Stderr)
	}
	if m := runJSON(t, res); m["status"] != string(jobs.StatusInterrupted) {
		t.Errorf("interrupted run status %v, want interrupted", m["status"])
	}
	if !strings.Contains(res.Stderr, "resume") {
		t.Errorf("interrupted run: stderr does not say how to resume: %s", res.Stderr)
	}
}

// TestCLIFlagsAfterFile runs `crawlcache run FILE --json`, the form the
// issue and the README document: flags after the file must work.
func TestCLIFlagsAfterFile(t *testing.T) {
	requireCommands(t, "run", "validate")
	site := smallSite(3, testsite.Options{Seed: 23})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "order", Base: srv.URL, Dir: dir})
	res := runCLI(t, dir, nil, "run", cfg, "--json", "--data-dir", t.TempDir())
	if res.Code != 0 {
		t.Fatalf("crawlcache run FILE --json --data-dir D: exit %d, stderr %q; want the run to complete", res.Code, res.Stderr)
	}
	if m := runJSON(t, res); m["status"] != "completed" {
		t.Errorf("status %v, want completed", m["status"])
	}
}

// TestCLIGlobalFlagsAfterCommand is the regression test for
// `crawlcache run --log-level debug FILE` being refused: global flags may
// follow the command and take effect there; --log-format json makes every
// log record on standard error one JSON object (the run summary that
// follows them is not a log record).
func TestCLIGlobalFlagsAfterCommand(t *testing.T) {
	requireCommands(t, "run")
	site := smallSite(3, testsite.Options{Seed: 29})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfg := writeJob(t, jobSpec{Name: "globals", Base: srv.URL, Dir: dir})
	levels := func(stderr string) map[string]int {
		got := map[string]int{}
		for _, line := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(line, "time=") {
				t.Errorf("text log record with --log-format json: %q", line)
			}
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil {
				got[fmt.Sprint(rec["level"])]++
			}
		}
		return got
	}
	// The harness sets CRAWLCACHE_LOG_LEVEL=warn: the flag after the
	// command must win.
	res := runCLI(t, dir, nil, "run", "--log-level", "info", "--log-format", "json", cfg, "--json", "--data-dir", t.TempDir())
	if res.Code != 0 {
		t.Fatalf("crawlcache run --log-level info --log-format json FILE: exit %d, stderr %q; want the run to complete", res.Code, res.Stderr)
	}
	if got := levels(res.Stderr); got["INFO"] == 0 {
		t.Errorf("no JSON INFO record with --log-level info --log-format json after the command:\n%s", res.Stderr)
	}
	env := []string{"CRAWLCACHE_LOG_LEVEL=info", "CRAWLCACHE_LOG_FORMAT=json"}
	res = runCLI(t, dir, env, "run", cfg, "--json", "--log-level=error", "--data-dir", t.TempDir())
	if res.Code != 0 {
		t.Fatalf("crawlcache run FILE --log-level=error: exit %d, stderr %q; want the run to complete", res.Code, res.Stderr)
	}
	if m := runJSON(t, res); m["status"] != "completed" {
		t.Errorf("status %v, want completed", m["status"])
	}
	if got := levels(res.Stderr); got["INFO"] != 0 {
		t.Errorf("INFO records with --log-level=error after the file: %v\n%s", got, res.Stderr)
	}
}
