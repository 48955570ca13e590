package commands

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// runOut runs the app on args (after Intersperse, as main does) and returns
// its output and exit code.
func runOut(t *testing.T, args ...string) (string, int) {
	t.Helper()
	app := App()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	var msgs []string
	code := ExitCode(app.Run(Intersperse(app, append([]string{"crawlcache"}, args...))), func(s string) { msgs = append(msgs, s) })
	return out.String() + strings.Join(msgs, "\n"), code
}

func TestCompletionScripts(t *testing.T) {
	tests := []struct {
		shell string
		code  int
		want  []string
	}{
		{"bash", 0, []string{"complete -o bashdefault -o default -F _crawlcache_bash_autocomplete crawlcache", "--generate-bash-completion"}},
		{"zsh", 0, []string{"#compdef crawlcache", "compdef _crawlcache_zsh_autocomplete crawlcache"}},
		{"fish", 0, []string{"complete -c crawlcache", "-f -l log-format", "__fish_seen_subcommand_from ttl", "completion"}},
		{"tcsh", 2, []string{`completion: unknown shell "tcsh": want bash, zsh or fish`}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			out, code := runOut(t, "completion", tt.shell)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q; got:\n%s", w, out)
				}
			}
		})
	}
	if out, code := runOut(t, "completion"); code != 2 {
		t.Errorf("completion without a shell: exit %d, want 2; output:\n%s", code, out)
	}
}

// TestCompletionCandidates: what the scripts receive when they ask the
// program. A request ending in --generate-bash-completion never runs the
// command, even with a positional argument before it.
func TestCompletionCandidates(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"commands", []string{"--generate-bash-completion"}, []string{"run", "cache", "completion"}, nil},
		{"subcommands", []string{"cache", "--generate-bash-completion"}, []string{"ttl", "show", "purge"}, []string{"run"}},
		{"flags of a leaf command", []string{"run", "--js", "--generate-bash-completion"}, []string{"--json"}, []string{"help"}},
		{"files after a leaf command", []string{"run", "--generate-bash-completion"}, nil, []string{"help", "--json"}},
		{"after a file, nothing runs", []string{"run", "missing.yaml", "--generate-bash-completion"}, nil, []string{"missing.yaml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// urfave/cli reads the word being completed from os.Args.
			prev := os.Args
			os.Args = append([]string{"crawlcache"}, tt.args...)
			t.Cleanup(func() { os.Args = prev })
			out, code := runOut(t, tt.args...)
			if code != 0 {
				t.Errorf("exit %d, want 0; output:\n%s", code, out)
			}
			got := strings.Fields(out)
			for _, w := range tt.want {
				if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
					t.Errorf("candidates %q lack %q", got, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output %q contains %q", out, n)
				}
			}
		})
	}
}
