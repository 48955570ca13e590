package configs

import (
	"strings"
	"testing"
)

func TestChangesKey(t *testing.T) {
	base := "name: j\nseeds: [http://example.org/]\n"
	for _, tc := range []struct {
		name, yaml   string
		css, regexes []string
		err          string
	}{
		{"absent", "", nil, nil, ""},
		{"both", "changes:\n  ignore_css: ['.ts', 'span#nonce']\n  ignore_regex: ['nonce=\"[^\"]*\"']\n", []string{".ts", "span#nonce"}, []string{`nonce="[^"]*"`}, ""},
		{"bad selector", "changes:\n  ignore_css: ['a[']\n", nil, nil, "changes.ignore_css"},
		{"bad regex", "changes:\n  ignore_regex: ['(']\n", nil, nil, "invalid regexp"},
		{"unknown key", "changes:\n  ignore: [x]\n", nil, nil, "ignore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Parse("job.yaml", []byte(base+tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(j.Changes.IgnoreCSS, "|") != strings.Join(tc.css, "|") || strings.Join(j.Changes.IgnorePatterns, "|") != strings.Join(tc.regexes, "|") {
				t.Errorf("changes = %+v, want css %q regex %q", j.Changes, tc.css, tc.regexes)
			}
		})
	}
}
