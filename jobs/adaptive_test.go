package jobs

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"crawlcache/configs"
	"crawlcache/store/storetest"
	"crawlcache/testsite"
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

// TestAdaptiveJobRuns runs a job whose file says expire_after: adaptive
// once a simulated day over a site where 2 of 21 pages change every day:
// each run's own report finds exactly the 2 changed pages, and a page
// that never changes is asked for only on the days its learned interval
// makes it due (0, 1 and 3 of the first 4).
func TestAdaptiveJobRuns(t *testing.T) {
	ctx := context.Background()
	origin := testsite.NewChurn(20, 2)
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "adaptive", srv.URL, "cache: {expire_after: adaptive}\n")
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	r := &Runner{Store: storetest.Open(t), Logger: slog.New(slog.DiscardHandler), Now: clock}
	start := now
	for d := range 4 {
		origin.SetDay(d)
		mu.Lock()
		now = start.Add(time.Duration(d) * 24 * time.Hour)
		mu.Unlock()
		out, err := r.Run(ctx, job, StartOptions{})
		if err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
		c := out.Run.Counters
		if d > 0 && (c.Changed != 2 || c.Unchanged != c.Pages-2) {
			t.Errorf("day %d: counters %+v, want the 2 daily pages changed and the other %d unchanged", d, c, c.Pages-2)
		}
	}
	var asked []int
	for d := range 4 {
		if origin.Served(d, "/p/20")+origin.NotModified(d, "/p/20") > 0 {
			asked = append(asked, d)
		}
	}
	if want := []int{0, 1, 3}; !slices.Equal(asked, want) {
		t.Errorf("/p/20 (never changes) was requested on days %v, want %v", asked, want)
	}
}
