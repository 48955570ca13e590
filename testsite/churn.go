package testsite

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Churn is an origin whose pages change on a schedule, for revisit
// simulations: "/" links to pages /p/1 … /p/Pages; pages /p/1 … /p/Daily
// change every day (SetDay) and the others never do. Every page and "/"
// carry an ETag and answer a matching If-None-Match with 304. It counts
// the requests of each day. Safe for concurrent use.
type Churn struct {
	pages, daily int

	mu  sync.Mutex
	day int
	// served[day][path] counts 200s, notModified[day][path] 304s.
	served, notModified map[int]map[string]int
}

// NewChurn returns an origin of pages pages, the first daily of which
// change every day.
func NewChurn(pages, daily int) *Churn {
	return &Churn{pages: pages, daily: min(daily, pages), served: map[int]map[string]int{}, notModified: map[int]map[string]int{}}
}

// SetDay sets the simulated day: a daily page's body is that of the day.
func (c *Churn) SetDay(d int) {
	c.mu.Lock()
	c.day = d
	c.mu.Unlock()
}

// Paths are the pages' paths, "/" first, then the daily pages.
func (c *Churn) Paths() []string {
	out := []string{"/"}
	for i := 1; i <= c.pages; i++ {
		out = append(out, "/p/"+strconv.Itoa(i))
	}
	return out
}

// Daily reports whether path is a page that changes every day.
func (c *Churn) Daily(path string) bool {
	n, ok := strings.CutPrefix(path, "/p/")
	id, err := strconv.Atoi(n)
	return ok && err == nil && id >= 1 && id <= c.daily
}

// Served is how many times path answered 200 on day d; NotModified how
// many times it answered 304.
func (c *Churn) Served(d int, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[d][path]
}

// NotModified is how many times path answered 304 on day d.
func (c *Churn) NotModified(d int, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.notModified[d][path]
}

// Requests is how many page requests (200s and 304s, robots.txt not
// counted) the origin answered on day d.
func (c *Churn) Requests(d int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.served[d] {
		n += v
	}
	for _, v := range c.notModified[d] {
		n += v
	}
	return n
}

// ServeHTTP serves the site.
func (c *Churn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/robots.txt" {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "User-agent: *\nAllow: /\n")
		return
	}
	c.mu.Lock()
	day := c.day
	c.mu.Unlock()
	version := 0
	var body string
	switch {
	case path == "/":
		var b strings.Builder
		b.WriteString("<!doctype html><html><head><title>churn</title></head><body><h1>Pages</h1>\n")
		for _, p := range c.Paths()[1:] {
			fmt.Fprintf(&b, "<a href=%q>%s</a>\n", p, p)
		}
		b.WriteString("</body></html>\n")
		body = b.String()
	case strings.HasPrefix(path, "/p/") && c.valid(path):
		if c.Daily(path) {
			version = day
		}
		body = fmt.Sprintf("<!doctype html><html><head><title>%s</title></head><body><h1>%s version %d</h1><p>%s</p></body></html>\n",
			path, path, version, strings.Repeat("text ", 200))
	default:
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%s-%d"`, strings.ReplaceAll(path, "/", "_"), version)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		c.count(c.notModified, day, path)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	c.count(c.served, day, path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, body)
}

func (c *Churn) valid(path string) bool {
	id, err := strconv.Atoi(strings.TrimPrefix(path, "/p/"))
	return err == nil && id >= 1 && id <= c.pages && "/p/"+strconv.Itoa(id) == path
}

func (c *Churn) count(m map[int]map[string]int, day int, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m[day] == nil {
		m[day] = map[string]int{}
	}
	m[day][path]++
}
