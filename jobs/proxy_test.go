package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"crawlcache/configs"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// forwardProxy is an HTTP forward proxy that requires Basic proxy
// credentials and counts the requests it forwarded.
type forwardProxy struct {
	srv       *httptest.Server
	mu        sync.Mutex
	forwarded int
	refused   int
}

func newForwardProxy(t *testing.T, user, pass string) *forwardProxy {
	t.Helper()
	p := &forwardProxy{}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() || r.Header.Get("Proxy-Authorization") != want {
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Authorization")
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		p.mu.Lock()
		p.forwarded++
		p.mu.Unlock()
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestJobProxyCredentialsNeverWritten: a job whose proxy key carries a
// password from the environment crawls through an authenticating forward
// proxy (every request of the run goes through it), and the password is
// then searched for in the debug log, the outputs, the run record and
// every file of the data directory (after the store is closed): it is in
// none of them.
func TestJobProxyCredentialsNeverWritten(t *testing.T) {
	const secret = "pr0xy-5ecret-pass-7731"
	t.Setenv("CRAWLCACHE_TEST_PROXY_PASS", secret)
	ctx := context.Background()
	origin := testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/" {
			fmt.Fprint(w, `<h1>home</h1><a href="/a">a</a><a href="/b">b</a><a href="/missing">m</a>`)
			return
		}
		if r.URL.Path == "/missing" || r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `<h1>%s</h1>`, r.URL.Path)
	}))
	proxy := newForwardProxy(t, "crawler", secret)

	dir := t.TempDir()
	dataDir, out := filepath.Join(dir, "data"), filepath.Join(dir, "out")
	yaml := fmt.Sprintf(`name: proxied
seeds: ["%s/"]
proxy: "http://crawler:${CRAWLCACHE_TEST_PROXY_PASS}@%s"
rate: {per_host: 1000, burst: 10}
extract:
  fields:
    title: {css: h1}
outputs:
  - mongodb: {collection: items}
  - jsonl: {path: %s/items.jsonl}
`, origin, strings.TrimPrefix(proxy.srv.URL, "http://"), out)
	jobPath := filepath.Join(dir, "proxied.yaml")
	if err := os.WriteFile(jobPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(jobPath)
	if err != nil {
		t.Fatalf("load job: %v", err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := store.Open(ctx, store.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: s, Logger: log}
	res, err := r.Run(ctx, job, StartOptions{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	log.Info("the job", "job", job) // as any code that logs a job would
	record, err := json.Marshal(res.Run)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	proxy.mu.Lock()
	forwarded, refused := proxy.forwarded, proxy.refused
	proxy.mu.Unlock()
	// robots.txt, the home page, /a, /b and /missing.
	if forwarded != 5 || refused != 0 || res.Run.Counters.Pages != 4 {
		t.Errorf("proxy forwarded %d requests and refused %d, run did %d pages; want 5, 0 and 4 (every request through the proxy)",
			forwarded, refused, res.Run.Counters.Pages)
	}
	if !strings.Contains(logs.String(), `"proxy":"http://`+strings.TrimPrefix(proxy.srv.URL, "http://")+`"`) {
		t.Errorf("the log does not say which proxy the run uses (scheme and host):\n%s", logs.String())
	}

	found := func(where string, b []byte) {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the proxy password in clear", where)
		}
	}
	found("the log", []byte(logs.String()))
	found("the run record", record)
	files := 0
	for _, root := range []string{out, dataDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			found(p, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 3 {
		t.Errorf("searched %d files, want the output and the store's files", files)
	}
}

// TestJobProxyWrongPassword: a proxy that refuses the job's credentials
// (407) fails every URL (http_407) and the run with them, instead of
// counting 407 answers as pages.
func TestJobProxyWrongPassword(t *testing.T) {
	t.Setenv("CRAWLCACHE_TEST_PROXY_PASS", "wrong")
	origin := testsiteServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<h1>x</h1>") }))
	proxy := newForwardProxy(t, "crawler", "right")
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	yaml := fmt.Sprintf("name: p\nseeds: [\"%s/\"]\nrobots: false\nproxy: \"http://crawler:${CRAWLCACHE_TEST_PROXY_PASS}@%s\"\n",
		origin, strings.TrimPrefix(proxy.srv.URL, "http://"))
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := storetest.Open(t)
	res, err := (&Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}).Run(context.Background(), job, StartOptions{})
	if !errors.Is(err, ErrTooManyErrors) || res.Run.Counters.Pages != 0 || res.Run.Breakdown.ErrorKinds["http_407"] != 1 {
		t.Errorf("run through a proxy refusing the password: err %v, pages %d, errors %v; want ErrTooManyErrors, 0 pages, http_407 1",
			err, res.Run.Counters.Pages, res.Run.Breakdown.ErrorKinds)
	}
}
