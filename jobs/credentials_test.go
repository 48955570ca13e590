package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"crawlcache/store/storetest"
)

// tokenOrigin is a site of three pages whose every item names the token
// the request carried, and which records the tokens it saw.
type tokenOrigin struct {
	mu   sync.Mutex
	seen map[string]int // token → page requests
}

func (o *tokenOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if r.URL.Path == "/robots.txt" {
		http.NotFound(w, r)
		return
	}
	o.mu.Lock()
	o.seen[tok]++
	o.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<html><body><a href="/p1">1</a> <a href="/p2">2</a>
<article class="product"><h2>%s for %s</h2><span class="price">1</span></article></body></html>`, r.URL.Path, tok)
}

func (o *tokenOrigin) requests(tok string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[tok]
}

// titles reads the title of every item in a JSONL output.
func titles(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var it struct {
			Title string `json:"title"`
		}
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			t.Fatal(err)
		}
		out = append(out, it.Title)
	}
	slices.Sort(out)
	return out
}

// TestJobsWithDifferentTokensStayApart is the second report: two
// jobs with different Authorization tokens (${TOKEN} from the
// environment) on one data directory. The second job's pages come from
// the origin with its own token, its outputs hold only its own pages, and
// each job's next run is served from its own entries.
func TestJobsWithDifferentTokensStayApart(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	o := &tokenOrigin{seen: map[string]int{}}
	base := testsiteServer(t, o)
	dir := t.TempDir()
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	const headers = "headers:\n  Authorization: 'Bearer ${TOKEN}'\n"

	t.Setenv("TOKEN", "alpha")
	alpha := writeJob(t, dir, "alpha", base, headers)
	t.Setenv("TOKEN", "beta")
	beta := writeJob(t, dir, "beta", base, headers)

	for _, job := range []struct {
		name string
		run  func() error
	}{{"alpha", func() error { _, err := r.Run(ctx, alpha, StartOptions{}); return err }},
		{"beta", func() error { _, err := r.Run(ctx, beta, StartOptions{}); return err }}} {
		if err := job.run(); err != nil {
			t.Fatalf("run %s: %v", job.name, err)
		}
	}
	want := func(tok string) []string {
		return []string{"/ for " + tok, "/p1 for " + tok, "/p2 for " + tok}
	}
	for _, tok := range []string{"alpha", "beta"} {
		if got := titles(t, filepath.Join(dir, tok+".jsonl")); !slices.Equal(got, want(tok)) {
			t.Errorf("job %s items = %q, want %q", tok, got, want(tok))
		}
		if n := o.requests(tok); n != 3 {
			t.Errorf("origin saw token %s on %d page requests, want 3", tok, n)
		}
	}

	// Each job's second run is served from its own entries.
	res, err := r.Run(ctx, beta, StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Run.Counters; c.Hits != 3 || c.Misses != 0 || o.requests("beta") != 3 {
		t.Errorf("beta's second run: hits/misses %d/%d, origin requests %d; want 3/0 and no new request", c.Hits, c.Misses, o.requests("beta"))
	}
}

// TestJobCredentialsModeSurvivesRotation: with cache.credentials: job a
// job whose token changes between runs keeps its cache, and another job
// with the same token does not share it.
func TestJobCredentialsModeSurvivesRotation(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	o := &tokenOrigin{seen: map[string]int{}}
	base := testsiteServer(t, o)
	dir := t.TempDir()
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	const extra = "headers:\n  Authorization: 'Bearer ${TOKEN}'\ncache: {credentials: job}\n"

	t.Setenv("TOKEN", "monday")
	if _, err := r.Run(ctx, writeJob(t, dir, "nightly", base, extra), StartOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKEN", "tuesday")
	res, err := r.Run(ctx, writeJob(t, dir, "nightly", base, extra), StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Run.Counters; c.Hits != 3 || c.Misses != 0 || o.requests("tuesday") != 0 {
		t.Errorf("rotated token: hits/misses %d/%d, origin requests with it %d; want 3/0/0", c.Hits, c.Misses, o.requests("tuesday"))
	}
	if _, err := r.Run(ctx, writeJob(t, dir, "other", base, extra), StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := titles(t, filepath.Join(dir, "other.jsonl")), []string{"/ for tuesday", "/p1 for tuesday", "/p2 for tuesday"}; !slices.Equal(got, want) || o.requests("tuesday") != 3 {
		t.Errorf("another job with the same token: items %q, origin requests %d; want %q from the origin", got, o.requests("tuesday"), want)
	}
}
