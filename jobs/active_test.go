package jobs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"crawlcache/store/storetest"
)

// TestResumedRunRateLeavesIdleGapOut: a run whose last session stopped
// three hours ago (its worker's last heartbeat a minute after its start)
// is resumed; the time in between is recorded as idle, and the summary's
// rate is measured over the crawling time only, not the three hours.
func TestResumedRunRateLeavesIdleGapOut(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(6, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "idle", srv.URL, "")
	runs := NewRuns(s, nil)

	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Millisecond)
	stopped := t0.Add(time.Minute)
	run := &Run{
		ID: NewRunID(job.Name, t0), Job: job.Name, ConfigPath: job.Source, Status: StatusInterrupted,
		Started: t0, Updated: stopped.Add(time.Hour), Finished: &stopped,
		Workers: map[string]Worker{"gone-1": {ID: "gone-1", Started: t0, Heartbeat: stopped}},
	}
	if err := runs.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	out, err := r.Resume(ctx, run.ID, job)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	got := out.Run
	wantIdle := time.Since(stopped)
	if idle := time.Duration(got.IdleSeconds * float64(time.Second)); idle > wantIdle || idle < wantIdle-time.Minute {
		t.Errorf("idle = %s, want about %s (last heartbeat to resume; not from the record's later update)", idle, wantIdle)
	}
	if a := got.Active(); a < time.Minute || a > 2*time.Minute {
		t.Errorf("active = %s, want the first session's minute plus the resume's crawl (elapsed %s)", a, got.Elapsed())
	}
	var b bytes.Buffer
	WriteSummary(&b, got)
	if !strings.Contains(b.String(), "idle 2h59m") || !strings.Contains(b.String(), "between sessions") {
		t.Errorf("summary does not say the run idled between sessions:\n%s", b.String())
	}
	wantRate := float64(got.Counters.Pages) / got.Active().Round(time.Millisecond).Seconds()
	if want := fmt.Sprintf("%.1f/s", wantRate); !strings.Contains(b.String(), want) {
		t.Errorf("summary rate: want %s (over the crawling time):\n%s", want, b.String())
	}
}

// TestRunsOfTheLastReleaseHaveNoIdleTime: run records written before
// idle_seconds existed read back with none, and their rate is over their
// whole wall time as before.
func TestRunsOfTheLastReleaseHaveNoIdleTime(t *testing.T) {
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	list, err := NewRuns(s, nil).List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.IdleSeconds != 0 || r.Active() != r.Elapsed() {
			t.Errorf("run %s: idle %v, active %s, elapsed %s; want no idle time", r.ID, r.IdleSeconds, r.Active(), r.Elapsed())
		}
	}
}
