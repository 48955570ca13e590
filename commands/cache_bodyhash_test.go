package commands

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// TestCacheShowBodyHash: `cache show` names the hash of the stored body,
// the one parse results and change records compare, in text and JSON. An
// entry the transport stored holds it; an entry of an earlier release
// (no body_sha256) gets it computed and says so.
func TestCacheShowBodyHash(t *testing.T) {
	cli := newCacheCLI(t)
	const body = "<p>the page</p>"
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, body)
	}))
	t.Cleanup(origin.Close)
	tr, err := cache.New(context.Background(), cli.s, cache.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get(origin.URL + "/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr.Close()
	cli.put("legacy", "https://example.org/old", 200, time.Now(), "old body", "text/html")

	hashOf := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	for _, tc := range []struct {
		url, body string
		stored    bool
	}{
		{origin.URL + "/page", body, true},
		{"https://example.org/old", "old body", false},
	} {
		want := hashOf(tc.body)
		out, code := cli.run("cache", "show", tc.url, "--headers-only")
		line := "body hash   sha256:" + want
		if !tc.stored {
			line += " (computed now: not stored with this entry; an earlier release's entry gets it at its next 304)"
		}
		if code != 0 || !strings.Contains(out, line+"\n") {
			t.Errorf("cache show %s: exit %d, want line %q in:\n%s", tc.url, code, line, out)
		}
		out, code = cli.run("cache", "show", tc.url, "--json", "--headers-only")
		var got struct {
			BodySHA256       string `json:"body_sha256"`
			BodySHA256Stored bool   `json:"body_sha256_stored"`
		}
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("cache show --json %s: exit %d, %v:\n%s", tc.url, code, err, out)
		}
		if got.BodySHA256 != want || got.BodySHA256Stored != tc.stored {
			t.Errorf("cache show --json %s: body_sha256 %q stored %v, want %q stored %v", tc.url, got.BodySHA256, got.BodySHA256Stored, want, tc.stored)
		}
	}
}
