package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/store/storetest"
)

// configDir is a directory of job files for reload tests.
type configDir struct {
	t   *testing.T
	dir string
}

func (d configDir) write(file, name, schedule, extra string) {
	d.t.Helper()
	yaml := fmt.Sprintf("name: %s\nseeds: ['http://127.0.0.1:1/']\nschedule: '%s'\n%s", name, schedule, extra)
	if err := os.WriteFile(filepath.Join(d.dir, file), []byte(yaml), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d configDir) writeRaw(file, text string) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.dir, file), []byte(text), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d configDir) load() ([]*configs.Job, error) { return configs.LoadDir(d.dir) }

// TestSchedulerReload: a reload adds, changes and removes jobs without
// stopping the run in progress; a changed schedule is computed again, an
// invalid file keeps its job's previous definition and says file, line
// and key; a removed job that is running finishes and is not started
// again.
func TestSchedulerReload(t *testing.T) {
	s := storetest.Open(t)
	d := configDir{t, t.TempDir()}
	d.write("a.yaml", "alpha", "@every 1h", "")
	d.write("b.yaml", "beta", "@every 1h", "")
	d.write("c.yaml", "gamma", "@every 1h", "")
	start := time.Date(2026, 12, 3, 10, 20, 0, 0, time.UTC)

	release := make(chan struct{})
	var mu sync.Mutex
	var started []string // job name and the max_pages it ran with
	run := func(ctx context.Context, j *configs.Job) (*Outcome, error) {
		mu.Lock()
		started = append(started, fmt.Sprintf("%s/%d", j.Name, j.MaxPages))
		mu.Unlock()
		if j.Name == "alpha" || j.Name == "gamma" {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err() // a reload must never get here
			}
		}
		return &Outcome{Run: &Run{ID: j.Name + "-run", Job: j.Name, Status: StatusCompleted}}, nil
	}
	loaded, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	sched, err := NewScheduler(SchedulerOptions{
		Jobs: loaded, Locker: NewLocker(s, nil), Run: run, Start: start, Metrics: m,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	at11 := start.Truncate(time.Hour).Add(time.Hour)
	if got := sched.Tick(ctx, at11); len(got) != 3 {
		t.Fatalf("11:00 started %v, want all three", got)
	}

	// alpha and gamma are running. Change alpha (max_pages), move beta to
	// a daily schedule, break gamma's file, add delta, remove nothing yet.
	d.write("a.yaml", "alpha", "@every 1h", "max_pages: 7\n")
	d.write("b.yaml", "beta", "0 3 * * *", "")
	d.writeRaw("c.yaml", "name: gamma\nseeds: ['http://127.0.0.1:1/']\nschedule: '@every 1h'\nmax_depth: deep\n")
	d.write("d.yaml", "delta", "@every 30m", "")
	d.writeRaw("e.yaml", "name: [broken\n")
	now := at11.Add(10 * time.Minute)
	loaded, loadErr := d.load()
	rep := sched.Reload(loaded, loadErr, now)
	if !slices.Equal(rep.Added, []string{"delta"}) || !slices.Equal(rep.Changed, []string{"alpha", "beta"}) ||
		len(rep.Removed) != 0 || !slices.Equal(rep.Kept, []string{"gamma"}) {
		t.Errorf("reload: added %v changed %v removed %v kept %v; want [delta], [alpha beta], [], [gamma]", rep.Added, rep.Changed, rep.Removed, rep.Kept)
	}
	var msgs []string
	for _, e := range rep.Errors {
		msgs = append(msgs, e.Error())
	}
	if joined := strings.Join(msgs, "\n"); !strings.Contains(joined, "c.yaml:4: max_depth:") || !strings.Contains(joined, "e.yaml:1") {
		t.Errorf("reload errors %q: want c.yaml:4: max_depth: and e.yaml:1", joined)
	}
	next := sched.Jobs()
	for name, want := range map[string]time.Time{
		"alpha": at11.Add(time.Hour),                          // unchanged schedule: as before
		"beta":  time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC), // new schedule from now
		"gamma": at11.Add(time.Hour),                          // previous definition
		"delta": at11.Add(30 * time.Minute),                   // new job, from now
	} {
		if !next[name].Equal(want) {
			t.Errorf("next %s = %s, want %s", name, next[name], want)
		}
	}
	// beta's run returns at once and may or may not have ended yet.
	if got := sched.Running(); !slices.Contains(got, "alpha") || !slices.Contains(got, "gamma") {
		t.Errorf("running after the reload = %v, want alpha and gamma: a reload stops no run", got)
	}

	// Remove gamma (its file) while it runs: it finishes, and no tick
	// starts it again.
	if err := os.Remove(filepath.Join(d.dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	loaded, loadErr = d.load()
	if rep := sched.Reload(loaded, loadErr, now); !slices.Equal(rep.Removed, []string{"gamma"}) {
		t.Errorf("second reload removed %v, want [gamma]", rep.Removed)
	}
	// The directory itself gone (unmounted, mid-swap): nothing changes.
	loaded, loadErr = configs.LoadDir(filepath.Join(d.dir, "gone"))
	if rep := sched.Reload(loaded, loadErr, now); len(rep.Removed) != 0 || len(rep.Errors) != 1 || !slices.Equal(rep.Kept, []string{"alpha", "beta", "delta"}) {
		t.Errorf("reload of a missing directory: removed %v, errors %v, kept %v; want nothing removed, one error, every job kept", rep.Removed, rep.Errors, rep.Kept)
	}
	close(release)
	sched.Wait()
	sched.Tick(ctx, at11.Add(time.Hour))
	sched.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"alpha/0", "beta/0", "gamma/0", "alpha/7", "delta/0"}
	if !sameSet(started, want) {
		t.Errorf("runs started %v, want %v (the 12:00 tick runs the new alpha, not gamma)", started, want)
	}
	if text := scrape(t, m); strings.Contains(text, `job="gamma"`) || !strings.Contains(text, `crawlcache_next_run_timestamp_seconds{job="delta"}`) {
		t.Errorf("metrics after the reloads: want no gamma series and a delta series:\n%s", grepLines(text, "next_run"))
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestWatchDir: a DirWatch reports a new file, an edited one and a removed
// one, and nothing when nothing changed.
func TestWatchDir(t *testing.T) {
	d := configDir{t, t.TempDir()}
	d.write("a.yaml", "alpha", "@every 1h", "")
	changed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewDirWatch(d.dir)
	go w.Run(ctx, 5*time.Millisecond, func() { changed <- struct{}{} })
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
	}
	d.write("b.yml", "beta", "@every 1h", "")
	wait("a new file")
	d.write("a.yaml", "alpha", "@every 1h", "max_pages: 100\n") // another size
	wait("an edit")
	if err := os.Remove(filepath.Join(d.dir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	wait("a removal")
	d.writeRaw("notes.txt", "not a job file")
	select {
	case <-changed:
		t.Errorf("a change was reported for a file that is not a job file")
	case <-time.After(50 * time.Millisecond):
	}
}
