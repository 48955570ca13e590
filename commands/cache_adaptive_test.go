package commands

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"crawlcache/cache"
)

// TestCacheShowAdaptive: `cache show` of a page revisited adaptively
// shows its learned interval and when it falls due, in text and JSON. The
// page was fetched two days ago and confirmed by a 304 now: unchanged over
// two days, its interval is three.
func TestCacheShowAdaptive(t *testing.T) {
	cli := newCacheCLI(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>same</p>")
	}))
	t.Cleanup(origin.Close)
	url := origin.URL + "/page"
	validated := time.Now().UTC().Truncate(time.Second)
	for _, at := range []time.Time{validated.Add(-48 * time.Hour), validated} {
		now := func() time.Time { return at }
		tr, err := cache.New(context.Background(), cli.s, cache.Options{
			Policy: cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAdaptive}},
			Now:    now, RunStart: at, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		tr.Close()
	}
	out, code := cli.run("cache", "show", url, "--headers-only")
	for _, want := range []string{"interval    3d, learned (expire_after: adaptive)", "next due    ", "in 2d", "a run that starts up to 1h before counts it due"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cache show: exit %d, want %q in:\n%s", code, want, out)
		}
	}
	out, code = cli.run("cache", "show", url, "--json", "--headers-only")
	var got struct {
		IntervalSeconds int64      `json:"interval_seconds"`
		NextDue         *time.Time `json:"next_due"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("cache show --json: exit %d, %v:\n%s", code, err, out)
	}
	if want := validated.Add(72 * time.Hour); got.IntervalSeconds != 3*86400 || got.NextDue == nil || !got.NextDue.Equal(want) {
		t.Errorf("cache show --json: interval_seconds %d, next_due %v; want %d, %v", got.IntervalSeconds, got.NextDue, 3*86400, want)
	}
}
