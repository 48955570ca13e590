package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestExtractCommand runs `crawlcache extract` on a page whose item and
// links hold terminal control characters: the text output shows items,
// followed and skipped links with the rule, and nothing a terminal would
// obey; --json is one object with the same content; a page robots.txt
// disallows exits 1, bad arguments 2.
func TestExtractCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<html><body><article class=product><h2>Lamp \x1b]0;pwned\x07 \u009b31m</h2></article>"+
			`<a href="/products/1">p</a><a href="/skip/2">s</a><a href="/private/3">x</a><a href="javascript:alert('`+"\x1b[2J"+`')">j</a></body></html>`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, "ex", srv.URL, "exclude: ['/skip/']\n")

	out, err := runApp(t, "extract", "--data-dir", data, cfg, strings.TrimPrefix(srv.URL, "http://")+"/")
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	for _, want := range []string{
		"status   200, downloaded now, and cached; depth 0",
		`items    1`,
		`{"index":0,"title":"Lamp \u001b]0;pwned\u0007 \u009b31m"}`,
		"follow   1 links\n  " + srv.URL + "/products/1\n",
		"exclude  " + srv.URL + "/skip/2  (/skip/)",
		"robots   " + srv.URL + "/private/3",
		"scheme   javascript:alert('%1B[2J')",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("extract output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07\u009b") {
		t.Errorf("extract output holds terminal control characters: %q", out)
	}

	out, err = runApp(t, "extract", "--json", "--data-dir", data, cfg, srv.URL+"/")
	if err != nil {
		t.Fatalf("extract --json: %v", err)
	}
	var got struct {
		Served string           `json:"served"`
		Items  []map[string]any `json:"items"`
		Follow []struct{ URL string }
		Skip   []struct{ URL, Reason, Rule string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("extract --json output %q: %v", out, err)
	}
	if got.Served != "hit" || len(got.Items) != 1 || got.Items[0]["title"] != "Lamp \x1b]0;pwned\x07 \u009b31m" || len(got.Follow) != 1 || len(got.Skip) != 3 {
		t.Errorf("extract --json = %+v; want a hit, the item's title as on the page, 1 link followed, 3 skipped", got)
	}

	var ec cli.ExitCoder
	if _, err := runApp(t, "extract", "--data-dir", data, cfg, srv.URL+"/private/3"); !errors.As(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(err.Error(), "robots.txt") {
		t.Errorf("extract of a page robots.txt disallows: err %v, want exit 1 naming robots.txt", err)
	}
	if _, err := runApp(t, "extract", "--data-dir", data, cfg); !errors.As(err, &ec) || ec.ExitCode() != 2 {
		t.Errorf("extract without a URL: err %v, want exit 2", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ex.jsonl")); !os.IsNotExist(err) {
		t.Errorf("extract wrote the job's output file (stat err %v); it must write nothing but the cache", err)
	}
}
