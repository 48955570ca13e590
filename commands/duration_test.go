package commands

import (
	"strings"
	"testing"
	"time"
)

// TestDurationFlags: duration flags read the job files' syntax (days too),
// refuse negative values, and show one default in help.
func TestDurationFlags(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0", 0, ""},
		{"1w", 0, `"1w" is not a duration`},
		{"-1s", 0, `"-1s" is negative`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v durationValue
			err := v.Set(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Set(%q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || v.d != tt.want {
				t.Errorf("Set(%q) = %v, %v; want %v", tt.in, v.d, err, tt.want)
			}
		})
	}
	out, code := runOut(t, "run", "--help")
	if code != 0 || strings.Count(out, "--lease") != 1 || !strings.Contains(out, "(default: 2m)") {
		t.Errorf("run --help: exit %d, want one --lease line with (default: 2m); got:\n%s", code, out)
	}
	if out, code := runOut(t, "worker", "--lease", "1w"); code != 2 || !strings.Contains(out, `"1w" is not a duration`) {
		t.Errorf("worker --lease 1w: exit %d, output %q; want 2 and the duration error", code, out)
	}
}
