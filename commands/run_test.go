package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/frontier"
	"crawlcache/jobs"
	"crawlcache/store"
	"crawlcache/testsite"
)

// runApp runs the crawlcache command line with args and returns its
// standard output and error.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := App()
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"crawlcache"}, args...))
	if testing.Verbose() {
		t.Logf("crawlcache %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out.String(), errOut.String())
	}
	return out.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// writeConfig writes a small job crawling base into dir and returns its path.
func writeConfig(t *testing.T, dir, name, base, extra string) string {
	t.Helper()
	yaml := fmt.Sprintf(`name: %s
seeds: [%s/]
rate: {per_host: 1000, burst: 10, parallelism: 4}
extract:
  item: article.product
  fields:
    title: {css: h2}
outputs:
  - mongodb: {collection: items}
  - jsonl: {path: %s}
%s`, name, base, filepath.Join(dir, name+".jsonl"), extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunJSONAndRunsCommands(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 12, Seed: 1, MinSize: 2 << 10, MaxSize: 4 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, "cmdjob", srv.URL, "")

	out, err := runApp(t, "run", "--json", "--data-dir", data, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lastLine(out)), &got); err != nil {
		t.Fatalf("last line of run --json %q: %v", lastLine(out), err)
	}
	for _, k := range []string{"run_id", "job", "status", "pages", "hits", "misses", "revalidated", "stale", "errors", "items", "network_bytes", "saved_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("run --json has no %q: %v", k, got)
		}
	}
	if got["status"] != "completed" || got["job"] != "cmdjob" || got["pages"].(float64) == 0 {
		t.Errorf("run --json = %v, want a completed cmdjob run with pages", got)
	}
	runID := got["run_id"].(string)

	// The second run revalidates: every page is a 304.
	out, err = runApp(t, "run", "--json", "--revalidate", "--data-dir", data, cfg)
	if err != nil {
		t.Fatalf("run --revalidate: %v", err)
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lastLine(out)), &second); err != nil {
		t.Fatal(err)
	}
	if second["revalidated"] != got["pages"] || second["misses"].(float64) != 0 {
		t.Errorf("run --revalidate: revalidated %v misses %v, want %v and 0", second["revalidated"], second["misses"], got["pages"])
	}

	// A refused run still ends stdout with one JSON object.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: cmdjob\nseeds: [http://127.0.0.1:1/]\nextract: {fields: {url: {css: a}}}\noutputs: [{jsonl: {path: x.jsonl}}]\n"), 0o644); err == nil {
		out, err = runApp(t, "run", "--json", "--data-dir", data, filepath.Join(dir, "bad.yaml"))
		var refused map[string]any
		if err == nil || json.Unmarshal([]byte(lastLine(out)), &refused) != nil || refused["status"] != "not_started" {
			t.Errorf("refused run --json: err %v, last line %q; want an error and status not_started", err, lastLine(out))
		}
	}

	out, err = runApp(t, "runs", "ls", "--json", "--data-dir", data)
	if err != nil {
		t.Fatalf("runs ls: %v", err)
	}
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, runID) {
		t.Errorf("runs ls --json printed %d lines, want 2 with %s:\n%s", n, runID, out)
	}
	out, err = runApp(t, "runs", "show", "--data-dir", data, runID)
	if err != nil {
		t.Fatalf("runs show: %v", err)
	}
	for _, want := range []string{"cmdjob", "WORKER", "completed", "revalidated (304)"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runApp(t, "runs", "show", "--data-dir", data, "nope"); err == nil || !strings.Contains(err.Error(), "run not found") {
		t.Errorf("runs show of an unknown id: err = %v, want run not found", err)
	}
}

func TestScheduleOnceServesAndRuns(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 5, Seed: 1, MinSize: 2 << 10, MaxSize: 4 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cfgs := filepath.Join(dir, "configs")
	if err := os.Mkdir(cfgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfgs, "sched", srv.URL, "schedule: '@every 6h'\n")
	data := filepath.Join(dir, "data")
	if _, err := runApp(t, "schedule", "--once", "--metrics-addr", "", "--configs", cfgs, "--data-dir", data); err != nil {
		t.Fatalf("schedule --once: %v", err)
	}
	if site.Counts().Bodies == 0 {
		t.Errorf("schedule --once fetched nothing from the site")
	}
	out, err := runApp(t, "runs", "ls", "--json", "--job", "sched", "--data-dir", data)
	if err != nil || !strings.Contains(out, `"status":"completed"`) {
		t.Errorf("runs ls after schedule --once: err %v, out %s; want one completed run", err, out)
	}
}

func TestDemoTwoPasses(t *testing.T) {
	example, err := os.ReadFile("../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The pipeline reserves "url" for item metadata; until the shipped
	// example renames its field, the demo test uses "link".
	example = bytes.Replace(example, []byte("\n    url: {css: a, attr: href}"), []byte("\n    link: {css: a, attr: href}"), 1)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "example.yaml")
	if err := os.WriteFile(cfg, example, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // example.yaml writes out/example.jsonl and .csv
	out, err := runApp(t, "demo", "--pages", "8", "--latency", "0", "--listen", "127.0.0.1:0", "--config", cfg, "--data-dir", "data")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"pass 1", "pass 2", "every page came back as a 304", "mongosh", "db.items.find"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestDemoPortTaken(t *testing.T) {
	srv := testsite.New(testsite.Options{Pages: 1}).Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cfg, _ := filepath.Abs("../configs/example.yaml")
	_, err := runApp(t, "demo", "--listen", addr, "--config", cfg, "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("demo on a taken port: err = %v, want 'already in use'", err)
	}
}

// TestRunLease: run --lease sets how long this process's claims last (and so
// how soon another worker takes over its URLs if it is killed).
func TestRunLease(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 6, Seed: 2, MinSize: 2 << 10, MaxSize: 4 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, "leasejob", srv.URL, "")
	if _, err := runApp(t, "run", "--lease", "7s", "--data-dir", data, cfg); err != nil {
		t.Fatalf("run --lease 7s: %v", err)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{DataDir: data, Logger: slog.New(slog.DiscardHandler), Migrations: migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var claims []struct {
		At    time.Time `bson:"at"`
		Until time.Time `bson:"lease_until"`
	}
	if err := s.Collection(jobs.Database, frontier.LogCollection).All(ctx, bson.D{{Key: "state", Value: "leased"}}, store.FindOptions{}, &claims); err != nil {
		t.Fatal(err)
	}
	if len(claims) == 0 {
		t.Fatal("no claim recorded")
	}
	for _, c := range claims {
		if got := c.Until.Sub(c.At); got != 7*time.Second {
			t.Fatalf("lease of a claim = %s, want 7s", got)
		}
	}
}
