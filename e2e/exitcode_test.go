package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIExitStatus: run's exit status is what a scheduler acts on. A dead
// link is a result (exit 0); a run whose only seed is refused, or whose
// failures exceed max_error_ratio, completes but exits 3, and --json
// breaks the errors down.
func TestCLIExitStatus(t *testing.T) {
	requireCommands(t, "run")
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, `<h1>home</h1><a href="/a">a</a><a href="/b">b</a><a href="/dead">d</a><a href="/down">x</a>`)
		case "/dead":
			http.NotFound(w, r)
		case "/down":
			http.Error(w, "down", http.StatusBadGateway)
		default:
			fmt.Fprintf(w, "<h1>%s</h1>", r.URL.Path)
		}
	}))
	t.Cleanup(origin.Close)
	cases := []struct {
		name     string
		seed     string
		extra    string
		wantCode int
		wantKind string // a key of errors_by_kind, empty for none
	}{
		{"a 404 is a result, one 502 in five is within max_error_ratio 0.25", origin.URL + "/", "max_error_ratio: 0.25", 0, "http_502"},
		{"one 502 in five is over max_error_ratio 0.1", origin.URL + "/", "", 3, "http_502"},
		{"only seed refused", "http://127.0.0.1:1/", "", 3, "network"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, dataDir := t.TempDir(), t.TempDir()
			yaml := fmt.Sprintf("name: exit%d\nseeds: [%s]\nallowed_domains: [127.0.0.1]\nretry: {max: 0}\nrate: {per_host: 1000, burst: 10}\n"+
				"extract: {fields: {title: {css: h1}}}\noutputs: [{jsonl: {path: '%s'}}]\n%s\n", i, tc.seed, filepath.Join(dir, "out.jsonl"), tc.extra)
			job := filepath.Join(dir, "job.yaml")
			if err := os.WriteFile(job, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			res := runCLI(t, dir, nil, "run", "--json", "--data-dir", dataDir, job)
			if res.Code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", res.Code, tc.wantCode, res.Stderr)
			}
			var sum struct {
				Status       string           `json:"status"`
				Error        string           `json:"error"`
				ErrorsByKind map[string]int64 `json:"errors_by_kind"`
				Statuses     map[string]int64 `json:"statuses"`
			}
			if err := json.Unmarshal([]byte(res.lastLine()), &sum); err != nil {
				t.Fatalf("summary %q: %v", res.lastLine(), err)
			}
			if sum.Status != "completed" {
				t.Errorf("status %q, want completed", sum.Status)
			}
			if tc.wantKind != "" && sum.ErrorsByKind[tc.wantKind] != 1 {
				t.Errorf("errors_by_kind = %v, want %s: 1", sum.ErrorsByKind, tc.wantKind)
			}
			if (tc.wantCode == 3) != strings.Contains(sum.Error, "too many errors") {
				t.Errorf("error %q; want \"too many errors\" exactly when the exit is 3", sum.Error)
			}
			if tc.wantCode == 3 && !strings.Contains(res.Stderr, "completed with too many errors") {
				t.Errorf("stderr does not say why the exit is 3:\n%s", res.Stderr)
			}
		})
	}
}
