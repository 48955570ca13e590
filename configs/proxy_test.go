package configs

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestProxyKey: the proxy key takes a proxy URL with ${ENV} expanded, or
// none; a mistake names the file, line and key, and no message, JSON or
// log line ever shows the password.
func TestProxyKey(t *testing.T) {
	const head = "name: p\nseeds: ['http://example.org/']\n"
	tests := []struct {
		name     string
		proxy    string
		wantHost string // "" with wantNone or wantErr
		wantNone bool
		wantErr  string
	}{
		{name: "absent: the environment", proxy: ""},
		{name: "http proxy", proxy: "proxy: http://proxy.example:3128", wantHost: "proxy.example:3128"},
		{name: "credentials from the environment", proxy: "proxy: 'socks5://crawler:${API_TOKEN}@10.0.0.2:1080'", wantHost: "10.0.0.2:1080"},
		{name: "none", proxy: "proxy: none", wantNone: true},
		{name: "unset variable", proxy: "proxy: 'http://u:${NOPE_UNSET}@proxy.example:3128'", wantErr: "bad.yaml:3: proxy: environment variable NOPE_UNSET is not set"},
		{name: "bad scheme, password in clear", proxy: "proxy: 'ftp://u:hunter2-pw@proxy.example:21'", wantErr: `bad.yaml:3: proxy: must be a proxy URL`},
		{name: "bad port, password in clear", proxy: "proxy: 'http://u:hunter2-pw@proxy.example:31x8'", wantErr: `bad.yaml:3: proxy: must be a proxy URL`},
		{name: "no host", proxy: "proxy: 'http://'", wantErr: "it has no host"},
		{name: "a path", proxy: "proxy: 'http://proxy.example:3128/x'", wantErr: "it has a path"},
		{name: "not a string", proxy: "proxy: [a]", wantErr: "bad.yaml:3: proxy: must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			job, err := parseTest("bad.yaml", head+tc.proxy+"\n")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2-pw") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			host := ""
			if job.Proxy != nil {
				host = job.Proxy.Host
			}
			if host != tc.wantHost || job.NoProxy != tc.wantNone {
				t.Errorf("proxy host %q, none %v; want %q, %v", host, job.NoProxy, tc.wantHost, tc.wantNone)
			}
			if job.Proxy != nil && strings.Contains(tc.proxy, "API_TOKEN") {
				if pw, _ := job.Proxy.User.Password(); pw != testEnv["API_TOKEN"] {
					t.Errorf("password = %q, want the variable's value", pw)
				}
				b, _ := json.Marshal(job)
				var logs strings.Builder
				slog.New(slog.NewTextHandler(&logs, nil)).Info("job", "job", job)
				for where, s := range map[string]string{"JSON": string(b), "log": logs.String(), "%v": fmt.Sprintf("%v", job.LogValue())} {
					if strings.Contains(s, testEnv["API_TOKEN"]) {
						t.Errorf("the job's %s shows the proxy password: %s", where, s)
					}
				}
			}
		})
	}
}
