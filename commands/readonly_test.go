package commands

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"crawlcache/store/storetest"
	"crawlcache/testsite"
)

// TestReadOnlyCommandsOnReadOnlyDataDir: the commands that only read work
// on a data directory that cannot be written (issue: they all refused it).
func TestReadOnlyCommandsOnReadOnlyDataDir(t *testing.T) {
	site := testsite.New(testsite.Options{Pages: 3, Seed: 1, MinSize: 1 << 10, MaxSize: 2 << 10})
	srv := site.Start()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	job := writeConfig(t, dir, "rojob", srv.URL, "")
	data := filepath.Join(dir, "data")
	out, err := runApp(t, "run", "--json", "--data-dir", data, job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	runID := between(lastLine(out), `"run_id":"`, `"`)
	if runID == "" {
		t.Fatalf("no run_id in the summary %q", lastLine(out))
	}
	ro := storetest.ReadOnlyDir(t, data)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cache stats", []string{"cache", "stats"}, "entries"},
		{"cache ls", []string{"cache", "ls"}, srv.URL},
		{"cache show", []string{"cache", "show", "--data-dir", ro, srv.URL + "/"}, "200"},
		{"cache ttl show", []string{"cache", "ttl", "show"}, "ttl"},
		{"runs ls", []string{"runs", "ls"}, runID},
		{"runs show", []string{"runs", "show", "--data-dir", ro, runID}, "completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--data-dir") {
				args = append(args, "--data-dir", ro)
			}
			out, err := runApp(t, args...)
			if err != nil {
				t.Fatalf("crawlcache %s on a read-only data directory: %v", strings.Join(args, " "), err)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("crawlcache %s: output %q, want it to contain %q", strings.Join(args, " "), out, tc.want)
			}
		})
	}
}

// TestReadOnlyCommandsOnMissingDataDir: a command that only reads names a
// data directory that does not exist and creates nothing (issue: cache
// stats made an empty store and reported 0 entries).
func TestReadOnlyCommandsOnMissingDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "crawlcache-data")
	for _, args := range [][]string{{"cache", "stats"}, {"cache", "ls"}, {"runs", "ls"}, {"cache", "ttl", "show"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, err := runApp(t, append(args, "--data-dir", missing)...)
			if err == nil || !strings.Contains(err.Error(), "data directory does not exist: "+missing) {
				t.Errorf("crawlcache %s on a missing data directory: err = %v, want it to say the directory does not exist", strings.Join(args, " "), err)
			}
			if _, serr := os.Stat(missing); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("crawlcache %s created %s (stat: %v)", strings.Join(args, " "), missing, serr)
			}
		})
	}
}

// between returns the text of s after the first open and before the next close.
func between(s, open, close string) string {
	_, rest, _ := strings.Cut(s, open)
	v, _, _ := strings.Cut(rest, close)
	return v
}
