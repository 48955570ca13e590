package configs

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"300ms", 300 * time.Millisecond},
		{"1h30m", 90 * time.Minute},
		{"168h", 7 * day},
		{"1d", day},
		{" 7d ", 7 * day},
		{"1d12h", day + 12*time.Hour},
		{"12h1d", day + 12*time.Hour},
		{"2d3h4m5s", 2*day + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"1.5d", 36 * time.Hour},
		{"-1d", -day},
		{"106751d", 106751 * day},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
		})
	}
	for _, in := range []string{"", "d", "1", "7days", "1w", "1d-2h", "..d", "1e3d", "soon", "1d 12h", "106752d", "999999999999999999999d"} {
		t.Run("bad "+in, func(t *testing.T) {
			_, err := ParseDuration(in)
			if err == nil {
				t.Fatalf("ParseDuration(%q): err = nil, want an error", in)
			}
			if msg := err.Error(); strings.Contains(msg, "time:") || strings.Contains(msg, "unknown unit") {
				t.Errorf("ParseDuration(%q) error %q leaks Go's parser message", in, msg)
			}
		})
	}
}

// TestJobDurationsTakeDays is the regression test for days being refused
// in job files while `cache ttl set 7d` accepted them.
func TestJobDurationsTakeDays(t *testing.T) {
	src := ok + "timeout: 1d\nschedule: 'CRON_TZ=Europe/Paris @every 1d12h'\ncache:\n  expire_after: 7d\n  urls_expire_after:\n    'example.org/x': 2d\n  stale_if_error: 1d\n  ttl: 30d\n"
	job, err := parseTest("days.yaml", src)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	const day = 24 * time.Hour
	if job.Timeout != day {
		t.Errorf("timeout = %v, want 24h", job.Timeout)
	}
	if job.Cache.ExpireAfter.After != 7*day {
		t.Errorf("cache.expire_after = %v, want 168h", job.Cache.ExpireAfter.After)
	}
	if job.Cache.StaleIfError != day {
		t.Errorf("cache.stale_if_error = %v, want 24h", job.Cache.StaleIfError)
	}
	if job.TTL != 30*day {
		t.Errorf("cache.ttl = %v, want 720h", job.TTL)
	}
}

func TestDurationErrorsNameFileLineKey(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"bad unit", ok + "timeout: 3w\n", `bad.yaml:3: timeout: must be a duration like 30s, 1h30m or 7d, got "3w"`},
		{"@every bad unit", ok + "schedule: '@every 1w'\n", `bad.yaml:3: schedule: @every: "1w" is not a duration`},
		{"@every with a time zone, bad unit", ok + "schedule: 'CRON_TZ=UTC @every 1w'\n", `bad.yaml:3: schedule: @every: "1w" is not a duration`},
		{"@every too short", ok + "schedule: '@every 10ms'\n", `bad.yaml:3: schedule: @every needs a duration of at least 1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(errorLines(t, tt.src), "\n")
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("error = %q, want prefix %q", got, tt.want)
			}
			if strings.Contains(got, "unknown unit") {
				t.Errorf("error %q leaks Go's parser message", got)
			}
		})
	}
}

// FuzzParseDuration: never panics, never leaks Go's parser message, agrees
// with time.ParseDuration on what it accepts, and reads "Nd" as N×24h.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "1d", "1d12h", "1.5d", "-2d3h", "90s", "1h30m", "1w", "", "d", "9223372036854775807ns", "106751d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if err != nil {
			if strings.Contains(err.Error(), "time:") {
				t.Errorf("ParseDuration(%q) error %q leaks Go's parser message", s, err)
			}
			return
		}
		if want, gerr := time.ParseDuration(strings.TrimSpace(s)); gerr == nil && got != want {
			t.Errorf("ParseDuration(%q) = %v, time.ParseDuration = %v", s, got, want)
		}
		if days, derr := ParseDuration(s + "1d"); derr == nil && days-got != 24*time.Hour && got >= 0 {
			t.Errorf("ParseDuration(%q) = %v but %q = %v: a day is not 24h", s, got, s+"1d", days)
		}
	})
}
