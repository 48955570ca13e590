package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "name: good\nseeds: ['http://a.example/', 'http://b.example/']\nallowed_domains: [a.example, b.example]\nschedule: '@every 6h'\n")
	bad := write("bad.yaml", "name: bad\nseeds: ['http://a.example/']\nrate:\n  per_host: fast\nschedule: nope\n")
	dup := write("dup.yaml", "name: good\nseeds: ['http://c.example/']\n")

	tests := []struct {
		name     string
		args     []string
		wantOut  []string
		wantCode int
	}{
		{"valid file", []string{good}, []string{
			"ok  " + good + ` (job "good", 2 seeds, schedule "@every 6h")`,
		}, 0},
		{"every mistake and the valid file", []string{bad, good}, []string{
			bad + `:4: rate.per_host: must be a number > 0, got "fast"`,
			bad + `:5: schedule: invalid cron expression "nope": expected exactly 5 fields, found 1: [nope] (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')`,
			"ok  " + good + ` (job "good", 2 seeds, schedule "@every 6h")`,
		}, 1},
		{"duplicate job names", []string{good, dup}, []string{
			"ok  " + good + ` (job "good", 2 seeds, schedule "@every 6h")`,
			dup + `:1: name: duplicate job name "good" (also in ` + good + `)`,
		}, 1},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, []string{
			filepath.Join(dir, "nope.yaml") + ": cannot read: no such file or directory",
		}, 1},
		{"shipped configs directory", []string{"../configs"}, []string{
			`ok  ../configs/books.yaml (job "books", 1 seed)`,
			`ok  ../configs/example.yaml (job "example", 1 seed, schedule "@every 6h")`,
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			app := App()
			app.Writer, app.ErrWriter = &out, &out
			err := app.Run(append([]string{"crawlcache", "validate"}, tt.args...))
			code := ExitCode(err, func(string) {})
			if code != tt.wantCode {
				t.Errorf("exit code %d (%v), want %d", code, err, tt.wantCode)
			}
			if got, want := strings.TrimSpace(out.String()), strings.Join(tt.wantOut, "\n"); got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
