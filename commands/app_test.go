package commands

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLogFormat: --log-format json makes every log line one JSON object
// (for log shippers), text stays key=value, and either is accepted before
// or after the command, or from CRAWLCACHE_LOG_FORMAT.
func TestLogFormat(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	tests := []struct {
		name     string
		args     []string
		env      string
		wantJSON bool
	}{
		{"default is text", []string{"crawlcache", "cache", "ttl", "show"}, "", false},
		{"json before the command", []string{"crawlcache", "--log-format", "json", "cache", "ttl", "show"}, "", true},
		{"json after the command", []string{"crawlcache", "cache", "ttl", "show", "--log-format=json"}, "", true},
		{"json from the environment", []string{"crawlcache", "cache", "ttl", "show"}, "json", true},
		{"flag beats the environment", []string{"crawlcache", "cache", "ttl", "show", "--log-format", "text"}, "json", false},
	}
	s := newCacheCLI(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CRAWLCACHE_LOG_FORMAT", tt.env)
			var stdout, stderr bytes.Buffer
			app := App()
			app.Writer, app.ErrWriter = &stdout, &stderr
			if err := app.Run(Intersperse(app, append(tt.args, "--store", s.uri))); err != nil {
				t.Fatalf("run: %v", err)
			}
			slog.Warn("probe", "key", "v")
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			line := lines[len(lines)-1] // the probe
			var got map[string]any
			isJSON := json.Unmarshal([]byte(line), &got) == nil
			if isJSON != tt.wantJSON {
				t.Fatalf("log line %q: JSON = %v, want %v", line, isJSON, tt.wantJSON)
			}
			if isJSON && (got["level"] != "WARN" || got["msg"] != "probe" || got["key"] != "v") {
				t.Errorf("log object %v, want level WARN, msg probe, key v", got)
			}
			if !isJSON && !strings.Contains(line, "level=WARN msg=probe key=v") {
				t.Errorf("log line %q, want level=WARN msg=probe key=v", line)
			}
		})
	}
}

func TestLogFlagMistakes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"crawlcache", "--log-format", "xml", "validate", "x.yaml"}, `--log-format "xml": want text or json`},
		{"unknown level after the command", []string{"crawlcache", "validate", "x.yaml", "--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := App()
			var out bytes.Buffer
			app.Writer, app.ErrWriter = &out, &out
			var msg string
			code := ExitCode(app.Run(Intersperse(app, tt.args)), func(s string) { msg = s })
			if code != 2 || msg != tt.want {
				t.Errorf("exit %d, message %q; want 2, %q", code, msg, tt.want)
			}
		})
	}
}
