package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/testsite"
)

// testsiteServer serves h on a loopback httptest server and returns its URL.
func testsiteServer(t *testing.T, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// checkOnce asserts that the origin sent every body at most once and every
// content page exactly once, and that every item of the run is stored once
// in MongoDB and once in the JSONL file.
func checkOnce(t *testing.T, s *store.Store, site *testsite.Site, base, runID, jsonl string) {
	t.Helper()
	ctx := context.Background()
	counts := site.Counts()
	for _, p := range counts.Paths() {
		if n := counts.Status(p, http.StatusOK); n > 1 {
			t.Errorf("origin sent %s %d times, want once", p, n)
		}
	}
	for _, u := range site.URLs(base) {
		p := strings.TrimPrefix(u, base)
		if n := counts.Status(p, http.StatusOK); n != 1 {
			t.Errorf("origin sent %s %d times, want once", p, n)
		}
	}

	var docs []bson.M
	if err := s.Collection(Database, "items").All(ctx, bson.D{{Key: "run_id", Value: runID}}, store.FindOptions{}, &docs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(jsonl)
	if err != nil {
		t.Fatalf("jsonl output: %v", err)
	}
	defer f.Close()
	lines := map[string]int{}
	urls := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var it struct {
			ID  string `json:"_id"`
			URL string `json:"url"`
		}
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			t.Fatalf("jsonl line %q: %v", sc.Text(), err)
		}
		lines[it.ID]++
		urls[it.URL] = true
	}
	total := 0
	for id, n := range lines {
		total += n
		if n != 1 {
			t.Errorf("item %s is %d times in the JSONL file, want once", id, n)
		}
	}
	if len(docs) != len(lines) || len(docs) == 0 {
		t.Errorf("items: %d in MongoDB, %d distinct in JSONL (%d lines); want the same, > 0", len(docs), len(lines), total)
	}
	for _, u := range site.URLs(base) {
		if !urls[u] {
			t.Errorf("no item from %s", u)
			break
		}
	}
}

// poll calls cond until it is true or limit passes (then the test fails).
func poll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
