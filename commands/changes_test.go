package commands

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"crawlcache/testsite"
)

// runs changes lists a run's pages by kind, as a table or JSON lines; run
// --json carries the change counts; a bad --kind exits 2.
func TestRunsChanges(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 12, Seed: 4, MinSize: 2 << 10, MaxSize: 4 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, "chgjob", srv.URL, "")
	if _, err := runApp(t, "run", "--data-dir", data, cfg); err != nil {
		t.Fatal(err)
	}
	changed := site.Change(0.25)
	out, err := runApp(t, "run", "--json", "--revalidate", "--data-dir", data, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lastLine(out)), &sum); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"changed": float64(len(changed)), "new": 0, "gone": 0, "parsed": float64(len(changed))} {
		if sum[k] != want {
			t.Errorf("run --json %s = %v, want %v", k, sum[k], want)
		}
	}
	runID := sum["run_id"].(string)

	out, err = runApp(t, "runs", "changes", "--kind", "changed", "--data-dir", data, runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range changed {
		if !strings.Contains(out, srv.URL+p+"\n") {
			t.Errorf("runs changes --kind changed lacks %s:\n%s", p, out)
		}
	}
	if n := strings.Count(out, "\n"); n != len(changed)+1 {
		t.Errorf("runs changes --kind changed printed %d lines, want a header and %d pages:\n%s", n, len(changed), out)
	}
	out, err = runApp(t, "runs", "changes", "--json", "--data-dir", data, runID)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if float64(len(lines)) != sum["pages"].(float64) {
		t.Errorf("runs changes --json printed %d records for %v pages", len(lines), sum["pages"])
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["run_id"] != runID || rec["kind"] == nil {
		t.Errorf("runs changes --json line %q: %v", lines[0], err)
	}
	_, err = runApp(t, "runs", "changes", "--kind", "moved", "--data-dir", data, runID)
	if ec, ok := err.(cli.ExitCoder); !ok || ec.ExitCode() != 2 {
		t.Errorf("--kind moved: err %v, want exit 2", err)
	}
}
