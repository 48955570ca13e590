package commands

import (
	"path/filepath"
	"strings"
	"testing"

	"crawlcache/store/storetest"
)

// runCode runs the command line and returns its output (stdout and the
// error message, as main prints it) and exit code.
func runCode(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := runApp(t, args...)
	var msg string
	code := ExitCode(err, func(s string) { msg = s })
	return out + msg, code
}

// TestDamagedStore: a damaged file is named, with the way out, by every
// command that meets it (issue: "database disk image is malformed (11)"
// and nothing else); db check finds it, db recover copies the rest into a
// new directory that works, db compact rewrites it.
func TestDamagedStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		page int      // of http_cache.sqlite to overwrite
		args []string // a command that meets the damage
		lost bool     // whether recover loses documents
	}{
		{"damaged responses page: cache stats", 100, []string{"cache", "stats"}, true},
		// FerretDB reads its catalogue through the damaged index at
		// start-up; recover reads the table itself and loses nothing.
		{"damaged catalogue index page: runs ls fails at start", 2, []string{"runs", "ls"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
			file := filepath.Join(dir, "http_cache.sqlite")
			storetest.CorruptPage(t, file, tc.page)
			out, code := runCode(t, append(tc.args, "--data-dir", dir)...)
			if code == 0 || !strings.Contains(out, file+" is damaged") || !strings.Contains(out, "crawlcache db recover --data-dir "+dir+" --out") {
				t.Errorf("crawlcache %s: exit %d, output %q; want a failure naming %s and db recover", strings.Join(tc.args, " "), code, out, file)
			}

			out, code = runCode(t, "db", "check", "--data-dir", dir)
			if code != 1 || !strings.Contains(out, "http_cache.sqlite") || !strings.Contains(out, "DAMAGED") || strings.Count(out, "DAMAGED") != 1 {
				t.Errorf("db check: exit %d, output %q; want exit 1 and http_cache.sqlite alone DAMAGED", code, out)
			}

			rec := filepath.Join(t.TempDir(), "recovered")
			out, code = runCode(t, "db", "recover", "--data-dir", dir, "--out", rec)
			if wantCode := map[bool]int{true: 1, false: 0}[tc.lost]; code != wantCode || !strings.Contains(out, "http_cache.responses:") || strings.Contains(out, "LOST") != tc.lost {
				t.Errorf("db recover: exit %d, output %q; want exit %d, LOST reported %v", code, out, wantCode, tc.lost)
			}
			if out, code = runCode(t, "db", "check", "--data-dir", rec); code != 0 {
				t.Errorf("db check of the recovered directory: exit %d, output %q; want 0", code, out)
			}
			if out, code = runCode(t, "runs", "ls", "--data-dir", rec); code != 0 || !strings.Contains(out, "completed") {
				t.Errorf("runs ls on the recovered directory: exit %d, output %q; want the fixture's runs", code, out)
			}
			if out, code = runCode(t, "db", "compact", "--data-dir", rec); code != 0 || !strings.Contains(out, "compacted") {
				t.Errorf("db compact: exit %d, output %q; want 0", code, out)
			}
			if out, code = runCode(t, "cache", "stats", "--data-dir", rec); code != 0 || !strings.Contains(out, "http_cache.sqlite") {
				t.Errorf("cache stats of the recovered directory: exit %d, output %q; want the file sizes", code, out)
			}
		})
	}
}
