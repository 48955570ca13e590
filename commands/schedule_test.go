package commands

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
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

// waitFor waits until the log holds want, failing the test after a bound.
func waitFor(t *testing.T, log *syncBuffer, want string) {
	t.Helper()
	waitForAfter(t, log, "", want)
}

// waitForAfter waits until the log says want after the first time it said
// after.
func waitForAfter(t *testing.T, log *syncBuffer, after, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := log.String()
		if i := strings.Index(l, after); i >= 0 && strings.Contains(l[i:], want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q after %q:\n%s", want, after, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScheduleReloadsAndSaysWhatItDoes runs `schedule` (no job due for
// hours): it logs each job's next run; a changed file in --configs is
// reloaded, an invalid one is refused with file:line: key and the old
// definition kept; SIGHUP reloads too; Ctrl-C says what it does.
func TestScheduleReloadsAndSaysWhatItDoes(t *testing.T) {
	dir := t.TempDir()
	cfgs := filepath.Join(dir, "configs")
	if err := os.Mkdir(cfgs, 0o755); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(cfgs, "nightly.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(job, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("name: nightly\nseeds: ['http://127.0.0.1:1/']\nschedule: '0 3 * * *'\n")
	var logs syncBuffer
	app := App()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &logs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"crawlcache", "schedule", "--configs", cfgs, "--metrics-addr", "",
			"--reload-poll", "10ms", "--data-dir", filepath.Join(dir, "data")})
	}()
	waitFor(t, &logs, "msg=\"scheduler running\"")
	if !strings.Contains(logs.String(), "msg=scheduled job=nightly next=") {
		t.Errorf("start-up does not say when the job runs next:\n%s", logs.String())
	}

	write("name: nightly\nseeds: ['http://127.0.0.1:1/']\nschedule: '0 3 * * *'\nmax_depth: deep\n")
	// The error comes first, then that reload's summary: wait for both.
	waitFor(t, &logs, "job file invalid")
	waitForAfter(t, &logs, "job file invalid", "job files reloaded")
	if !strings.Contains(logs.String(), "nightly.yaml:4: max_depth:") || !strings.Contains(logs.String(), "kept_previous=[nightly]") {
		t.Errorf("an invalid file after a reload: want file:line: key and the previous definition kept:\n%s", logs.String())
	}

	write("name: nightly\nseeds: ['http://127.0.0.1:1/']\nschedule: '30 4 * * *'\n")
	waitFor(t, &logs, "changed=[nightly]")
	if !strings.Contains(logs.String(), "T04:30:00") {
		t.Errorf("after the schedule changed, the log does not say the new next run (04:30):\n%s", logs.String())
	}

	// The watcher (and so the SIGHUP handler) is running: a SIGHUP reloads.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, "why=SIGHUP")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("schedule after Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("schedule did not stop after Ctrl-C")
	}
	for _, want := range []string{"schedule: stopping: no run in progress", "scheduler stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("Ctrl-C: the log lacks %q:\n%s", want, logs.String())
		}
	}
}
