package commands

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"crawlcache/cache"
)

// TestCacheShowsCredentialBinding: `cache show` and `cache ls --json` say
// that an entry is bound to a credential, and never print the credential.
func TestCacheShowsCredentialBinding(t *testing.T) {
	cli := newCacheCLI(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "page")
	}))
	t.Cleanup(origin.Close)
	tr, err := cache.New(context.Background(), cli.s, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, origin.URL+"/private", nil)
	req.Header.Set("Authorization", "Bearer TOPSECRET")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cli.put("legacy", "https://example.org/old", 200, time.Now(), "old", "text/plain")
	if _, err := cli.coll(cache.ResponsesCollection).UpdateOne(context.Background(),
		map[string]string{"_id": "legacy"}, map[string]any{"$set": map[string]any{"request.headers": map[string]string{"Cookie": "REDACTED"}}}, false); err != nil {
		t.Fatal(err)
	}

	out, code := cli.run("cache", "show", origin.URL+"/private")
	if code != 0 || !strings.Contains(out, "credential  bound to the Authorization it was fetched with (id ") {
		t.Errorf("cache show: exit %d, want a credential line naming the binding; got:\n%s", code, out)
	}
	out, _ = cli.run("cache", "show", "https://example.org/old")
	if !strings.Contains(out, "fetched with Cookie by an earlier release, not bound: served to no one") {
		t.Errorf("cache show of an entry stored before binding: got:\n%s", out)
	}
	out, code = cli.run("cache", "show", "--json", "--headers-only", origin.URL+"/private")
	var shown struct {
		Credential *cache.CredentialInfo `json:"credential"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.Credential == nil || shown.Credential.BoundTo != cache.BoundToToken {
		t.Errorf("cache show --json: exit %d, %v, credential %+v; want bound_to token", code, err, shown.Credential)
	}
	out, code = cli.run("cache", "ls", "--json")
	var listed []struct {
		URL        string                `json:"url"`
		Credential *cache.CredentialInfo `json:"credential"`
	}
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil {
		t.Fatalf("cache ls --json: exit %d, %v:\n%s", code, err, out)
	}
	for _, e := range listed {
		want := cache.BoundToToken
		if e.URL == "https://example.org/old" {
			want = cache.BoundToUnknown
		}
		if e.Credential == nil || e.Credential.BoundTo != want || len(e.Credential.Headers) != 1 {
			t.Errorf("cache ls --json %s: credential %+v, want bound_to %s with its header name", e.URL, e.Credential, want)
		}
	}
	for _, args := range [][]string{{"cache", "show", origin.URL + "/private"}, {"cache", "ls", "--json"}, {"cache", "show", "--json", origin.URL + "/private"}} {
		if out, _ := cli.run(args...); strings.Contains(out, "TOPSECRET") {
			t.Errorf("%v prints the credential:\n%s", args, out)
		}
	}
}
