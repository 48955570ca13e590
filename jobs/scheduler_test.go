package jobs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/store/storetest"
)

func TestParseScheduleEveryAligned(t *testing.T) {
	tests := []struct {
		name string
		spec string
		from time.Time
		want time.Time
	}{
		{"every hour from mid-hour", "@every 1h", time.Date(2026, 11, 27, 4, 20, 5, 0, time.UTC), time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)},
		{"every 15m on the boundary", "@every 15m", time.Date(2026, 11, 27, 4, 15, 0, 0, time.UTC), time.Date(2026, 11, 27, 4, 30, 0, 0, time.UTC)},
		{"cron every 6h", "0 */6 * * *", time.Date(2026, 11, 27, 4, 20, 0, 0, time.UTC), time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)},
		{"every day written in days", "@every 1d", time.Date(2026, 11, 27, 4, 20, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{"every 1d12h", "@every 1d12h", time.Date(2026, 11, 27, 4, 20, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)}, // multiples of 36h (time.Truncate)
		{"every day with a time zone", "TZ=Asia/Tokyo @every 1d", time.Date(2026, 11, 27, 4, 20, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{"daily", "@daily", time.Date(2026, 11, 27, 4, 20, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.spec)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := s.Next(tc.from); !got.Equal(tc.want) {
				t.Errorf("Next(%s) = %s, want %s", tc.from, got, tc.want)
			}
		})
	}
	if _, err := ParseSchedule("@every 1w"); err == nil || strings.Contains(err.Error(), "unknown unit") {
		t.Errorf("@every 1w: err = %v, want an error without Go's parser message", err)
	}
	if _, err := ParseSchedule("every tuesday"); err == nil {
		t.Errorf("bad spec: err = nil, want an error")
	}
}

// TestTwoSchedulersRunDueJobOnce: two schedulers on one store with the same
// clock start each due occurrence exactly once, and never run a job that is
// not due.
func TestTwoSchedulersRunDueJobOnce(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	clock := newFakeClock()
	start := clock.Now() // 04:00:00
	jobs := []*configs.Job{
		{Name: "hourly", Schedule: "@every 1h", Source: "hourly.yaml"},
		{Name: "daily", Schedule: "0 6 * * *", Source: "daily.yaml"},
		{Name: "manual", Source: "manual.yaml"},
	}
	var mu sync.Mutex
	runs := map[string]int{}
	run := func(ctx context.Context, j *configs.Job) (*Outcome, error) {
		mu.Lock()
		runs[j.Name]++
		mu.Unlock()
		return &Outcome{Run: &Run{ID: j.Name, Job: j.Name, Status: StatusCompleted}}, nil
	}
	var scheds []*Scheduler
	for _, owner := range []string{"machine-a", "machine-b"} {
		sc, err := NewScheduler(SchedulerOptions{
			Jobs: jobs, Locker: NewLocker(s, clock.Now), Run: run,
			Owner: owner, Start: start, Metrics: NewMetrics(), Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatalf("new scheduler: %v", err)
		}
		scheds = append(scheds, sc)
	}
	tick := func(at time.Time) {
		var wg sync.WaitGroup
		for _, sc := range scheds {
			wg.Add(1)
			go func() { defer wg.Done(); sc.Tick(ctx, at) }()
		}
		wg.Wait()
		for _, sc := range scheds {
			sc.Wait()
		}
	}
	steps := []struct {
		at   time.Time
		want map[string]int
	}{
		{start.Add(30 * time.Minute), map[string]int{}},
		{start.Add(time.Hour), map[string]int{"hourly": 1}},
		{start.Add(time.Hour + time.Minute), map[string]int{"hourly": 1}},
		{start.Add(2 * time.Hour), map[string]int{"hourly": 2, "daily": 1}},
		// Three missed hours collapse into one run.
		{start.Add(5*time.Hour + 10*time.Minute), map[string]int{"hourly": 3, "daily": 1}},
	}
	for _, st := range steps {
		tick(st.at)
		mu.Lock()
		for _, name := range []string{"hourly", "daily", "manual"} {
			if got, want := runs[name], st.want[name]; got != want {
				t.Errorf("at %s: runs of %s = %d, want %d", st.at.Format("15:04"), name, got, want)
			}
		}
		mu.Unlock()
	}
}

// TestSchedulerSkipsJobStillRunning: a due occurrence of a job whose
// previous run has not returned is skipped, not queued.
func TestSchedulerSkipsJobStillRunning(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	start := newFakeClock().Now()
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	var n int
	sc, err := NewScheduler(SchedulerOptions{
		Jobs:   []*configs.Job{{Name: "slow", Schedule: "@every 1m"}},
		Locker: NewLocker(s, nil),
		Run: func(ctx context.Context, j *configs.Job) (*Outcome, error) {
			n++
			started <- struct{}{}
			<-release
			return &Outcome{Run: &Run{ID: "x", Job: j.Name, Status: StatusCompleted}}, nil
		},
		Start:  start,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Tick(ctx, start.Add(time.Minute)); len(got) != 1 {
		t.Fatalf("first tick started %v, want [slow]", got)
	}
	<-started
	if got := sc.Tick(ctx, start.Add(2*time.Minute)); len(got) != 0 {
		t.Errorf("tick while running started %v, want none", got)
	}
	close(release)
	sc.Wait()
	if n != 1 {
		t.Errorf("runs = %d, want 1", n)
	}
}

// TestOnceInAClaimedMinuteSaysWhy: a `schedule --once` whose occurrence an
// earlier one already claimed runs nothing and says so at info level,
// naming the claim.
func TestOnceInAClaimedMinuteSaysWhy(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	clock := newFakeClock()
	job := &configs.Job{Name: "nightly", Schedule: "@daily", Source: "nightly.yaml"}
	ran := 0
	newSched := func(owner string, log *slog.Logger) *Scheduler {
		sc, err := NewScheduler(SchedulerOptions{
			Jobs: []*configs.Job{job}, Locker: NewLocker(s, clock.Now), Owner: owner,
			Run: func(context.Context, *configs.Job) (*Outcome, error) {
				ran++
				return &Outcome{Run: &Run{ID: "r", Job: job.Name, Status: StatusCompleted}}, nil
			},
			Start: clock.Now(), Metrics: NewMetrics(), Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	now := clock.Now().Truncate(time.Minute)
	first := newSched("first-once", slog.New(slog.DiscardHandler))
	first.entries[0].next = now
	first.Tick(ctx, now)
	first.Wait()

	var logs strings.Builder
	second := newSched("second-once", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	second.entries[0].next = now
	if started := second.Tick(ctx, now); len(started) != 0 {
		t.Errorf("second scheduler started %v in a claimed minute, want nothing", started)
	}
	second.Wait()
	if ran != 1 {
		t.Errorf("job ran %d times, want once", ran)
	}
	for _, want := range []string{"level=INFO", "skipped", "already claimed", "job=nightly", "claimed_by=first-once", "crawlcache run FILE"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("info log lacks %q:\n%s", want, logs.String())
		}
	}
}
