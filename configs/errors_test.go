package configs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// testEnv is the environment seen by parseTest: tests must not depend on
// the real one.
var testEnv = map[string]string{"API_TOKEN": "s3cr3t-token"}

func parseTest(name, src string) (*Job, error) {
	return parse(name, []byte(src), func(k string) (string, bool) {
		v, ok := testEnv[k]
		return v, ok
	})
}

// errorLines parses src as bad.yaml and returns every error message.
func errorLines(t *testing.T, src string) []string {
	t.Helper()
	job, err := parseTest("bad.yaml", src)
	if err == nil {
		t.Fatalf("parse succeeded, want errors; job = %+v", job)
	}
	if job != nil {
		t.Errorf("parse returned a job along with errors")
	}
	var lines []string
	for _, e := range Errors(err) {
		lines = append(lines, e.Error())
	}
	if got, want := strings.Join(lines, "\n"), err.Error(); got != want {
		t.Errorf("Errors() does not cover the joined error:\n got %q\nwant %q", got, want)
	}
	return lines
}

// ok is a valid prefix so cases only show the mistake (lines 1-2).
const ok = "name: t\nseeds: ['http://example.org/']\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// unknown keys
		{"unknown top-level key with suggestion", ok + "max_deph: 3\n",
			[]string{"bad.yaml:3: max_deph: unknown key (did you mean max_depth?)"}},
		{"unknown nested key", ok + "rate:\n  per_hots: 3\n",
			[]string{"bad.yaml:4: rate.per_hots: unknown key (did you mean per_host?)"}},
		{"unknown key without suggestion", ok + "colour: red\n",
			[]string{"bad.yaml:3: colour: unknown key"}},
		{"unknown output kind", ok + "outputs:\n  - parquet: {path: x}\n",
			[]string{"bad.yaml:4: outputs[0].parquet: unknown key"}},
		{"unknown field option", ok + "extract:\n  fields:\n    t: {css: h1, txt: true}\n",
			[]string{"bad.yaml:5: extract.fields.t.txt: unknown key (did you mean text?)"}},
		{"duplicate key", "name: a\nname: b\nseeds: ['http://example.org/']\n",
			[]string{"bad.yaml:2: name: duplicate key (first at line 1)"}},
		{"merge key", ok + "rate:\n  <<: {burst: 2}\n",
			[]string{"bad.yaml:4: rate: merge keys (<<) are not supported"}},

		// wrong types
		{"string where a number is expected", ok + "rate:\n  per_host: fast\n",
			[]string{`bad.yaml:4: rate.per_host: must be a number > 0, got "fast"`}},
		{"quoted integer", ok + "max_depth: \"3\"\n",
			[]string{`bad.yaml:3: max_depth: must be an integer >= 0, got "3"`}},
		{"float where an integer is expected", ok + "rate: {parallelism: 2.5}\n",
			[]string{`bad.yaml:3: rate.parallelism: must be an integer >= 1, got 2.5`}},
		{"negative per-host parallelism", ok + "rate: {per_host_parallelism: -1}\n",
			[]string{`bad.yaml:3: rate.per_host_parallelism: must be an integer >= 0, got -1`}},
		{"string where a bool is expected", ok + "robots: \"yes\"\n",
			[]string{`bad.yaml:3: robots: must be true or false, got "yes"`}},
		{"scalar where a list is expected", "name: t\nseeds: http://example.org/\n",
			[]string{`bad.yaml:2: seeds: must be a list of strings, got "http://example.org/"`}},
		{"scalar where a mapping is expected", ok + "rate: 5\n",
			[]string{"bad.yaml:3: rate: must be a mapping, got 5"}},
		{"mapping where a string is expected", ok + "user_agent: {a: b}\n",
			[]string{"bad.yaml:3: user_agent: must be a string, got a mapping"}},
		{"list item of the wrong type", ok + "follow: [a, [b]]\n",
			[]string{"bad.yaml:3: follow[1]: must be a string, got a list"}},
		{"empty value", ok + "max_pages:\n",
			[]string{"bad.yaml:3: max_pages: must be an integer >= 0, got an empty value"}},
		{"infinite rate", ok + "rate: {per_host: .inf}\n",
			[]string{"bad.yaml:3: rate.per_host: must be a number > 0, got .inf"}},
		{"root is a list", "- name: t\n",
			[]string{"bad.yaml:1: a job file must be a mapping of keys (name, seeds, ...), got a list"}},

		// durations
		{"duration without unit", ok + "timeout: 10\n",
			[]string{"bad.yaml:3: timeout: must be a duration like 30s, 1h30m or 7d, got 10"}},
		{"duration in weeks", ok + "retry: {backoff: 1w}\n",
			[]string{`bad.yaml:3: retry.backoff: must be a duration like 30s, 1h30m or 7d, got "1w"`}},
		{"bad expire_after", ok + "cache:\n  expire_after: soon\n",
			[]string{`bad.yaml:4: cache.expire_after: must be a duration >= 0 like 1h, never, do_not_cache or adaptive, got "soon"`}},
		{"bad urls_expire_after value", ok + "cache:\n  urls_expire_after:\n    'example.org/a/*': 1h\n    'example.org/b/*': sometimes\n",
			[]string{`bad.yaml:6: cache.urls_expire_after["example.org/b/*"]: must be a duration >= 0 like 1h, never, do_not_cache or adaptive, got "sometimes"`}},
		{"urls_expire_after with scheme", ok + "cache:\n  urls_expire_after: {'https://example.org/*': 1h}\n",
			[]string{`bad.yaml:4: cache.urls_expire_after["https://example.org/*"]: pattern must not include the scheme (write example.org/news/*)`}},
		{"bad stale_if_error", ok + "cache: {stale_if_error: maybe}\n",
			[]string{`bad.yaml:3: cache.stale_if_error: must be true, false or a duration >= 0 like 1h, got "maybe"`}},
		{"bad credentials", ok + "cache:\n  credentials: user\n",
			[]string{`bad.yaml:4: cache.credentials: must be token (entries bound to the credential values) or job (bound to this job, for a token that rotates), got "user"`}},
		{"credentials not a string", ok + "cache: {credentials: [job]}\n",
			[]string{`bad.yaml:3: cache.credentials: must be token (entries bound to the credential values) or job (bound to this job, for a token that rotates), got a list`}},
		{"bad ttl", ok + "cache: {ttl: forever}\n",
			[]string{`bad.yaml:3: cache.ttl: must be a duration > 0 like 168h, or none, got "forever"`}},

		// regexps and selectors
		{"bad include regexp", ok + "include: ['^https://', '(unclosed']\n",
			[]string{"bad.yaml:3: include[1]: invalid regexp: missing closing ): `(unclosed`"}},
		{"bad exclude regexp", ok + "exclude: ['*.pdf']\n",
			[]string{"bad.yaml:3: exclude[0]: invalid regexp: missing argument to repetition operator: `*`"}},
		{"bad follow selector", ok + "follow: ['a[href']\n",
			[]string{`bad.yaml:3: follow[0]: invalid CSS selector "a[href": unexpected EOF in attribute selector`}},
		{"bad item selector", ok + "extract:\n  item: 'div::'\n  fields: {t: {css: h1}}\n",
			[]string{`bad.yaml:4: extract.item: invalid CSS selector "div::": expected identifier, found EOF instead`}},
		{"bad field selector", ok + "extract:\n  fields:\n    title: {css: 'h1 >'}\n",
			[]string{`bad.yaml:5: extract.fields.title.css: invalid CSS selector "h1 >": expected selector, found EOF instead`}},
		{"field with two sources", ok + "extract:\n  fields:\n    title: {css: h1, text: true, attr: title}\n",
			[]string{"bad.yaml:5: extract.fields.title: set only one of text, attr and html"}},
		{"field with nothing to take", ok + "extract:\n  fields:\n    title: {css: h1, text: false}\n",
			[]string{"bad.yaml:5: extract.fields.title: nothing to take: set text, attr or html"}},
		{"reserved field name", ok + "extract:\n  fields:\n    _id: {css: h1}\n",
			[]string{"bad.yaml:5: extract.fields._id: field names must not be empty, start with _ or $, or contain '.'"}},
		{"field name reserved for item metadata", ok + "extract:\n  fields:\n    url: {css: a, attr: href}\n",
			[]string{`bad.yaml:5: extract.fields.url: "url" is reserved for item metadata (_id, run_id, job, url, index, fetched_at, served); choose another name`}},
		{"output into crawlcache's runs collection", ok + "outputs:\n  - mongodb: {collection: runs}\n",
			[]string{`bad.yaml:4: outputs[0].mongodb.collection: "runs" is one of crawlcache's own collections (reserved: ` + strings.Join(ReservedCollections(), ", ") + `); choose another name, e.g. items`}},
		{"output into the cache's responses collection", ok + "outputs:\n  - jsonl: {path: a.jsonl}\n  - mongodb: {collection: responses}\n",
			[]string{`bad.yaml:5: outputs[1].mongodb.collection: "responses" is one of crawlcache's own collections (reserved: ` + strings.Join(ReservedCollections(), ", ") + `); choose another name, e.g. items`}},
		{"output into a case variant of frontier_log", ok + "outputs:\n  - mongodb: {collection: Frontier_Log}\n",
			[]string{`bad.yaml:4: outputs[0].mongodb.collection: "Frontier_Log" is one of crawlcache's own collections (reserved: ` + strings.Join(ReservedCollections(), ", ") + `); choose another name, e.g. items`}},
		{"extract without fields", ok + "extract:\n  item: article\n",
			[]string{"bad.yaml:4: extract.fields: required: at least one field to extract"}},

		// cron
		{"cron minute out of range", ok + "schedule: '61 * * * *'\n",
			[]string{`bad.yaml:3: schedule: invalid cron expression "61 * * * *": end of range (61) above maximum (59): 61 (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')`}},
		{"cron with six fields", ok + "schedule: '0 0 */6 * * *'\n",
			[]string{`bad.yaml:3: schedule: invalid cron expression "0 0 */6 * * *": expected exactly 5 fields, found 6: [0 0 */6 * * *] (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')`}},
		{"unknown descriptor", ok + "schedule: '@dayly'\n",
			[]string{`bad.yaml:3: schedule: invalid cron expression "@dayly": unrecognized descriptor: @dayly (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')`}},
		{"every too short", ok + "schedule: '@every 10ms'\n",
			[]string{`bad.yaml:3: schedule: @every needs a duration of at least 1s, got "10ms"`}},

		// URLs and domains
		{"seed without scheme", "name: t\nseeds: [example.org]\n",
			[]string{`bad.yaml:2: seeds[0]: must be an absolute http(s) URL, got "example.org"`}},
		{"seed with another scheme, password hidden", "name: t\nseeds:\n  - 'ftp://user:pw@example.org/'\n",
			[]string{`bad.yaml:3: seeds[0]: must be an absolute http(s) URL, got "ftp://user:xxxxx@example.org/"`}},
		{"seed without host", "name: t\nseeds: ['http://']\n",
			[]string{`bad.yaml:2: seeds[0]: must be an absolute http(s) URL with a host, got "http://"`}},
		{"seed that does not parse", "name: t\nseeds: ['http://exa mple.org/']\n",
			[]string{`bad.yaml:2: seeds[0]: must be an absolute http(s) URL: invalid character " " in host name`}},
		{"seed outside allowed_domains", ok + "allowed_domains: [example.com]\n",
			[]string{`bad.yaml:2: seeds[0]: host "example.org" is not in allowed_domains`}},
		{"allowed domain written as URL", ok + "allowed_domains: ['https://example.org/']\n",
			[]string{`bad.yaml:3: allowed_domains[0]: must be a host name like example.org, not a URL, got "https://example.org/"`}},
		{"allowed domain with port", ok + "allowed_domains: ['example.org:80']\n",
			[]string{`bad.yaml:3: allowed_domains[0]: must be a host name like example.org (no port, path or wildcard), got "example.org:80"`}},

		// required keys
		{"missing name and seeds", "max_depth: 1\n",
			[]string{"bad.yaml:1: name: required: every job needs a unique name", "bad.yaml:1: seeds: required: list the URLs the crawl starts from"}},
		{"empty seeds", "name: t\nseeds: []\n",
			[]string{"bad.yaml:2: seeds: at least one seed URL is required"}},
		{"empty name", "name: ''\nseeds: ['http://example.org/']\n",
			[]string{"bad.yaml:1: name: must not be empty"}},
		{"name with spaces", "name: my job\nseeds: ['http://example.org/']\n",
			[]string{`bad.yaml:1: name: must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, got "my job"`}},
		{"jsonl without path", ok + "outputs:\n  - jsonl: {}\n",
			[]string{"bad.yaml:4: outputs[0].jsonl.path: required: the file to write"}},

		// outputs
		{"two kinds in one entry", ok + "outputs:\n  - {jsonl: {path: a.jsonl}, csv: {path: a.csv}}\n",
			[]string{"bad.yaml:4: outputs[0]: must have exactly one output kind (mongodb, jsonl or csv), got 2; use one list entry per output"}},
		{"same file twice", ok + "outputs:\n  - jsonl: {path: out/a}\n  - csv: {path: ./out/a}\n",
			[]string{"bad.yaml:5: outputs[1]: duplicate output: writes the same file as outputs[0]"}},
		{"same collection twice", ok + "outputs:\n  - mongodb:\n  - mongodb: {collection: items}\n",
			[]string{"bad.yaml:5: outputs[1]: duplicate output: writes the same collection as outputs[0]"}},
		{"empty output entry", ok + "outputs:\n  - {}\n",
			[]string{"bad.yaml:4: outputs[0]: must name one output kind: mongodb, jsonl or csv"}},
		{"bad collection name", ok + "outputs:\n  - mongodb: {collection: 'a$b'}\n",
			[]string{`bad.yaml:4: outputs[0].mongodb.collection: invalid collection name "a$b"`}},

		// negative and out-of-range numbers
		{"negative max_pages", ok + "max_pages: -1\n",
			[]string{"bad.yaml:3: max_pages: must be an integer >= 0, got -1"}},
		{"max_error_ratio above 1", ok + "max_error_ratio: 10\n",
			[]string{"bad.yaml:3: max_error_ratio: must be a number from 0 to 1 (0.1 allows 10% of the URLs to fail), got 10"}},
		{"max_error_ratio as a percentage", ok + "max_error_ratio: 10%\n",
			[]string{`bad.yaml:3: max_error_ratio: must be a number from 0 to 1 (0.1 allows 10% of the URLs to fail), got "10%"`}},
		{"negative max_depth", ok + "max_depth: -3\n",
			[]string{"bad.yaml:3: max_depth: must be an integer >= 0, got -3"}},
		{"zero burst", ok + "rate: {burst: 0}\n",
			[]string{"bad.yaml:3: rate.burst: must be an integer >= 1, got 0"}},
		{"negative rate", ok + "rate: {per_host: -2}\n",
			[]string{"bad.yaml:3: rate.per_host: must be a number > 0, got -2"}},
		{"zero parallelism", ok + "rate: {parallelism: 0}\n",
			[]string{"bad.yaml:3: rate.parallelism: must be an integer >= 1, got 0"}},
		{"negative retries", ok + "retry: {max: -2}\n",
			[]string{"bad.yaml:3: retry.max: must be an integer >= 0, got -2"}},
		{"negative timeout", ok + "timeout: -5s\n",
			[]string{`bad.yaml:3: timeout: must not be negative, got "-5s"`}},
		{"zero timeout", ok + "timeout: 0s\n",
			[]string{`bad.yaml:3: timeout: must be > 0, got "0s"`}},
		{"negative ttl", ok + "cache: {ttl: -1h}\n",
			[]string{`bad.yaml:3: cache.ttl: must be a duration > 0 like 168h, or none, got "-1h"`}},
		{"negative max_body_size", ok + "max_body_size: -1\n",
			[]string{"bad.yaml:3: max_body_size: must be a size in bytes >= 0 like 10485760 or 10MiB, got -1"}},
		{"status code out of range", ok + "cache: {allowable_codes: [200, 999]}\n",
			[]string{"bad.yaml:3: cache.allowable_codes[1]: must be an HTTP status code (100-599), got 999"}},

		// file-level problems
		{"yaml syntax error", "name: [\n",
			[]string{"bad.yaml:1: invalid YAML: did not find expected node content"}},
		{"tab indentation", "name: t\n\tseeds: []\n",
			[]string{"bad.yaml:2: invalid YAML: found a tab character that violates indentation"}},
		{"empty file", "",
			[]string{"bad.yaml: empty file: a job needs at least name and seeds"}},
		{"comments only", "# nothing\n",
			[]string{"bad.yaml: empty file: a job needs at least name and seeds"}},
		{"two documents", ok + "---\nname: u\n",
			[]string{"bad.yaml:3: more than one YAML document: write one job per file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, tt.src)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseReportsEveryMistake(t *testing.T) {
	got := errorLines(t, "name: t\nseeds: [ftp://x/]\nmax_depth: -1\nrate: {per_host: fast, burst: 0}\nschedule: nope\n")
	want := []string{
		`bad.yaml:2: seeds[0]: must be an absolute http(s) URL, got "ftp://x/"`,
		"bad.yaml:3: max_depth: must be an integer >= 0, got -1",
		`bad.yaml:4: rate.per_host: must be a number > 0, got "fast"`,
		"bad.yaml:4: rate.burst: must be an integer >= 1, got 0",
		`bad.yaml:5: schedule: invalid cron expression "nope": expected exactly 5 fields, found 1: [nope] (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestErrorPosition(t *testing.T) {
	_, err := parseTest("configs/x.yaml", ok+"rate:\n  per_host: fast\n")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	want := Error{File: "configs/x.yaml", Line: 4, Column: 13, Key: "rate.per_host", Msg: `must be a number > 0, got "fast"`}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if got, want := e.Error(), `configs/x.yaml:4: rate.per_host: must be a number > 0, got "fast"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestHeaderValuesNeverInErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"not a string", "headers:\n  Authorization: [Bearer s3cr3t-token]\n",
			"bad.yaml:4: headers.Authorization: must be a string"},
		{"unset variable", "headers:\n  Authorization: 'Bearer ${MISSING_TOKEN}'\n",
			"bad.yaml:4: headers.Authorization: environment variable MISSING_TOKEN is not set"},
		{"unterminated reference", "headers:\n  Authorization: 'Bearer ${API_TOKEN s3cr3t-token'\n",
			"bad.yaml:4: headers.Authorization: unterminated ${ in value"},
		{"line break in value", "headers:\n  X-Key: \"s3cr3t-token\\nX: y\"\n",
			"bad.yaml:4: headers.X-Key: value must not contain a line break or NUL"},
		{"bad header name", "headers:\n  'Bad Name': s3cr3t-token\n",
			`bad.yaml:4: headers["Bad Name"]: invalid header name`},
		{"host header", "headers:\n  host: s3cr3t-token\n",
			"bad.yaml:4: headers.host: the Host header cannot be set"},
		{"duplicate after canonicalisation", "headers:\n  authorization: a\n  Authorization: s3cr3t-token\n",
			"bad.yaml:5: headers.Authorization: duplicate header (first at line 4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, ok+tt.src)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
			for _, line := range got {
				if strings.Contains(line, "s3cr3t") {
					t.Errorf("error echoes a header value: %q", line)
				}
			}
		})
	}
}
