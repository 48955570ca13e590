// Package configs loads and validates crawlcache's YAML job files.
//
// A job file describes one crawl: where it starts, what it may follow, how
// politely it fetches, how the HTTP cache behaves, what it extracts and where
// the items go. Load and Parse read a file strictly: an unknown key, a value
// of the wrong type, a bad duration, regexp, CSS selector, URL or cron
// expression is an *Error naming the file, the line and the dotted key, and
// every mistake in a file is reported at once (joined with errors.Join).
//
// The package turns YAML into plain Go values (a *Job); the library packages
// (crawler, cache, pipeline, jobs) take those values and never see YAML. It
// must not fetch anything, open the store or import goquery or colly.
package configs

import (
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"crawlcache/cache"
)

// Defaults applied by Parse when a key is absent.
const (
	DefaultUserAgent   = "crawlcache/0.1"
	DefaultPerHost     = 2.0
	DefaultBurst       = 1
	DefaultParallelism = 8
	DefaultRetryMax    = 3
	DefaultBackoff     = time.Second
	DefaultTimeout     = 30 * time.Second
	DefaultMaxBodySize = 10 << 20 // 10 MiB, colly's own default
	DefaultCollection  = "items"
	// DefaultMaxErrorRatio lets one URL in ten fail for good before a
	// completed run exits non-zero: a dead link in a nightly crawl must
	// not fail it.
	DefaultMaxErrorRatio = 0.1
)

// DefaultFollow is the selector list used when `follow` is absent.
var DefaultFollow = []string{"a[href]"}

// Job is one validated job file. Every field holds its default when the key
// was absent from the file. A Job is a plain value: callers may read it from
// several goroutines but must not modify it while others read it.
type Job struct {
	// Name is the job's unique name (required). It names the job in run
	// records, locks, logs and `resume --job`.
	Name string
	// Seeds are the absolute http(s) URLs the crawl starts from (required).
	Seeds []string
	// AllowedDomains are lower-case host names (no port) the crawl may
	// visit. If absent in the file, the hosts of the seeds.
	AllowedDomains []string
	// MaxDepth is the link depth from a seed; 0 means unlimited.
	MaxDepth int
	// MaxPages caps the pages fetched in one run; 0 means unlimited.
	MaxPages int
	// MaxErrorRatio is the share of the run's URLs (fetched plus failed)
	// that may fail for good (network errors, timeouts, 5xx left after
	// retries) before `run` and `resume` exit non-zero although the run
	// completed; 0 means any failure does. A 404, a 410 and a page
	// blocked by robots.txt are results, not failures. Default
	// DefaultMaxErrorRatio.
	MaxErrorRatio float64
	// Include and Exclude filter discovered links: a link is followed only
	// if it matches some Include (or Include is empty) and no Exclude.
	Include, Exclude []*regexp.Regexp
	// IncludePatterns and ExcludePatterns are the source strings of Include
	// and Exclude, in the same order.
	IncludePatterns, ExcludePatterns []string
	// Follow are CSS selectors whose elements' href links are
	// followed. Default DefaultFollow.
	Follow []string
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
	// Headers are extra request headers, with ${ENV_VAR} references already
	// expanded. They may hold secrets: never log or store them; record the
	// file's Hash instead. Nil when the file has no headers. Excluded from
	// JSON, and LogValue leaves it out of slog output.
	Headers http.Header `json:"-"`
	// Robots honours robots.txt and Crawl-delay. Default true.
	Robots bool
	// Timeout bounds one request. Default DefaultTimeout.
	Timeout time.Duration
	// MaxBodySize is the largest response body in bytes; 0 means no limit.
	// Default DefaultMaxBodySize.
	MaxBodySize int64
	// Proxy is the upstream proxy of every network request of the job
	// (the `proxy` key, ${ENV_VAR} references expanded). Nil means the
	// environment's HTTP_PROXY, HTTPS_PROXY and NO_PROXY. Its user info
	// may hold a password: never log, print or store it (Host, or
	// Redacted). Excluded from JSON, and LogValue leaves it out.
	Proxy *url.URL `json:"-"`
	// NoProxy (`proxy: none`) sends every request direct, whatever the
	// environment says.
	NoProxy bool
	// Rate is the politeness of the network path.
	Rate Rate
	// Retry controls retries of transient errors.
	Retry Retry
	// Cache is the HTTP cache policy for this job's requests.
	Cache cache.Policy
	// TTL is how long the store keeps a cached response after it was
	// written (the TTL index or sweeper), meaningful only when TTLSet.
	// TTLSet with TTL == 0 (`ttl: none`) means responses are never deleted.
	TTL    time.Duration
	TTLSet bool
	// Extract says what items to take from each page.
	Extract Extract
	// Outputs are where items are written, in file order. Empty means items
	// are not written (the crawl only fills the cache).
	Outputs []Output
	// Sitemaps are the sitemaps read at the start of each run; the zero
	// value reads none.
	Sitemaps Sitemaps
	// Render loads pages in headless Chromium before links and items are
	// taken from them. Without a render section it is the zero value (off);
	// with one, its absent keys hold their defaults.
	Render Render
	// Changes says what does not count as a change of a page; the zero
	// value compares whole bodies.
	Changes Changes
	// Schedule is a 5-field cron expression or a descriptor such as
	// "@every 6h" or "@daily"; empty means the job runs only on demand.
	Schedule string
	// Source is the file path (or the name given to Parse).
	Source string
	// Hash is the hex SHA-256 of the file's bytes, for the run record.
	Hash string

	nameLine int // line of the name key, for duplicate-name errors
}

// LogValue makes slog print a job as its name, file and hash, never its
// headers (which may hold secrets).
func (j *Job) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", j.Name), slog.String("source", j.Source), slog.String("hash", j.Hash))
}

// Rate is the network politeness of a job.
type Rate struct {
	// PerHost is network requests per second per host (> 0). Default 2.
	PerHost float64
	// Burst is the per-host token bucket size (>= 1). Default 1.
	Burst int
	// Parallelism is the number of concurrent network requests overall
	// (>= 1). Default 8.
	Parallelism int
	// PerHostParallelism is the number of concurrent network requests to
	// one host (host:port) in this process (>= 0); 0, the default, means
	// only Parallelism bounds them.
	PerHostParallelism int
}

// Retry controls retries of transient errors (network errors, 5xx, 429).
type Retry struct {
	// Max is the number of retries after the first attempt (>= 0). Default 3.
	Max int
	// Backoff is the first retry delay, doubled on every further retry.
	// Default 1s.
	Backoff time.Duration
}

// Extract describes the items taken from a page.
type Extract struct {
	// Item is a CSS selector: one item per match. Empty means one item per
	// page.
	Item string
	// Fields are the item's fields in file order.
	Fields []Field
}

// Field is one extracted value. Exactly one of Text, Attr and HTML selects
// what is taken from the matched element; Text is the default.
type Field struct {
	// Name is the field's name in the item.
	Name string
	// CSS selects elements inside the item (or page); empty means the item
	// element itself.
	CSS string
	// Attr takes this attribute's value.
	Attr string
	// Text takes the element's text, trimmed.
	Text bool
	// All takes every match as a list instead of the first match.
	All bool
	// HTML takes the element's inner HTML.
	HTML bool
}

// Output kinds.
const (
	OutputMongoDB = "mongodb"
	OutputJSONL   = "jsonl"
	OutputCSV     = "csv"
)

// Output is one item sink.
type Output struct {
	// Kind is OutputMongoDB, OutputJSONL or OutputCSV.
	Kind string
	// Collection is the MongoDB collection (Kind mongodb). Default "items".
	Collection string
	// Path is the file written (Kind jsonl or csv), relative to the
	// working directory.
	Path string
}
