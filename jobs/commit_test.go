package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// outputIDs reads the item IDs of the run's three outputs: the mongodb
// collection "items", the JSONL file and the CSV file, each ID with how
// many times it is there.
func outputIDs(t *testing.T, s *store.Store, runID, jsonlPath, csvPath string) (mongo, jsonl, csvIDs map[string]int) {
	t.Helper()
	ctx := context.Background()
	mongo, jsonl, csvIDs = map[string]int{}, map[string]int{}, map[string]int{}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := s.Collection(Database, "items").All(ctx, bson.D{{Key: "run_id", Value: runID}}, store.FindOptions{}, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		mongo[d.ID]++
	}
	b, err := os.ReadFile(jsonlPath)
	if err != nil {
		t.Fatalf("jsonl output: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var it struct {
			ID    string `json:"_id"`
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil || it.RunID != runID {
			t.Fatalf("jsonl line %q: %v, run %q (want %s)", sc.Text(), err, it.RunID, runID)
		}
		jsonl[it.ID]++
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatalf("csv output: %v", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("csv output: %d records, %v", len(recs), err)
	}
	for _, rec := range recs[1:] {
		csvIDs[rec[0]]++
	}
	return mongo, jsonl, csvIDs
}

// checkOutputs asserts that every output of run runID holds the same want
// items, each exactly once.
func checkOutputs(t *testing.T, s *store.Store, runID, jsonlPath, csvPath string, want int) {
	t.Helper()
	mongo, jsonl, csvIDs := outputIDs(t, s, runID, jsonlPath, csvPath)
	for name, got := range map[string]map[string]int{"mongodb": mongo, "jsonl": jsonl, "csv": csvIDs} {
		if len(got) != want {
			t.Errorf("%s output has %d distinct items, want %d", name, len(got), want)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s output has item %s %d times, want once", name, id, n)
			}
			if mongo[id] != 1 {
				t.Errorf("%s output has item %s, which the mongodb output lacks", name, id)
			}
		}
	}
}

// TestResumeKeepsCommittedJSONL is the regression test for `resume`
// replacing a committed JSONL output with an empty file: the CSV output's
// path is a directory, so the run fails at the CSV rename after the JSONL
// rename; once the directory is removed, resume must finish the commit
// and keep every item of the JSONL file, without fetching anything.
func TestResumeKeepsCommittedJSONL(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(10, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "kd.csv")
	if err := os.Mkdir(csvPath, 0o755); err != nil {
		t.Fatal(err)
	}
	job := writeJob(t, dir, "kd", srv.URL, "  - csv: {path: "+csvPath+"}\n")
	jsonlPath := filepath.Join(dir, "kd.jsonl")
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}

	out, err := r.Run(ctx, job, StartOptions{})
	if err == nil || out == nil || out.Run.Status != StatusFailed {
		t.Fatalf("run with a directory at the csv path: outcome %+v, err %v; want failed with an error", out, err)
	}
	if _, err := os.Stat(jsonlPath); err != nil {
		t.Fatalf("the jsonl output was not committed before the csv rename failed: %v", err)
	}
	items := out.Run.Counters.Items
	if items == 0 {
		t.Fatal("the run extracted no item")
	}
	if err := os.Remove(csvPath); err != nil {
		t.Fatal(err)
	}
	bodies := site.Counts().Bodies

	res, err := r.Resume(ctx, out.Run.ID, job)
	if err != nil || res.Run.Status != StatusCompleted {
		t.Fatalf("resume: status %v, err %v; want completed", res, err)
	}
	checkOutputs(t, s, out.Run.ID, jsonlPath, csvPath, int(items))
	if got := site.Counts().Bodies; got != bodies {
		t.Errorf("the resume fetched %d pages from the origin, want none (only the commit was left)", got-bodies)
	}
}

// commitSteps are the steps of the end of a run with outputs mongodb
// "items", JSONL jsonlPath and CSV csvPath, in order (see Runner.fault).
func commitSteps(jsonlPath, csvPath string) []string {
	steps := []string{"commit-begin", "commit-started"}
	for _, key := range []string{OutputKey("mongodb", "items"), OutputKey("jsonl", jsonlPath), OutputKey("csv", csvPath)} {
		steps = append(steps, "before "+key, "after "+key, "recorded "+key)
	}
	return append(steps, "finish-before", "finish-after")
}

// TestCommitCrashAtEveryStep stops a child process (exit at once, as
// kill -9) at every step of committing a run's outputs and recording its
// end, then resumes the run in this process: every output must hold every
// item exactly once, and no committed output may be replaced.
func TestCommitCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(8, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}

	// The reference: the same crawl without a fault.
	refDir := t.TempDir()
	ref, err := r.Run(ctx, writeJob(t, refDir, "ref", srv.URL, "  - csv: {path: "+filepath.Join(refDir, "ref.csv")+"}\n"), StartOptions{})
	if err != nil {
		t.Fatalf("reference run: %v", err)
	}
	want := int(ref.Run.Counters.Items)
	checkOutputs(t, s, ref.Run.ID, filepath.Join(refDir, "ref.jsonl"), filepath.Join(refDir, "ref.csv"), want)

	probe := commitSteps("J", "C")
	for i := range probe {
		name := probe[i]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			jobName := "crash" + string(rune('a'+i))
			jsonlPath, csvPath := filepath.Join(dir, jobName+".jsonl"), filepath.Join(dir, jobName+".csv")
			job := writeJob(t, dir, jobName, srv.URL, "  - csv: {path: "+csvPath+"}\n")
			step := commitSteps(jsonlPath, csvPath)[i]

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", helperStoreEnv+"="+s.URI, helperConfigEnv+"="+job.Source, helperFaultEnv+"="+step)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != helperFaultExit {
				t.Fatalf("child did not stop at %q: %v\n%s", step, err, stderr.String())
			}
			last, err := NewRuns(s, nil).Last(ctx, jobName)
			if err != nil || last == nil {
				t.Fatalf("run record: %v, %v", last, err)
			}
			if last.Status != StatusCompleted {
				res, err := r.Resume(ctx, last.ID, job)
				if err != nil || res.Run.Status != StatusCompleted {
					t.Fatalf("resume after a stop at %q: %+v, %v; want completed", step, res, err)
				}
			} else if !slices.Contains([]string{"finish-after"}, name) {
				t.Errorf("run completed although the child stopped at %q, before recording it", step)
			}
			checkOutputs(t, s, last.ID, jsonlPath, csvPath, want)
		})
	}
}

// TestRunRecordsOfTheLastRelease: run records written by the previous
// release (no commit state, no breakdown, no robots or retries counters)
// read back with those empty, and summarise.
func TestRunRecordsOfTheLastRelease(t *testing.T) {
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	list, err := NewRuns(s, nil).List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d runs in the fixture, want 2", len(list))
	}
	for _, r := range list {
		if r.Status != StatusCompleted || r.Commit != nil || r.Breakdown.ErrorKinds != nil || r.Breakdown.Statuses != nil ||
			r.Counters.Robots != 0 || r.Counters.Retries != 0 || r.Counters.Pages == 0 {
			t.Errorf("run %s read back as %+v", r.ID, r)
		}
		var b bytes.Buffer
		WriteSummary(&b, r)
		if !bytes.Contains(b.Bytes(), []byte("robots  0 blocked")) {
			t.Errorf("summary of %s:\n%s", r.ID, b.String())
		}
	}
}
