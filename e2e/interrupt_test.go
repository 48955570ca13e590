package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"crawlcache/jobs"
	"crawlcache/testsite"
)

// syncBuffer is a bytes.Buffer that a child's output can be copied into
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// child is a crawlcache process whose output the test can read while it
// runs.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
}

func startChild(t *testing.T, dir string, env []string, args ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c := &child{exited: make(chan struct{})}
	c.cmd = cliCommand(ctx, dir, env, args...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		cancel()
		close(c.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-c.exited
	})
	return c
}

func (c *child) signal(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("signal: %v", err)
	}
}

// waitExit waits for the child to exit, at most limit, and returns its
// exit status.
func (c *child) waitExit(t *testing.T, limit time.Duration, what string) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(limit):
		t.Fatalf("%s: still running %s later; stderr:\n%s", what, limit, c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

var stoppingLine = regexp.MustCompile(`stopping: finishing (\d+) pages in flight; Ctrl-C again to stop now`)

// TestCLICtrlCTwice: the first Ctrl-C says at once how many pages the run
// finishes; the second stops it at once (the origin still holds those
// requests, and the shutdown grace is 10 s) with exit 130, the run
// interrupted; resume then completes it with every item once.
func TestCLICtrlCTwice(t *testing.T) {
	requireCommands(t, "run", "resume")
	site := smallSite(60, testsite.Options{Seed: 31})
	g := newGatedOrigin(t, site)
	dir, dataDir := t.TempDir(), t.TempDir()
	job := writeJob(t, jobSpec{Name: "ctrlc", Base: g.srv.URL, Dir: dir, Parallelism: 3, Timeout: "60s"})

	run := startChild(t, dir, []string{"CRAWLCACHE_LOG_LEVEL=info"}, "run", "--json", "--data-dir", dataDir, job)
	poll(t, time.Minute, "the run to fetch 10 pages", func() bool { return site.Counts().Bodies >= 10 })
	g.close()
	poll(t, time.Minute, "requests to wait at the closed origin", func() bool { return g.held.Load() >= 1 })

	run.signal(t)
	poll(t, 30*time.Second, "the first Ctrl-C to be answered", func() bool { return stoppingLine.MatchString(run.stderr.String()) })
	m := stoppingLine.FindStringSubmatch(run.stderr.String())
	if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Errorf("first Ctrl-C: %q, want at least the %d requests held at the origin", m[0], g.held.Load())
	}
	select {
	case <-run.exited:
		t.Fatalf("the run exited after one Ctrl-C although pages were in flight; stderr:\n%s", run.stderr.String())
	default:
	}

	run.signal(t)
	// Well under the 10 s grace the first Ctrl-C grants: the second does
	// not wait for the held requests.
	code := run.waitExit(t, 5*time.Second, "second Ctrl-C")
	if code != 130 {
		t.Errorf("exit %d after the second Ctrl-C, want 130; stderr:\n%s", code, run.stderr.String())
	}
	var sum map[string]any
	lines := strings.Split(strings.TrimSpace(run.stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum["status"] != string(jobs.StatusInterrupted) {
		t.Fatalf("summary %q (%v), want status interrupted", lines[len(lines)-1], err)
	}
	g.open()

	res := runCLI(t, dir, nil, "resume", "--json", "--data-dir", dataDir, sum["run_id"].(string))
	if res.Code != 0 {
		t.Fatalf("resume: exit %d\n%s", res.Code, res.Stderr)
	}
	checkItemsOnce(t, "jsonl", jsonlItems(t, filepath.Join(dir, "ctrlc.jsonl")), site, g.srv.URL)
	checkItemsOnce(t, "csv", csvItems(t, filepath.Join(dir, "ctrlc.csv")), site, g.srv.URL)
}

// TestCLICtrlCDuringResumeStartup: Ctrl-C while `resume` is still
// connecting to its store is an interrupt (exit 130), not "store
// unreachable" (exit 1). The store is a listener that never answers, so
// the child is in its start-up when the test sees it connect.
func TestCLICtrlCDuringResumeStartup(t *testing.T) {
	requireCommands(t, "resume")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	connected := make(chan struct{}, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			connected <- struct{}{}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	dir := t.TempDir()
	c := startChild(t, dir, nil, "resume", "--json", "--store", "mongodb://"+ln.Addr().String()+"/", "some-run")
	select {
	case <-connected:
	case <-time.After(time.Minute):
		t.Fatalf("resume never connected to its store; stderr:\n%s", c.stderr.String())
	}
	c.signal(t)
	t0 := time.Now()
	code := c.waitExit(t, 15*time.Second, "Ctrl-C during start-up")
	t.Logf("exited after %s: %q", time.Since(t0), c.stderr.String())
	out := c.stderr.String()
	if code != 130 || !strings.Contains(out, "interrupted") || strings.Contains(out, "unreachable") {
		t.Errorf("exit %d, stderr %q; want 130 and \"interrupted\", not \"unreachable\"", code, out)
	}
	if !strings.Contains(c.stdout.String(), `"status":"not_started"`) {
		t.Errorf("--json: stdout %q, want a not_started summary", c.stdout.String())
	}
}
