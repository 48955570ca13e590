package commands

import (
	"slices"
	"testing"
)

func TestIntersperse(t *testing.T) {
	app := App()
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"flags after the file", []string{"cc", "run", "x.yaml", "--json", "--data-dir", "D"}, []string{"cc", "run", "--json", "--data-dir", "D", "x.yaml"}},
		{"flags first unchanged", []string{"cc", "run", "--json", "x.yaml"}, []string{"cc", "run", "--json", "x.yaml"}},
		{"global flag before the command", []string{"cc", "--log-level", "debug", "run", "x.yaml", "--json"}, []string{"cc", "--log-level", "debug", "run", "--json", "x.yaml"}},
		{"global flag after the command", []string{"cc", "run", "--log-level", "debug", "x.yaml"}, []string{"cc", "--log-level", "debug", "run", "x.yaml"}},
		{"global flag after the file", []string{"cc", "run", "x.yaml", "--json", "--log-level=warn"}, []string{"cc", "--log-level=warn", "run", "--json", "x.yaml"}},
		{"global flag between subcommands", []string{"cc", "cache", "--log-level", "debug", "ttl", "show"}, []string{"cc", "--log-level", "debug", "cache", "ttl", "show"}},
		{"nested subcommand", []string{"cc", "cache", "ttl", "set", "168h", "--overwrite"}, []string{"cc", "cache", "ttl", "set", "--overwrite", "168h"}},
		{"flag=value form", []string{"cc", "cache", "show", "http://a/", "--data-dir=D"}, []string{"cc", "cache", "show", "--data-dir=D", "http://a/"}},
		{"after -- stays positional", []string{"cc", "validate", "a.yaml", "--", "-odd.yaml"}, []string{"cc", "validate", "a.yaml", "--", "-odd.yaml"}},
		{"no command", []string{"cc", "--help"}, []string{"cc", "--help"}},
		{"help after the argument", []string{"cc", "cache", "ttl", "set", "1h", "--help"}, []string{"cc", "cache", "ttl", "set", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Intersperse(app, tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Intersperse(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
