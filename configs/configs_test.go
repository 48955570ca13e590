package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crawlcache/cache"
)

// loadTest loads a testdata file with testEnv as the environment.
func loadTest(t *testing.T, path string) *Job {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	job, err := parseTest(path, string(data))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return job
}

func TestDefaults(t *testing.T) {
	job := loadTest(t, "testdata/minimal.yaml")
	data, _ := os.ReadFile("testdata/minimal.yaml")
	sum := sha256.Sum256(data)
	want := &Job{
		Name:           "minimal",
		Seeds:          []string{"https://Example.org:8443/start", "http://www.example.org/"},
		AllowedDomains: []string{"example.org", "www.example.org"},
		Follow:         []string{"a[href]"},
		UserAgent:      "crawlcache/0.1",
		Robots:         true,
		Timeout:        30 * time.Second,
		MaxBodySize:    10 << 20,
		Rate:           Rate{PerHost: 2, Burst: 1, Parallelism: 8},
		Retry:          Retry{Max: 3, Backoff: time.Second},
		MaxErrorRatio:  0.1,
		Source:         "testdata/minimal.yaml",
		Hash:           hex.EncodeToString(sum[:]),
		nameLine:       1,
	}
	if !reflect.DeepEqual(job, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *job, *want)
	}
	if !reflect.DeepEqual(job.Cache, cache.Policy{}) {
		t.Errorf("cache policy = %+v, want the zero Policy (crawler policy defaults)", job.Cache)
	}
	if job.Cache.AllowableCodes != nil || job.Cache.IgnoredParameters != nil {
		t.Errorf("absent lists must stay nil so cache defaults apply")
	}
}

func TestEveryKey(t *testing.T) {
	job := loadTest(t, "testdata/full.yaml")
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", job.Name, "full.v2"},
		{"seeds", job.Seeds, []string{"https://example.org/docs/"}},
		{"allowed_domains", job.AllowedDomains, []string{"example.org", "example.net"}},
		{"max_depth", job.MaxDepth, 3},
		{"max_pages", job.MaxPages, 500},
		{"max_error_ratio", job.MaxErrorRatio, 0.25},
		{"include", job.IncludePatterns, []string{`^https://example\.org/docs/`}},
		{"include compiled", job.Include[0].String(), `^https://example\.org/docs/`},
		{"exclude", job.ExcludePatterns, []string{`\.pdf$`, "/private/"}},
		{"exclude compiled", len(job.Exclude), 2},
		{"follow", job.Follow, []string{"a[href]", "link[rel=next]"}},
		{"user_agent", job.UserAgent, "full-test/1.0"},
		{"headers", job.Headers, http.Header{
			"Authorization": {"Bearer s3cr3t-token"},
			"X-Literal":     {"${NOT_EXPANDED} and $5"},
		}},
		{"robots", job.Robots, false},
		{"timeout", job.Timeout, 90 * time.Second},
		{"max_body_size", job.MaxBodySize, int64(2 << 20)},
		{"rate", job.Rate, Rate{PerHost: 0.5, Burst: 4, Parallelism: 16, PerHostParallelism: 2}},
		{"retry", job.Retry, Retry{Max: 0, Backoff: 250 * time.Millisecond}},
		{"cache", job.Cache, cache.Policy{
			ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: 0},
			URLsExpireAfter: []cache.URLExpiry{
				{Pattern: "example.org/news/*", Expiry: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}},
				{Pattern: "example.org/static/*", Expiry: cache.Expiry{Kind: cache.ExpireNever}},
				{Pattern: "example.org/search*", Expiry: cache.Expiry{Kind: cache.ExpireDoNotCache}},
			},
			CacheControl:         true,
			StaleIfError:         10 * time.Minute,
			StaleWhileRevalidate: 30 * time.Second,
			OnlyIfCached:         true,
			AllowableCodes:       []int{200, 404},
			AllowableMethods:     []string{"GET"},
			MatchHeaders:         []string{"Accept-Language"},
			IgnoredParameters:    []string{},
			Credentials:          cache.CredentialsJob,
		}},
		{"ttl", []any{job.TTL, job.TTLSet}, []any{time.Duration(0), true}},
		{"extract", job.Extract, Extract{Item: "article", Fields: []Field{
			{Name: "title", CSS: "h1", Text: true},
			{Name: "links", CSS: "a", Attr: "href", All: true},
			{Name: "body", CSS: ".content", HTML: true},
			{Name: "self", Text: true},
		}}},
		{"outputs", job.Outputs, []Output{
			{Kind: "mongodb", Collection: "docs"},
			{Kind: "jsonl", Path: "out/docs.jsonl"},
			{Kind: "csv", Path: "out/docs.csv"},
		}},
		{"schedule", job.Schedule, "0 */6 * * *"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", c.name, c.got, c.want)
		}
	}
}

func TestValueForms(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(*Job) (got, want any)
	}{
		{"stale_if_error true means no limit", "cache: {stale_if_error: true}",
			func(j *Job) (any, any) { return j.Cache.StaleIfError < 0, true }},
		{"stale_if_error false disables", "cache: {stale_if_error: false}",
			func(j *Job) (any, any) { return j.Cache.StaleIfError, time.Duration(0) }},
		{"bare zero duration", "cache: {expire_after: 0}",
			func(j *Job) (any, any) { return j.Cache.ExpireAfter, cache.Expiry{Kind: cache.ExpireAfter} }},
		{"ttl duration", "cache: {ttl: 168h}",
			func(j *Job) (any, any) { return []any{j.TTL, j.TTLSet}, []any{168 * time.Hour, true} }},
		{"max_body_size in bytes", "max_body_size: 1_000",
			func(j *Job) (any, any) { return j.MaxBodySize, int64(1000) }},
		{"max_body_size in KB", "max_body_size: 5KB",
			func(j *Job) (any, any) { return j.MaxBodySize, int64(5000) }},
		{"max_body_size zero is no limit", "max_body_size: 0",
			func(j *Job) (any, any) { return j.MaxBodySize, int64(0) }},
		{"integer rate", "rate: {per_host: 3}",
			func(j *Job) (any, any) { return j.Rate.PerHost, 3.0 }},
		{"empty follow crawls only seeds", "follow: []",
			func(j *Job) (any, any) { return j.Follow != nil && len(j.Follow) == 0, true }},
		{"null mongodb output takes the default collection", "outputs: [mongodb: ]",
			func(j *Job) (any, any) { return j.Outputs, []Output{{Kind: "mongodb", Collection: "items"}} }},
		{"descriptor schedule", "schedule: '@every 6h'",
			func(j *Job) (any, any) { return j.Schedule, "@every 6h" }},
		{"cron with time zone", "schedule: 'CRON_TZ=UTC 30 2 * * 1-5'",
			func(j *Job) (any, any) { return j.Schedule, "CRON_TZ=UTC 30 2 * * 1-5" }},
		{"seed host lowercased into allowed_domains", "allowed_domains: [EXAMPLE.org]",
			func(j *Job) (any, any) { return j.AllowedDomains, []string{"example.org"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := parseTest("t.yaml", ok+tt.src+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tt.check(job); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestAliases(t *testing.T) {
	job, err := parseTest("t.yaml", ok+"include: &pats ['/a/']\nexclude: *pats\nrate: {burst: &n 3, parallelism: *n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(job.ExcludePatterns, []string{"/a/"}) || job.Rate.Parallelism != 3 {
		t.Errorf("aliases not resolved: exclude %q, parallelism %d", job.ExcludePatterns, job.Rate.Parallelism)
	}
}

func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped configs: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("Load(%s): %v", f, err)
			}
		})
	}
	t.Run("example matches make run", func(t *testing.T) {
		j, err := Load("example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := j.Summary(), `job "example", 1 seed, schedule "@every 6h"`; got != want {
			t.Errorf("summary %q, want %q", got, want)
		}
		checks := []struct {
			name      string
			got, want any
		}{
			{"seeds", j.Seeds, []string{"http://127.0.0.1:8089/"}},
			{"max_depth", j.MaxDepth, 0},
			{"rate", j.Rate, Rate{PerHost: 50, Burst: 1, Parallelism: 8}},
			{"expire_after", j.Cache.ExpireAfter, cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}},
			{"ttl", j.TTL, 168 * time.Hour},
			{"item", j.Extract.Item, "article.product"},
			{"fields", j.Extract.Fields, []Field{
				{Name: "title", CSS: "h2", Text: true},
				{Name: "price", CSS: ".price", Text: true},
				{Name: "link", CSS: "a", Attr: "href"},
			}},
			{"outputs", j.Outputs, []Output{
				{Kind: "mongodb", Collection: "items"},
				{Kind: "jsonl", Path: "out/example.jsonl"},
				{Kind: "csv", Path: "out/example.csv"},
			}},
		}
		for _, c := range checks {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
			}
		}
	})
	t.Run("books is polite", func(t *testing.T) {
		j, err := Load("books.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if j.Rate.PerHost != 1 || !j.Robots || j.MaxPages != 200 || j.Extract.Item != "article.product_pod" {
			t.Errorf("books: rate %v robots %v max_pages %d item %q", j.Rate.PerHost, j.Robots, j.MaxPages, j.Extract.Item)
		}
	})
}

func TestLoadDir(t *testing.T) {
	jobs, err := LoadDir("testdata/dir")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name+"="+filepath.Base(j.Source))
	}
	if want := []string{"alpha=a.yaml", "beta=b.yml"}; !slices.Equal(names, want) {
		t.Errorf("jobs %q, want %q", names, want)
	}
}

func TestLoadDirReportsDuplicatesAndErrors(t *testing.T) {
	jobs, err := LoadDir("testdata/dupdir")
	if len(jobs) != 2 {
		t.Errorf("loaded %d jobs, want the 2 valid ones", len(jobs))
	}
	var got []string
	for _, e := range Errors(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`testdata/dupdir/three.yaml:2: seeds[0]: must be an absolute http(s) URL, got "nope"`,
		`testdata/dupdir/two.yaml:2: name: duplicate job name "same" (also in testdata/dupdir/one.yaml)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yaml")
	if got, want := err.Error(), "testdata/nope.yaml: cannot read: no such file or directory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseHeadersFromEnvironment(t *testing.T) {
	t.Setenv("CRAWLCACHE_TEST_TOKEN", "abc")
	job, err := Parse("t.yaml", []byte(ok+"headers: {Authorization: 'Bearer ${CRAWLCACHE_TEST_TOKEN}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := job.Headers.Get("Authorization"); got != "Bearer abc" {
		t.Errorf("Authorization = %q, want %q", got, "Bearer abc")
	}
	// The hash is of the file bytes, so a rotated secret is not a new config.
	t.Setenv("CRAWLCACHE_TEST_TOKEN", "xyz")
	job2, err := Parse("t.yaml", []byte(ok+"headers: {Authorization: 'Bearer ${CRAWLCACHE_TEST_TOKEN}'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if job.Hash != job2.Hash {
		t.Errorf("hash depends on the environment")
	}
}

func TestAllowsHost(t *testing.T) {
	j := &Job{AllowedDomains: []string{"example.org"}}
	for host, want := range map[string]bool{
		"example.org":      true,
		"EXAMPLE.org":      true,
		"www.example.org":  true,
		"example.org.":     true,
		"badexample.org":   false,
		"example.org.evil": false,
		"":                 false,
	} {
		if got := j.AllowsHost(host); got != want {
			t.Errorf("AllowsHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestFollowsURL(t *testing.T) {
	job, err := parseTest("t.yaml", ok+"include: ['/docs/', '/blog/']\nexclude: ['\\.pdf$']\n")
	if err != nil {
		t.Fatal(err)
	}
	for u, want := range map[string]bool{
		"https://example.org/docs/a":     true,
		"https://example.org/blog/b":     true,
		"https://example.org/docs/a.pdf": false,
		"https://example.org/other":      false,
	} {
		if got := job.FollowsURL(u); got != want {
			t.Errorf("FollowsURL(%q) = %v, want %v", u, got, want)
		}
	}
	if !(&Job{}).FollowsURL("https://anything/") {
		t.Errorf("no filters must follow everything")
	}
}

func TestSummary(t *testing.T) {
	j := &Job{Name: "x", Seeds: []string{"a", "b", "c"}, Schedule: "@every 6h"}
	if got, want := j.Summary(), `job "x", 3 seeds, schedule "@every 6h"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	j.Schedule = ""
	if got, want := j.Summary(), `job "x", 3 seeds`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJobLogValueHidesHeaders(t *testing.T) {
	job, err := parseTest("t.yaml", ok+"headers: {Authorization: 'Bearer ${API_TOKEN}'}\n")
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("run", "job", job)
	if strings.Contains(buf.String(), "s3cr3t") || !strings.Contains(buf.String(), "job.name=t") {
		t.Errorf("log line %q: want the job name and no header value", buf.String())
	}
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cr3t") {
		t.Errorf("JSON of a job contains a header value: %s", data)
	}
}
