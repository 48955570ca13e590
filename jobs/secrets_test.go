package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/store"
)

// lockedBuffer is a log destination shared by the crawl's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNeverWrittenInClear: a job whose header
// carries a bearer token and whose seeds carry ?api_key= is interrupted
// while its seed is fetched, resumed, and then every log line, every output
// file and every file of the data directory (SQLite files included, after
// the store is closed) is searched for both secrets. The origin must still
// have received both on every request of a seed, the resumed one included.
// A link the site published with its own signature (?sig=) is fetched as
// published, and shown redacted in logs and items.
func TestSecretsNeverWrittenInClear(t *testing.T) {
	const (
		token   = "tok-5ecret-bearer-8812"
		apiKey  = "k3y-5ecret-api-4471"
		siteSig = "s1g-site-signed-9034"
	)
	t.Setenv("CRAWLCACHE_TEST_TOKEN", token)
	ctx := context.Background()
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()

	var mu sync.Mutex
	var bad []string
	seedHits := 0
	origin := testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			bad = append(bad, r.URL.Path+": no bearer token")
		}
		first := false
		if r.URL.Path == "/" {
			if r.URL.Query().Get("api_key") != apiKey {
				bad = append(bad, "seed requested without its api_key: "+r.URL.RawQuery)
			}
			seedHits++
			first = seedHits == 1
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/":
			if first { // interrupted while the seed is on the wire
				interrupt()
				<-r.Context().Done()
				return
			}
			fmt.Fprintf(w, `<h1>home</h1><a href="/a">a</a><a href="/signed?sig=%[1]s">s</a><a href="/gone?sig=%[1]s">g</a>`, siteSig)
		case "/broken", "/gone":
			http.Error(w, "down", http.StatusInternalServerError)
		case "/signed":
			if r.URL.Query().Get("sig") != siteSig {
				bad = append(bad, "signed link requested without its signature")
			}
			fmt.Fprint(w, `<h1>signed</h1>`)
		default:
			fmt.Fprintf(w, `<h1>%s</h1>`, r.URL.Path)
		}
	}))

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	out := filepath.Join(dir, "out")
	yaml := fmt.Sprintf(`name: secret
seeds: ["%[1]s/?api_key=%[2]s", "%[1]s/broken?api_key=%[2]s"]
headers: {Authorization: "Bearer ${CRAWLCACHE_TEST_TOKEN}"}
robots: false
rate: {per_host: 1000, burst: 10, parallelism: 2}
retry: {max: 0}
max_error_ratio: 1 # two of its five URLs fail on purpose
extract:
  fields:
    title: {css: h1}
outputs:
  - mongodb: {collection: items}
  - jsonl: {path: %[3]s/items.jsonl}
  - csv: {path: %[3]s/items.csv}
`, origin, apiKey, out)
	jobPath := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(jobPath)
	if err != nil {
		t.Fatalf("load job: %v", err)
	}

	logs := &lockedBuffer{}
	s, err := store.Open(ctx, store.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: s, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ShutdownGrace: 1}
	first, err := r.Run(runCtx, job, StartOptions{})
	if !errors.Is(err, crawler.ErrInterrupted) {
		t.Fatalf("first run: err = %v, want it interrupted", err)
	}
	res, err := r.Resume(ctx, first.Run.ID, job)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.Run.Status != StatusCompleted {
		t.Errorf("resumed run status = %s, want completed", res.Run.Status)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close store: %v", err)
	}

	mu.Lock()
	if seedHits != 2 {
		t.Errorf("seed requested %d times, want 2 (interrupted, then resumed)", seedHits)
	}
	for _, b := range bad {
		t.Errorf("origin: %s", b)
	}
	mu.Unlock()

	logText := logs.String()
	for _, want := range []string{`"msg":"page failed"`, "api_key=REDACTED", "sig=REDACTED"} {
		if !strings.Contains(logText, want) {
			t.Errorf("logs lack %q (the test would prove nothing):\n%s", want, logText)
		}
	}
	items, err := os.ReadFile(filepath.Join(out, "items.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/?api_key=REDACTED", "/signed?sig=REDACTED"} {
		if !bytes.Contains(items, []byte(want)) {
			t.Errorf("items.jsonl lacks an item with url %q:\n%s", want, items)
		}
	}

	secrets := []string{token, apiKey, siteSig}
	check := func(where string, b []byte) {
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds the secret %q in clear", where, sec)
			}
		}
	}
	check("the log", []byte(logText))
	files := 0
	for _, root := range []string{out, dataDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			files++
			rel, _ := filepath.Rel(dir, p)
			if strings.HasPrefix(rel, "data") {
				// The frontier may keep the site's own signed link (it
				// must fetch it), and the cache holds the page that
				// published it; the user's secrets never.
				for _, sec := range []string{token, apiKey} {
					if bytes.Contains(b, []byte(sec)) {
						t.Errorf("%s holds the secret %q in clear", rel, sec)
					}
				}
				return nil
			}
			check(rel, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 4 {
		t.Errorf("searched %d files, want the outputs and the store's files", files)
	}
}
