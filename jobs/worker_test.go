package jobs

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/store/storetest"
)

// TestWorkChoosesRuns checks which run Runner.Work joins: the oldest
// running, live run that records host leases (of the job asked for), and
// none otherwise; a failed join does not stop it from trying the next run.
// LoadJob stops each join before any crawl, so the test needs no origin.
func TestWorkChoosesRuns(t *testing.T) {
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	errStop := errors.New("stop before crawling")
	rec := func(id, job string, status Status, age time.Duration, opts ...string) *Run {
		return &Run{ID: id, Job: job, Status: status, Started: now.Add(-time.Hour).Add(-age), Updated: now.Add(-age), Options: opts}
	}
	cases := []struct {
		name    string
		runs    []*Run
		opts    WorkOptions
		want    []string // run ids LoadJob is asked for, in order
		wantErr error
	}{
		{"nothing at all", nil, WorkOptions{}, nil, ErrNoRunningRun},
		{"finished runs only", []*Run{
			rec("a-1", "a", StatusCompleted, 0, OptionHostLeases),
			rec("a-2", "a", StatusInterrupted, 0, OptionHostLeases),
		}, WorkOptions{}, nil, ErrNoRunningRun},
		{"running without host leases", []*Run{rec("a-1", "a", StatusRunning, 0)}, WorkOptions{}, nil, ErrNoRunningRun},
		{"running but nobody reports", []*Run{rec("a-1", "a", StatusRunning, time.Minute, OptionHostLeases)}, WorkOptions{}, nil, ErrNoRunningRun},
		{"oldest live run first", []*Run{
			rec("a-new", "a", StatusRunning, 0, OptionHostLeases),
			rec("b-old", "b", StatusRunning, 5*time.Second, OptionHostLeases),
		}, WorkOptions{}, []string{"b-old", "a-new"}, errStop},
		{"only the job asked for", []*Run{
			rec("a-new", "a", StatusRunning, 0, OptionHostLeases),
			rec("b-old", "b", StatusRunning, 5*time.Second, OptionHostLeases),
		}, WorkOptions{Job: "a"}, []string{"a-new"}, errStop},
		{"another job only", []*Run{rec("b-1", "b", StatusRunning, 0, OptionHostLeases)}, WorkOptions{Job: "a"}, nil, ErrNoRunningRun},
		{"named run, running", []*Run{rec("a-1", "a", StatusRunning, 0)}, WorkOptions{RunID: "a-1"}, []string{"a-1"}, errStop},
		{"named run, completed", []*Run{rec("a-1", "a", StatusCompleted, 0, OptionHostLeases)}, WorkOptions{RunID: "a-1"}, nil, ErrNoRunningRun},
		{"named run, missing", nil, WorkOptions{RunID: "a-1"}, nil, ErrRunNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			ctx := context.Background()
			runs := NewRuns(s, nil)
			for _, r := range tc.runs {
				if err := runs.Create(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			var asked []string
			tc.opts.LoadJob = func(_ context.Context, run *Run) (*configs.Job, error) {
				asked = append(asked, run.ID)
				return nil, errStop
			}
			r := &Runner{Store: s, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
			_, err := r.Work(ctx, tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(asked, tc.want) {
				t.Errorf("asked for the configs of %v, want %v", asked, tc.want)
			}
		})
	}
}

// TestWorkWaitInterrupted: a worker waiting for a run stops when its
// context ends, with an error wrapping crawler.ErrInterrupted.
func TestWorkWaitInterrupted(t *testing.T) {
	s := storetest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	_, err := r.Work(ctx, WorkOptions{Wait: time.Hour, LoadJob: func(context.Context, *Run) (*configs.Job, error) {
		t.Error("LoadJob called with no run")
		return nil, nil
	}})
	if !errors.Is(err, crawler.ErrInterrupted) {
		t.Errorf("err = %v, want crawler.ErrInterrupted", err)
	}
}
