// Package e2e holds crawlcache's end-to-end reliability suite: whole crawls
// through the jobs runner and the real command line, against testsite
// origins on loopback and the real embedded store, with origin faults,
// corrupted cache documents, a store that goes away mid-run, and kill -9 at
// random points followed by resume.
//
// The command-line tests re-execute this test binary as `crawlcache` (see
// TestMain), so `go test ./e2e/` needs no separate build. Long variants run
// only with CRAWLCACHE_SOAK=1.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/commands"
	"crawlcache/jobs"
	"crawlcache/store"
	"crawlcache/testsite"
)

// cliEnv makes the test binary behave as the crawlcache command (main.go).
const cliEnv = "CRAWLCACHE_E2E_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		// The same wiring as main.go.
		ctx, stop := commands.SignalContext(context.Background(), os.Exit)
		err := commands.Run(ctx, append([]string{"crawlcache"}, os.Args[1:]...))
		stop()
		os.Exit(commands.ExitCode(err, func(msg string) { fmt.Fprintln(os.Stderr, "crawlcache:", msg) }))
	}
	os.Exit(m.Run())
}

// soak reports whether the long variants were asked for.
func soak() bool { return os.Getenv("CRAWLCACHE_SOAK") == "1" }

// cliCommand returns the crawlcache command line args as a child process
// with a clean environment (no CRAWLCACHE_* from the caller) plus env.
func cliCommand(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRAWLCACHE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, cliEnv+"=1", "CRAWLCACHE_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// cliResult is what one crawlcache invocation printed and returned.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// lastLine returns the last non-empty line of the standard output.
func (r cliResult) lastLine() string {
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	return lines[len(lines)-1]
}

// runCLI runs crawlcache args in dir and waits for it (at most 2 minutes).
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := cliCommand(ctx, dir, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("crawlcache %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// requireCommands skips the test when the CLI does not register a command
// it needs yet (commands are being added in parallel).
func requireCommands(t *testing.T, names ...string) {
	t.Helper()
	app := commands.App()
	for _, n := range names {
		if app.Command(n) == nil {
			t.Skipf("crawlcache has no %q command registered in commands.App() yet", n)
		}
	}
}

// jobSpec is a job config for the tests; zero fields get the defaults of
// jobTemplate.
type jobSpec struct {
	Name, Base, Dir string
	OutDir          string // of the JSONL output; default Dir
	Timeout         string // default 2s
	MaxBodySize     string // default 10MiB
	RetryMax        int    // default 2
	Parallelism     int    // default 4
	Extra           string // more top-level YAML
}

var jobTemplate = template.Must(template.New("job").Parse(`name: {{.Name}}
seeds: [{{.Base}}/]
timeout: {{.Timeout}}
max_body_size: {{.MaxBodySize}}
rate: {per_host: 1000, burst: 10, parallelism: {{.Parallelism}}}
retry: {max: {{.RetryMax}}, backoff: 10ms}
extract:
  fields:
    title: {css: h1}
    price: {css: '.product-detail .price'}
outputs:
  - mongodb: {collection: items}
  - jsonl: {path: {{.OutDir}}/{{.Name}}.jsonl}
  - csv: {path: {{.OutDir}}/{{.Name}}.csv}
{{.Extra}}`))

// writeJob writes the job config of spec to spec.Dir/<name>.yaml and
// returns its path.
func writeJob(t *testing.T, spec jobSpec) string {
	t.Helper()
	if spec.OutDir == "" {
		spec.OutDir = spec.Dir
	}
	if spec.Timeout == "" {
		spec.Timeout = "2s"
	}
	if spec.MaxBodySize == "" {
		spec.MaxBodySize = "10MiB"
	}
	if spec.RetryMax == 0 {
		spec.RetryMax = 2
	}
	if spec.Parallelism == 0 {
		spec.Parallelism = 4
	}
	var b bytes.Buffer
	if err := jobTemplate.Execute(&b, spec); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(spec.Dir, spec.Name+".yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// smallSite is a site of n product pages of 2–6 KB.
func smallSite(n int, opts testsite.Options) *testsite.Site {
	opts.Pages, opts.MinSize, opts.MaxSize = n, 2<<10, 6<<10
	if opts.Seed == 0 {
		opts.Seed = 7
	}
	return testsite.New(opts)
}

// poll calls cond every 10 ms until it is true, failing the test with what
// after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// itemDoc is the part of a stored or JSONL item the tests check.
type itemDoc struct {
	ID    string `bson:"_id" json:"_id"`
	RunID string `bson:"run_id" json:"run_id"`
	URL   string `bson:"url" json:"url"`
	Title any    `bson:"title" json:"title"`
}

// mongoItems returns the items of run in crawlcache.items.
func mongoItems(t *testing.T, s *store.Store, runID string) []itemDoc {
	t.Helper()
	ctx := context.Background()
	var docs []itemDoc
	if err := s.Collection(jobs.Database, "items").All(ctx, bson.D{{Key: "run_id", Value: runID}}, store.FindOptions{}, &docs); err != nil {
		t.Fatalf("read items: %v", err)
	}
	return docs
}

// jsonlItems reads a JSONL output file.
func jsonlItems(t *testing.T, path string) []itemDoc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("jsonl output: %v", err)
	}
	defer f.Close()
	var out []itemDoc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var it itemDoc
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			t.Fatalf("jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, it)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}

// csvItems reads a CSV output file (header _id, run_id, job, url, ...,
// then the fields).
func csvItems(t *testing.T, path string) []itemDoc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("csv output: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s is empty, want a header", path)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	var out []itemDoc
	for _, r := range rows[1:] {
		out = append(out, itemDoc{ID: r[col["_id"]], RunID: r[col["run_id"]], URL: r[col["url"]], Title: r[col["title"]]})
	}
	return out
}

// checkItemsOnce asserts, of the items of one run (what says where they
// came from), that no item id appears twice, that no page has more than one
// item (the test jobs extract one item per page), and that every product
// page has exactly one, with its title.
func checkItemsOnce(t *testing.T, what string, items []itemDoc, site *testsite.Site, base string) {
	t.Helper()
	ids := map[string]int{}
	byURL := map[string][]itemDoc{}
	for _, it := range items {
		ids[it.ID]++
		byURL[it.URL] = append(byURL[it.URL], it)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s: item %s stored %d times, want once", what, id, n)
		}
	}
	for u, its := range byURL {
		if len(its) > 1 {
			t.Errorf("%s: %d items for %s, want at most 1", what, len(its), u)
		}
	}
	for _, p := range site.Products() {
		u := base + p.Path
		got := byURL[u]
		if len(got) != 1 {
			t.Errorf("%s: %d items for %s, want 1", what, len(got), u)
			continue
		}
		if got[0].Title != p.Title {
			t.Errorf("%s: item for %s has title %v, want %q", what, u, got[0].Title, p.Title)
		}
	}
}
