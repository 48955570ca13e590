package testsite

import (
	"net/http"
	"sort"
	"sync"
	"time"
)

// Request is one entry of the request log.
type Request struct {
	// Time is when the request arrived, on the wall clock.
	Time time.Time
	// Method is GET, HEAD, ...
	Method string
	// Path is the request's path and raw query, e.g. "/category/2?page=3&per=20".
	Path string
	// Status is the HTTP status answered, or StatusReset, StatusTimeout or
	// StatusAborted.
	Status int
	// Remote is the client's address as the server saw it.
	Remote string
	// Bytes is the size of the response body sent (0 for HEAD and 304).
	Bytes int64
}

// Counts is a snapshot of the requests a Site answered. Paths are the
// request's path and raw query exactly as sent (fragments never reach a
// server), so "/category/2?page=3&per=20" and "/category/2?per=20&page=3"
// are counted apart. A request is counted when its response is decided,
// just before its body is written.
type Counts struct {
	// Total is the number of requests.
	Total int
	// Bodies is the number of 200 answers to GET, which carry a body.
	Bodies int
	// NotModified is the number of 304 answers.
	NotModified int
	// BodyBytes is the total size of every response body sent, of any
	// status.
	BodyBytes int64

	byPath map[string][]statusCount
}

type statusCount struct{ code, n int }

// Requests returns the number of requests for path (path and raw query).
func (c Counts) Requests(path string) int {
	n := 0
	for _, sc := range c.byPath[path] {
		n += sc.n
	}
	return n
}

// Status returns the number of requests for path answered with code.
func (c Counts) Status(path string, code int) int {
	for _, sc := range c.byPath[path] {
		if sc.code == code {
			return sc.n
		}
	}
	return 0
}

// ByStatus returns the number of requests, on any path, answered with code.
func (c Counts) ByStatus(code int) int {
	n := 0
	for p := range c.byPath {
		n += c.Status(p, code)
	}
	return n
}

// Paths returns every requested path (with its raw query), sorted.
func (c Counts) Paths() []string {
	out := make([]string, 0, len(c.byPath))
	for p := range c.byPath {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// pathRecord is what the recorder keeps per path and query: one map entry,
// so a 100k-URL crawl costs the site little memory.
type pathRecord struct {
	attempts int           // requests arrived; never reset
	statuses []statusCount // since the last ResetCounts
}

// recorder holds the counts, the request log and the per-path attempt
// numbers that rate faults hash on.
type recorder struct {
	mu           sync.Mutex
	noLog        bool
	counts       Counts // byPath unused: see paths
	paths        map[string]*pathRecord
	log          []Request
	pathAttempts map[string]int // FailPaths attempts, by path without query
}

func (r *recorder) init(noLog bool) {
	r.noLog = noLog
	r.paths = make(map[string]*pathRecord)
	r.pathAttempts = make(map[string]int)
}

// attempt returns how many requests for key arrived before this one.
func (r *recorder) attempt(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	pr := r.paths[key]
	if pr == nil {
		pr = &pathRecord{}
		r.paths[key] = pr
	}
	pr.attempts++
	return pr.attempts - 1
}

// pathAttempt is attempt for FailPaths, keyed by path without query.
func (r *recorder) pathAttempt(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.pathAttempts[path]
	r.pathAttempts[path] = n + 1
	return n
}

func (r *recorder) add(e Request, status int, bodyBytes int64) {
	e.Status, e.Bytes = status, bodyBytes
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &r.counts
	c.Total++
	c.BodyBytes += bodyBytes
	switch {
	case status == http.StatusOK && e.Method == http.MethodGet:
		c.Bodies++
	case status == http.StatusNotModified:
		c.NotModified++
	}
	pr := r.paths[e.Path]
	if pr == nil { // attempt was not called: cannot happen via ServeHTTP
		pr = &pathRecord{}
		r.paths[e.Path] = pr
	}
	found := false
	for i := range pr.statuses {
		if pr.statuses[i].code == status {
			pr.statuses[i].n++
			found = true
		}
	}
	if !found {
		pr.statuses = append(pr.statuses, statusCount{status, 1})
	}
	if !r.noLog {
		r.log = append(r.log, e)
	}
}

// Counts returns a snapshot of the requests answered so far. It is safe for
// concurrent use.
func (s *Site) Counts() Counts {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	c := s.rec.counts
	c.byPath = make(map[string][]statusCount, len(s.rec.paths))
	for p, pr := range s.rec.paths {
		if len(pr.statuses) > 0 {
			c.byPath[p] = append([]statusCount(nil), pr.statuses...)
		}
	}
	return c
}

// RequestLog returns a copy of every request answered so far, in the order
// they were counted; empty with Options.NoRequestLog.
func (s *Site) RequestLog() []Request {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return append([]Request(nil), s.rec.log...)
}

// ResetCounts zeroes the counts and the request log. Fault attempt numbers
// are kept, so rate faults do not repeat themselves and FailPaths paths that
// already failed FailTimes times stay healed.
func (s *Site) ResetCounts() {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.counts = Counts{}
	for _, pr := range s.rec.paths {
		pr.statuses = nil
	}
	s.rec.log = nil
}
