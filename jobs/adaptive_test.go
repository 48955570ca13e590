package jobs

import (
	"regexp"
	"testing"

	"crawlcache/configs"
)

// TestCachePolicyComparesLikeChanges: under expire_after: adaptive a
// refetched body counts as unchanged for the page's revisit interval
// exactly when the run's change records call it unchanged: the same
// bytes, or the same once the job's changes rules remove what they
// ignore.
func TestCachePolicyComparesLikeChanges(t *testing.T) {
	const prev = `<html><body><h1>Price 10</h1><p class="stamp">built 10:00</p><i>nonce=abc</i></body></html>`
	tests := []struct {
		name  string
		rules configs.Changes
		next  string
		same  bool
	}{
		{"no rules, same bytes", configs.Changes{}, prev, true},
		{"no rules, a timestamp differs", configs.Changes{},
			`<html><body><h1>Price 10</h1><p class="stamp">built 11:00</p><i>nonce=abc</i></body></html>`, false},
		{"ignored element differs", configs.Changes{IgnoreCSS: []string{".stamp"}},
			`<html><body><h1>Price 10</h1><p class="stamp">built 11:00</p><i>nonce=abc</i></body></html>`, true},
		{"ignored pattern differs", configs.Changes{IgnoreRegex: []*regexp.Regexp{regexp.MustCompile(`nonce=\w+`)}},
			`<html><body><h1>Price 10</h1><p class="stamp">built 10:00</p><i>nonce=xyz</i></body></html>`, true},
		{"the content changed", configs.Changes{IgnoreCSS: []string{".stamp"}},
			`<html><body><h1>Price 12</h1><p class="stamp">built 11:00</p><i>nonce=abc</i></body></html>`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := cachePolicy(&configs.Job{Changes: tt.rules})
			unchanged := pol.Adaptive.Unchanged
			got := prev == tt.next
			if unchanged != nil {
				got = unchanged([]byte(prev), []byte(tt.next))
			}
			if got != tt.same {
				t.Errorf("unchanged = %v, want %v", got, tt.same)
			}
		})
	}
}
