package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/jobs"
	"crawlcache/parses"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// cacheCLI runs crawlcache commands against one embedded store, reached by
// its URI as a second process would.
type cacheCLI struct {
	t   *testing.T
	uri string
	s   *store.Store
}

// coll is the handle of the cache collection name.
func (c cacheCLI) coll(name string) *store.Collection {
	return c.s.Collection(cache.DefaultDatabase, name)
}

func newCacheCLI(t *testing.T) cacheCLI {
	s := storetest.OpenDirWith(t, t.TempDir(), migrations()...)
	return cacheCLI{t: t, uri: s.URI, s: s}
}

// run runs `crawlcache args... --store URI` and returns its output and
// exit code.
func (c cacheCLI) run(args ...string) (string, int) {
	c.t.Helper()
	var out bytes.Buffer
	app := App()
	app.Writer, app.ErrWriter = &out, &out
	var msgs []string
	err := app.Run(Intersperse(app, append(append([]string{"crawlcache"}, args...), "--store", c.uri)))
	code := ExitCode(err, func(s string) { msgs = append(msgs, s) })
	return out.String() + strings.Join(msgs, "\n"), code
}

// put stores a response as the transport would.
func (c cacheCLI) put(key, url string, status int, validated time.Time, body any, contentType string) {
	c.t.Helper()
	var size int
	switch b := body.(type) {
	case string:
		size = len(b)
	case bson.Binary:
		size = len(b.Data)
	}
	entry := cache.Entry{
		ID: key, URL: url, Method: "GET", Status: status, Proto: "HTTP/1.1",
		Headers: bson.M{"Content-Type": contentType, "Etag": `"v1"`}, Body: body, ContentType: contentType,
		Size: int64(size), CreatedAt: validated, ValidatedAt: validated, ETag: `"v1"`,
		Request: cache.RequestInfo{Method: "GET", URL: url},
	}
	if err := c.coll(cache.ResponsesCollection).Insert(context.Background(), entry); err != nil {
		c.t.Fatalf("insert %s: %v", key, err)
	}
}

func TestCacheTTLCommands(t *testing.T) {
	cli := newCacheCLI(t)
	steps := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"show before any ttl", []string{"cache", "ttl", "show"}, 0, []string{"ttl          none", "mechanism    sweeper (when set)"}},
		{"set", []string{"cache", "ttl", "set", "168h"}, 0, []string{"TTL set to 168h (7d)", "Enforced by the sweeper"}},
		{"set a different ttl without overwrite", []string{"cache", "ttl", "set", "24h"}, 1, []string{"TTL unchanged: it is already 168h (7d), not 24h. Run again with --overwrite to replace it."}},
		{"set the same ttl", []string{"cache", "ttl", "set", "7d"}, 0, []string{"TTL is already 168h (7d)"}},
		{"overwrite, flag after the argument", []string{"cache", "ttl", "set", "24h", "--overwrite"}, 0, []string{"TTL set to 24h"}},
		{"show", []string{"cache", "ttl", "show"}, 0, []string{"ttl          24h", "counts from  validated_at", "mechanism    sweeper (this store has no TTL indexes"}},
		{"not a duration", []string{"cache", "ttl", "set", "soon"}, 2, []string{`cache ttl set: "soon" is not a duration: use e.g. 168h, 7d, 90m or none`}},
		{"too short", []string{"cache", "ttl", "set", "10ms", "--overwrite"}, 2, []string{"the TTL must be between 1s and 68 years"}},
		{"missing argument", []string{"cache", "ttl", "set"}, 2, []string{"usage: crawlcache cache ttl set [flags] DURATION"}},
		{"unknown trailing flag", []string{"cache", "ttl", "set", "1h", "--force"}, 2, []string{"unknown flag --force"}},
		{"set none removes", []string{"cache", "ttl", "set", "none"}, 0, []string{"TTL removed"}},
		{"set after removal", []string{"cache", "ttl", "set", "1h"}, 0, []string{"TTL set to 1h"}},
		{"remove", []string{"cache", "ttl", "remove"}, 0, []string{"TTL removed"}},
		{"help after the argument runs nothing", []string{"cache", "ttl", "set", "1h", "--help"}, 0, []string{"USAGE:", "cache ttl set [command options] DURATION"}},
		{"still none", []string{"cache", "ttl", "show"}, 0, []string{"ttl          none"}},
	}
	for _, st := range steps {
		out, code := cli.run(st.args...)
		if code != st.wantCode {
			t.Errorf("%s: exit code %d, want %d; output:\n%s", st.name, code, st.wantCode, out)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q; got:\n%s", st.name, w, out)
			}
		}
	}
}

func TestCacheTTLShowJSON(t *testing.T) {
	cli := newCacheCLI(t)
	if out, code := cli.run("cache", "ttl", "set", "36h"); code != 0 {
		t.Fatalf("ttl set: %d %s", code, out)
	}
	out, code := cli.run("cache", "ttl", "show", "--json")
	if code != 0 {
		t.Fatalf("ttl show --json: exit %d: %s", code, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("ttl show --json is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{"set": true, "ttl": "36h", "ttl_seconds": float64(36 * 3600), "field": "validated_at", "mechanism": "sweeper"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ttl show --json: %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestCacheLsJSON(t *testing.T) {
	cli := newCacheCLI(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	cli.put("k1", "https://example.org/a", 200, now.Add(-time.Hour), "<p>a</p>", "text/html")
	cli.put("k2", "https://example.org/b", 404, now.Add(-72*time.Hour), "gone", "text/plain")
	cli.put("k3", "https://other.example/c.png", 200, now.Add(-time.Minute), bson.Binary{Data: []byte{0x89, 'P', 'N', 'G', 0}}, "image/png")
	if out, code := cli.run("cache", "ttl", "set", "48h"); code != 0 {
		t.Fatalf("ttl set: %d %s", code, out)
	}
	tests := []struct {
		name string
		args []string
		want []string // keys
	}{
		{"all", nil, []string{"k1", "k2", "k3"}},
		{"match", []string{"--match", "example.org/*"}, []string{"k1", "k2"}},
		{"expired", []string{"--expired"}, []string{"k2"}},
		{"limit", []string{"--limit", "1"}, []string{"k1"}},
		{"nothing", []string{"--match", "nowhere.example"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := cli.run(append([]string{"cache", "ls", "--json"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			var entries []struct {
				Key         string    `json:"key"`
				URL         string    `json:"url"`
				Status      int       `json:"status"`
				Size        int64     `json:"size"`
				ValidatedAt time.Time `json:"validated_at"`
				Expired     bool      `json:"expired"`
			}
			if err := json.Unmarshal([]byte(out), &entries); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			keys := []string{}
			for _, e := range entries {
				keys = append(keys, e.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tt.want, ",") {
				t.Errorf("keys %v, want %v", keys, tt.want)
			}
			if tt.name == "all" && (entries[1].Status != 404 || entries[1].Size != 4 || !entries[1].Expired || !entries[1].ValidatedAt.Equal(now.Add(-72*time.Hour))) {
				t.Errorf("k2: got %+v, want status 404, size 4, expired, validated 72h ago", entries[1])
			}
		})
	}
}

func TestCacheInspectCommands(t *testing.T) {
	cli := newCacheCLI(t)
	now := time.Now().UTC()
	cli.put("k1", "https://example.org/a", 200, now.Add(-time.Hour), "<p>hello</p>", "text/html")
	cli.put("k2", "https://example.org/b", 404, now.Add(-72*time.Hour), "gone", "text/plain")
	cli.put("k3", "https://other.example/c.png", 200, now.Add(-time.Minute), bson.Binary{Data: []byte{0x89, 'P', 'N', 'G', 0}}, "image/png")
	cli.put("k4", "http://127.0.0.1:8090/x", 200, now.Add(-time.Minute), "plain", "text/plain")
	steps := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"ls table", []string{"cache", "ls"}, 0, []string{"STATUS  SIZE", "200     12 B  fresh  1h ago", "https://example.org/a", "4 entries"}},
		{"stats", []string{"cache", "stats"}, 0, []string{"entries           4", "ttl               none", "200     3", "404     1"}},
		{"show text", []string{"cache", "show", "https://example.org/a"}, 0, []string{"key         k1", "HTTP/1.1 200 OK", "Content-Type: text/html", "<p>hello</p>"}},
		{"show headers only, flag after the url", []string{"cache", "show", "https://example.org/a", "--headers-only"}, 0, []string{"Etag: \"v1\""}},
		{"show without a scheme is http", []string{"cache", "show", "127.0.0.1:8090/x"}, 0, []string{"url         http://127.0.0.1:8090/x", "plain"}},
		{"ls bad pattern", []string{"cache", "ls", "--match", "["}, 2, []string{`cache ls --match "[": invalid glob pattern`}},
		{"purge bad pattern", []string{"cache", "purge", "--match", "["}, 2, []string{`cache purge --match "[": invalid glob pattern`}},
		{"show https page without a scheme", []string{"cache", "show", "example.org/a"}, 1, []string{"http://example.org/a is not in the cache (database http_cache); without a scheme http:// is assumed: write https:// for an https page"}},
		{"show missing", []string{"cache", "show", "https://example.org/nope"}, 1, []string{"https://example.org/nope is not in the cache"}},
		{"purge without criteria", []string{"cache", "purge"}, 2, []string{"cache purge: say what to delete: --expired"}},
		{"purge expired without a ttl", []string{"cache", "purge", "--expired"}, 0, []string{"No TTL is set", "deleted 0 cached responses"}},
		{"purge older than", []string{"cache", "purge", "--older-than", "2d"}, 0, []string{"deleted 1 cached response "}},
		{"purge match, json", []string{"cache", "purge", "--match", "*.png", "--json"}, 0, []string{`"deleted": 1`}},
		{"purge match without a scheme", []string{"cache", "purge", "--match", "127.0.0.1:8090/*"}, 0, []string{"deleted 1 cached response "}},
		{"clear without --yes", []string{"cache", "clear"}, 2, []string{"run it again with --yes"}},
		{"clear", []string{"cache", "clear", "--yes"}, 0, []string{"deleted 1 cached response from http_cache"}},
		{"ls empty", []string{"cache", "ls"}, 0, []string{"no cached entries match"}},
	}
	for _, st := range steps {
		out, code := cli.run(st.args...)
		if code != st.wantCode {
			t.Errorf("%s: exit code %d, want %d; output:\n%s", st.name, code, st.wantCode, out)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q; got:\n%s", st.name, w, out)
			}
		}
		if st.name == "show headers only, flag after the url" && strings.Contains(out, "hello") {
			t.Errorf("%s: body printed:\n%s", st.name, out)
		}
	}
}

func TestCacheShowBinaryJSON(t *testing.T) {
	cli := newCacheCLI(t)
	cli.put("k3", "https://other.example/c.png", 200, time.Now(), bson.Binary{Data: []byte{0x89, 'P', 'N', 'G', 0}}, "image/png")
	out, code := cli.run("cache", "show", "--json", "https://other.example/c.png")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got struct {
		Status     int                 `json:"status"`
		Headers    map[string][]string `json:"headers"`
		Body       *string             `json:"body"`
		BodyBase64 string              `json:"body_base64"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Status != 200 || got.Body != nil || got.BodyBase64 != "iVBORwA=" || got.Headers["Content-Type"][0] != "image/png" {
		t.Errorf("show --json of a binary body: got %+v, want status 200, body_base64 iVBORwA=, no body", got)
	}
}

// TestCacheShowBodyOnTerminal: a terminal never receives binary bytes or
// escape sequences from a stored body unless --raw asks for them.
func TestCacheShowBodyOnTerminal(t *testing.T) {
	const esc = "title\x1b]0;pwned\x07\x1b[2J"
	tests := []struct {
		name    string
		body    string
		binary  bool
		safe    bool
		want    string
		summary bool
	}{
		{"text on a terminal", "<p>hi</p>\n\tok\r\n", false, true, "<p>hi</p>\n\tok\r\n", false},
		{"text gets a final newline", "hi", false, true, "hi\n", false},
		{"escape sequences on a terminal", esc, false, true, "[body holding terminal control bytes: 19 bytes of text/html, not shown on a terminal; use --raw", true},
		{"C1 control on a terminal", "a\u009bb", false, true, "[body holding terminal control bytes", true},
		{"invalid UTF-8 on a terminal", "a\xffb", false, true, "[body holding terminal control bytes", true},
		{"binary on a terminal", "\x89PNG\x00", true, true, "[binary body: 5 bytes of text/html", true},
		{"escape sequences with --raw or redirected", esc, false, false, esc + "\n", false},
		{"binary with --raw or redirected", "\x89PNG\x00", true, false, "\x89PNG\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeBody(&out, []byte(tt.body), tt.binary, "text/html", tt.safe); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if tt.summary {
				if !strings.HasPrefix(got, tt.want) || strings.ContainsAny(got, "\x1b\x00\x07") {
					t.Errorf("got %q, want a summary starting %q and no control bytes", got, tt.want)
				}
			} else if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// sweepCLI is a cacheCLI whose cache has a TTL of 48h, with the jobs'
// parse records, for the tests of their sweep.
type sweepCLI struct {
	cacheCLI
	ps *store.Collection
}

func newSweepCLI(t *testing.T) sweepCLI {
	t.Helper()
	cli := newCacheCLI(t)
	if out, code := cli.run("cache", "ttl", "set", "48h"); code != 0 {
		t.Fatalf("ttl set: exit %d: %s", code, out)
	}
	return sweepCLI{cli, cli.s.Collection(jobs.Database, parses.DefaultCollection)}
}

// cached stores page key as the transport does: its response and its
// summary in pages, validated at validated.
func (c sweepCLI) cached(key string, validated time.Time) {
	c.t.Helper()
	url := "https://example.org/" + key
	c.put(key, url, 200, validated, "<p>"+key+"</p>", "text/html")
	if err := c.coll(cache.PagesCollection).Insert(context.Background(), cache.Page{ID: key, URL: url, Status: 200, ValidatedAt: validated}); err != nil {
		c.t.Fatal(err)
	}
}

// parse stores parse record id of the page cacheKey under rules, made at.
func (c sweepCLI) parse(id, cacheKey, rules string, at time.Time) {
	c.t.Helper()
	rec := parses.Record{ID: id, CacheKey: cacheKey, Rules: rules, ParsedAt: at, Links: []string{}, Items: []bson.D{}}
	if err := c.ps.Upsert(context.Background(), id, rec); err != nil {
		c.t.Fatal(err)
	}
}

// has reports whether parse record id is stored.
func (c sweepCLI) has(id string) bool {
	_, err := c.ps.Get(context.Background(), id)
	return err == nil
}

// TestCachePurgeExpiredSweepsParseRecords: `cache purge --expired` also
// deletes the parse records older than the TTL whose page is no longer
// cached, and keeps those of cached pages and the recent ones.
func TestCachePurgeExpiredSweepsParseRecords(t *testing.T) {
	cli := newSweepCLI(t)
	now := time.Now().UTC()
	cli.cached("k1", now.Add(-time.Hour))
	recs := map[string]struct {
		key  string
		at   time.Time
		kept bool
	}{
		"cached-old": {"k1", now.Add(-100 * time.Hour), true},
		"gone-old":   {"k-gone", now.Add(-100 * time.Hour), false},
		"gone-new":   {"k-gone-too", now.Add(-time.Hour), true},
	}
	for id, r := range recs {
		cli.parse(id, r.key, "", r.at)
	}
	out, code := cli.run("cache", "purge", "--expired", "--json")
	if code != 0 || !strings.Contains(out, `"parses_deleted": 1`) {
		t.Fatalf("purge --expired: exit %d: %s; want 1 parse record deleted", code, out)
	}
	for id, r := range recs {
		if cli.has(id) != r.kept {
			t.Errorf("parse record %s: stored %v; want kept %v", id, cli.has(id), r.kept)
		}
	}
}

// TestSchedulerSweepsParseRecordsEveryTenthOfTheTTL: the scheduler's
// sweeper deletes the parse records older than the TTL of pages no longer
// cached, and reads them again only a tenth of the TTL later.
func TestSchedulerSweepsParseRecordsEveryTenthOfTheTTL(t *testing.T) {
	ctx := context.Background()
	cli := newSweepCLI(t)
	orphan := func(id string) { cli.parse(id, "k-"+id, "", time.Now().Add(-100*time.Hour)) }
	there := cli.has
	var logs bytes.Buffer
	sw := &sweeper{s: cli.s, log: slog.New(slog.NewTextHandler(&logs, nil))}
	orphan("first")
	sw.once(ctx)
	if there("first") || !strings.Contains(logs.String(), "swept parse records") {
		t.Fatalf("after a sweep: orphan record kept (%v), log %q", there("first"), logs.String())
	}
	orphan("second")
	sw.once(ctx)
	if !there("second") {
		t.Errorf("swept again at once; want the next sweep a tenth of the TTL (4.8h) later")
	}
	sw.parsesAt = time.Now().Add(-5 * time.Hour)
	sw.once(ctx)
	if there("second") {
		t.Errorf("orphan record kept by the sweep a tenth of the TTL later")
	}
}

// TestSweepDropsParseRecordsOfRulesNoLongerUsed: an old parse record of a
// page still cached goes when no run since the TTL used its rules (the
// job's selectors changed), and stays while a worker of an earlier release,
// which did not record its rules, ran in that span.
func TestSweepDropsParseRecordsOfRulesNoLongerUsed(t *testing.T) {
	ctx := context.Background()
	cli := newSweepCLI(t)
	now := time.Now().UTC()
	cli.cached("k1", now.Add(-time.Hour))
	cli.cached("k2", now.Add(-time.Hour))
	for id, rules := range map[string]string{"current": "rules-now", "former": "rules-before"} {
		cli.parse(id, "k1", rules, now.Add(-100*time.Hour))
	}
	runs := jobs.NewRuns(cli.s, nil)
	join := func(runID, rules string) {
		t.Helper()
		if err := runs.Create(ctx, &jobs.Run{ID: runID, Job: "shop", Status: jobs.StatusCompleted, Started: now, Updated: now}); err != nil {
			t.Fatal(err)
		}
		if err := runs.JoinWorker(ctx, runID, jobs.Worker{ID: "w", ParseRules: rules}); err != nil {
			t.Fatal(err)
		}
	}
	there := cli.has

	join("shop-old-release", "") // a worker that did not record its rules
	join("shop-1", "rules-now")
	if out, code := cli.run("cache", "purge", "--expired"); code != 0 || !there("former") {
		t.Fatalf("with a run of unknown rules: exit %d, %s; record of the former rules deleted (%v), want kept", code, out, !there("former"))
	}
	if err := cli.s.Collection(jobs.Database, jobs.RunsCollection).Delete(ctx, "shop-old-release"); err != nil {
		t.Fatal(err)
	}
	if out, code := cli.run("cache", "purge", "--expired", "--json"); code != 0 || !strings.Contains(out, `"parses_deleted": 1`) {
		t.Fatalf("purge --expired: exit %d: %s; want the record of the former rules deleted", code, out)
	}
	if there("former") || !there("current") {
		t.Errorf("after the sweep: former rules' record there %v, current rules' %v; want only the current", there("former"), there("current"))
	}
}

// TestParseSweepOnPreviousReleaseData: on a data directory written by an
// earlier release, the sweep of parse records keeps every old record of a
// cached page (under its unbound key) while no run in the span recorded its rules (none ran, or a
// worker of that release did), and reads that release's run records; once
// only a run of this release is in the span, records of other rules go.
func TestParseSweepOnPreviousReleaseData(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, migrations()...)
	admin := cache.NewAdmin(s, cache.DefaultDatabase, nil)
	ps := s.Collection(jobs.Database, parses.DefaultCollection)
	runsColl := s.Collection(jobs.Database, jobs.RunsCollection)
	count := func() (n int) {
		t.Helper()
		if err := ps.ScanIDPrefix(ctx, "", func(bson.Raw) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sweep := func(want int) {
		t.Helper()
		before := count()
		// A minute's TTL: every record of the fixture is old.
		if n, err := sweepParses(ctx, s, admin, time.Minute); err != nil || n != int64(want) || count() != before-want {
			t.Fatalf("sweep = %d, %v (%d of %d left); want %d deleted", n, err, count(), before, want)
		}
	}
	if count() != 11 {
		t.Fatalf("fixture holds %d parse records, want 11", count())
	}
	// No run in the span: rules are not judged. Every page is cached but
	// fixture-private's, fetched with a credential and so cached under a
	// key bound to it, not the one its record names: that record goes.
	var private string
	if err := ps.ScanIDPrefix(ctx, "", func(raw bson.Raw) error {
		if u, _ := raw.Lookup("url").StringValueOK(); strings.HasPrefix(u, "http://127.0.0.1:18089/products/3?") {
			private, _ = raw.Lookup("_id").StringValueOK()
		}
		return nil
	}); err != nil || private == "" {
		t.Fatalf("no parse record of fixture-private's page (%v)", err)
	}
	sweep(1)
	if _, err := ps.Get(ctx, private); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the record of the page fetched with a credential: %v, want swept", err)
	}

	runs := jobs.NewRuns(s, nil)
	old, err := runs.List(ctx, jobs.ListOptions{Job: "fixture-public", Limit: 1})
	if err != nil || len(old) != 1 || len(old[0].Workers) == 0 {
		t.Fatalf("the fixture's last run of fixture-public: %+v, %v", old, err)
	}
	setUpdated := func(at time.Time) {
		t.Helper()
		if _, err := runsColl.UpdateOne(ctx, bson.D{{Key: "_id", Value: old[0].ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "updated", Value: at}}}}, false); err != nil {
			t.Fatal(err)
		}
	}
	setUpdated(time.Now()) // a worker of that release, still reporting
	if err := runs.Create(ctx, &jobs.Run{ID: "fixture-public-new", Job: "fixture-public", Status: jobs.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := runs.JoinWorker(ctx, "fixture-public-new", jobs.Worker{ID: "w", ParseRules: "other rules"}); err != nil {
		t.Fatal(err)
	}
	sweep(0) // a worker in the span did not record its rules

	setUpdated(old[0].Updated) // only this release's run is left in the span
	sweep(10)
}
