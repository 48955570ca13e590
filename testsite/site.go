// Package testsite generates a deterministic demo shop for crawler tests,
// benchmarks and `make run`: N product pages in a paginated category tree
// with cross links, a realistic page-size distribution, strong ETags and
// Last-Modified with correct conditional answers, robots.txt, per-response
// latency, injected faults, and exact request counts.
//
// A Site is an http.Handler: serve it with httptest.NewServer(site), with
// site.Start() (which also releases requests held by timeout faults when the
// server closes), or with any http.Server; tests can also call ServeHTTP
// in-process with an httptest.ResponseRecorder. The package does not import
// testing, and it must not depend on the rest of crawlcache: it stands for
// an arbitrary origin on the internet.
package testsite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options describes a site. The zero value is a valid 100-page site.
type Options struct {
	// Pages is the number of content (product) pages; 0 means 100.
	Pages int
	// Seed selects the site: the same Options serve the same bytes, ETags
	// and link graph in every run.
	Seed int64
	// MinSize and MaxSize bound the size in bytes of a content page's HTML;
	// 0 means 10 KB and 150 KB. Sizes are log-normal between them, most of
	// them (with the defaults) in 20–60 KB. A page is never smaller than its
	// markup, so tiny bounds with many links are exceeded.
	MinSize, MaxSize int
	// LinksPerPage is the number of related-product cross links on each
	// content page and of featured products on the home page; 0 means 8.
	// A negative value means none.
	LinksPerPage int
	// SortedQueries writes every query string with its parameters sorted.
	// By default the listings' "Next" links swap them ("?per=20&page=3" for
	// "?page=3&per=20"), so a crawler that does not sort query parameters
	// fetches those listing pages twice (colly does not sort them).
	SortedQueries bool
	// Latency delays every response (a timer, abandoned when the client
	// gives up); 0 means none.
	Latency time.Duration
	// Bandwidth, in bytes per second, adds the transfer time of a body to
	// a 200 after the latency (n bytes take n/Bandwidth longer), like a link
	// of that speed per connection. A 304 or a HEAD carries no body and
	// takes only the latency. 0 means unlimited.
	Bandwidth int64
	// Clock gives the Date header and the Last-Modified of pages: initial
	// Last-Modified dates are spread over the 30 days before Clock() at New,
	// and a changed page gets Clock() at Change. If nil, the reference is a
	// fixed date (2026-01-01T00:00:00Z) and no Date header is sent (a fixed
	// Date would make every response look old to a cache), so output is
	// byte-stable. Request log times always use the wall clock.
	Clock func() time.Time
	// CacheControl is the Cache-Control header of pages; "" means "max-age=0".
	CacheControl string
	// Robots is the body of /robots.txt; "" means DefaultRobots followed by
	// a Crawl-delay line when CrawlDelay is set.
	Robots string
	// CrawlDelay adds "Crawl-delay: <seconds>" to the default robots.txt.
	CrawlDelay time.Duration
	// CacheBytes caps the memory holding generated bodies; 0 means 64 MB
	// and a negative value disables the cache (every response is generated,
	// ~20–200 µs for a content page). Once full, further bodies are
	// generated per request. Lower it when the site runs in the process
	// whose memory a benchmark measures.
	CacheBytes int64
	// Control, when set (e.g. "/_testsite/"), serves control endpoints under
	// that prefix for processes that do not hold the *Site: GET
	// <Control>counts returns Counts as JSON (decode it with
	// json.Unmarshal into a Counts), POST <Control>reset calls ResetCounts,
	// POST <Control>change?fraction=0.1 calls Change and returns the changed
	// paths. They are not linked, not counted, exempt from latency and
	// faults, and the default robots.txt disallows them.
	Control string
	// NoRequestLog keeps RequestLog empty (counts are still kept), for runs
	// with very many requests.
	NoRequestLog bool
	// Faults injects errors; the zero value injects none.
	Faults Faults
}

// DefaultRobots is the robots.txt of a site whose Options.Robots is empty.
const DefaultRobots = "User-agent: *\nDisallow: /private/\n"

// Site is a generated web site. It is an http.Handler and safe for
// concurrent use. Create it with New.
type Site struct {
	opts   Options
	layout layout
	base   time.Time // initial Last-Modified reference

	closed    chan struct{}
	closeOnce sync.Once

	pmu         sync.Mutex
	versions    []int       // by product ID; [0] unused
	modTimes    []time.Time // by product ID
	pages       map[string]*page
	cachedBytes int64
	changes     int

	rec recorder

	// sleep waits d unless ctx ends or the site closes (false then);
	// tests replace it.
	sleep func(ctx context.Context, d time.Duration) bool
}

// New returns the site described by opts.
func New(opts Options) *Site {
	if opts.Pages <= 0 {
		opts.Pages = 100
	}
	if opts.MinSize <= 0 {
		opts.MinSize = 10 << 10
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 150 << 10
	}
	if opts.MaxSize < opts.MinSize {
		opts.MaxSize = opts.MinSize
	}
	switch {
	case opts.LinksPerPage == 0:
		opts.LinksPerPage = 8
	case opts.LinksPerPage < 0:
		opts.LinksPerPage = 0
	}
	if opts.CacheControl == "" {
		opts.CacheControl = "max-age=0"
	}
	if opts.Robots == "" {
		opts.Robots = DefaultRobots
		if opts.Control != "" {
			opts.Robots += "Disallow: " + opts.Control + "\n"
		}
		if opts.CrawlDelay > 0 {
			opts.Robots += "Crawl-delay: " + strconv.FormatFloat(opts.CrawlDelay.Seconds(), 'f', -1, 64) + "\n"
		}
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	opts.Faults = opts.Faults.withDefaults()
	s := &Site{
		opts:     opts,
		layout:   newLayout(opts.Pages),
		base:     fixedDate,
		closed:   make(chan struct{}),
		versions: make([]int, opts.Pages+1),
		modTimes: make([]time.Time, opts.Pages+1),
		pages:    make(map[string]*page),
	}
	s.sleep = s.timerSleep
	if opts.Clock != nil {
		s.base = opts.Clock().UTC().Truncate(time.Second)
	}
	for id := 1; id <= opts.Pages; id++ {
		r := newRNG(opts.Seed, 7, uint64(id))
		s.modTimes[id] = s.base.Add(-30*24*time.Hour + time.Duration(r.intn(20*24*60))*time.Minute)
	}
	s.rec.init(opts.NoRequestLog)
	return s
}

// Server is a Site served by an httptest.Server on a loopback port.
type Server struct {
	*httptest.Server
	// Site is the site being served.
	Site *Site
}

// Close releases requests held by timeout faults, then closes the server
// and waits for its handlers.
func (s *Server) Close() {
	s.Site.Close()
	s.Server.Close()
}

// Start serves the site on a new loopback httptest.Server; its URL field is
// the base URL. The caller must Close it (e.g. with t.Cleanup(srv.Close)).
func (s *Site) Start() *Server {
	return &Server{Server: httptest.NewServer(s), Site: s}
}

// Close makes requests held by TimeoutRate faults return (their connection is
// aborted) and later ones abort at once. Call it before closing a server
// that serves the site if clients may not give up by themselves; Server.Close
// does. Other responses are unaffected. Close is idempotent.
func (s *Site) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// URLs returns the URL of every content page, base + "/products/<id>" in ID
// order: what a crawl of base+"/" that follows links and obeys robots.txt
// must find. It excludes the home, listing, private and fault pages.
func (s *Site) URLs(base string) []string {
	base = strings.TrimSuffix(base, "/")
	out := make([]string, 0, s.opts.Pages)
	for id := 1; id <= s.opts.Pages; id++ {
		out = append(out, base+"/products/"+strconv.Itoa(id))
	}
	return out
}

// ReachableURLs returns, sorted, every URL a crawl of base+"/" that obeys
// robots.txt reaches by following links, in normalized form (relative
// references resolved, fragments dropped, query parameters sorted): the home
// page, every listing page, every content page and the configured fault
// paths (RedirectLoop, Oversize, InvalidUTF8, WrongContentType). It excludes
// robots.txt, the sitemap, /private/ pages and redirect targets.
func (s *Site) ReachableURLs(base string) []string {
	base = strings.TrimSuffix(base, "/")
	out := []string{base + "/"}
	for c := 1; c <= s.layout.categories; c++ {
		out = append(out, base+"/category/"+strconv.Itoa(c))
		for p := 2; p <= s.layout.listingPages(c); p++ {
			out = append(out, base+listingPath(c, p))
		}
	}
	out = append(out, s.URLs(base)...)
	for _, p := range s.faultLinks() {
		out = append(out, base+p)
	}
	sort.Strings(out)
	return compact(out)
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// listingPath is the normalized path and query of listing page p of
// category c.
func listingPath(c, p int) string {
	if p == 1 {
		return "/category/" + strconv.Itoa(c)
	}
	return "/category/" + strconv.Itoa(c) + "?page=" + strconv.Itoa(p) + "&per=" + strconv.Itoa(ItemsPerListing)
}

// Product is what a content page shows about its product.
type Product struct {
	ID       int
	Path     string // "/products/<id>"
	Title    string // the h1 of its page and the h2 of its items
	Price    string // the .price text, e.g. "€12.34"
	Category int
}

// Products returns every product in ID order. Titles and prices do not
// change with Change.
func (s *Site) Products() []Product {
	out := make([]Product, 0, s.opts.Pages)
	for id := 1; id <= s.opts.Pages; id++ {
		out = append(out, Product{
			ID:       id,
			Path:     "/products/" + strconv.Itoa(id),
			Title:    productTitle(s.opts.Seed, id),
			Price:    productPrice(s.opts.Seed, id),
			Category: s.layout.categoryOf(id),
		})
	}
	return out
}

// Change bumps the version of round(fraction·Pages) content pages, picked
// deterministically from the seed and the number of earlier calls: each gets
// a new body, a new ETag and a newer Last-Modified (the Clock's time, or one
// hour later than before without a Clock). Listing pages do not change. It
// returns the changed paths in ID order.
func (s *Site) Change(fraction float64) []string {
	n := int(math.Round(fraction * float64(s.opts.Pages)))
	n = min(max(n, 0), s.opts.Pages)
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.changes++
	r := newRNG(s.opts.Seed, 8, uint64(s.changes))
	ids := make([]int, s.opts.Pages)
	for i := range ids {
		ids[i] = i + 1
	}
	for i := 0; i < n; i++ { // partial Fisher–Yates
		j := i + r.intn(len(ids)-i)
		ids[i], ids[j] = ids[j], ids[i]
	}
	ids = ids[:n]
	sort.Ints(ids)
	paths := make([]string, 0, n)
	for _, id := range ids {
		s.versions[id]++
		next := s.modTimes[id].Add(time.Hour)
		if s.opts.Clock != nil {
			next = s.opts.Clock().UTC().Truncate(time.Second)
			if !next.After(s.modTimes[id]) {
				next = s.modTimes[id].Add(time.Second)
			}
		}
		s.modTimes[id] = next
		path := "/products/" + strconv.Itoa(id)
		if p, ok := s.pages[path]; ok {
			s.cachedBytes -= int64(len(p.body))
			delete(s.pages, path)
		}
		paths = append(paths, path)
	}
	return paths
}

// ETag returns the current ETag of the page at path (path and query as
// requested, e.g. "/products/3"), or "" if there is no such page.
func (s *Site) ETag(path string) string {
	p, _ := s.lookup("", path)
	if p == nil {
		return ""
	}
	return p.etag
}

// lookup returns the page for a request path and raw query, or nil for
// 404. contentType is that of the page. origin ("http://host:port") makes
// the sitemap's URLs absolute.
func (s *Site) lookup(origin, pathQuery string) (p *page, contentType string) {
	path, query, _ := strings.Cut(pathQuery, "?")
	const html = "text/html; charset=utf-8"
	if p, ct, ok := s.lookupApp(path, query); ok {
		return p, ct
	}
	switch {
	case path == "/":
		return s.cached("/", 0, func(int) []byte { return s.renderHome() }), html
	case path == "/robots.txt":
		return s.cached("/robots.txt", 0, func(int) []byte { return []byte(s.opts.Robots) }), "text/plain; charset=utf-8"
	case path == "/sitemap.xml":
		body := s.renderSitemap(origin) // not cached: Change alters its lastmods
		return &page{body: body, etag: etagFor(body, 0), modTime: s.base}, "application/xml; charset=utf-8"
	case strings.HasPrefix(path, "/products/"):
		id, ok := parseID(path[len("/products/"):], s.opts.Pages)
		if !ok {
			return nil, ""
		}
		return s.cached("/products/"+strconv.Itoa(id), id, func(v int) []byte { return s.renderProduct(id, v) }), html
	case strings.HasPrefix(path, "/category/"):
		c, ok := parseID(path[len("/category/"):], s.layout.categories)
		if !ok {
			return nil, ""
		}
		p := 1
		for _, kv := range strings.Split(query, "&") {
			if v, ok := strings.CutPrefix(kv, "page="); ok {
				if p, ok = parseID(v, s.layout.listingPages(c)); !ok {
					return nil, ""
				}
			}
		}
		return s.cached(listingPath(c, p), 0, func(int) []byte { return s.renderListing(c, p) }), html
	case strings.HasPrefix(path, "/private/"):
		k, ok := parseID(path[len("/private/"):], PrivatePages)
		if !ok {
			return nil, ""
		}
		return s.cached(path, 0, func(int) []byte { return s.renderPrivate(k) }), html
	}
	return nil, ""
}

// parseID parses a canonical decimal in [1, limit].
func parseID(s string, limit int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > limit || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// cached returns the page stored under key, generating it with gen(version)
// if needed. id is the product ID for content pages (whose version and
// Last-Modified vary), 0 for static pages.
func (s *Site) cached(key string, id int, gen func(version int) []byte) *page {
	s.pmu.Lock()
	if p, ok := s.pages[key]; ok {
		s.pmu.Unlock()
		return p
	}
	version, mod := 0, s.base.Add(-30*24*time.Hour)
	if id > 0 {
		version, mod = s.versions[id], s.modTimes[id]
	}
	s.pmu.Unlock()

	body := gen(version)
	p := &page{body: body, etag: etagFor(body, version), modTime: mod}

	s.pmu.Lock()
	defer s.pmu.Unlock()
	if old, ok := s.pages[key]; ok {
		return old
	}
	if id > 0 && s.versions[id] != version {
		return p // changed meanwhile: serve what was asked, do not keep it
	}
	if s.opts.CacheBytes > 0 && s.cachedBytes+int64(len(body)) <= s.opts.CacheBytes {
		s.pages[key] = p
		s.cachedBytes += int64(len(body))
	}
	return p
}

// renderSitemap lists the content pages with absolute URLs on origin, as
// the sitemaps protocol requires.
func (s *Site) renderSitemap(origin string) []byte {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n")
	for id := 1; id <= s.opts.Pages; id++ {
		fmt.Fprintf(&b, "<url><loc>%s/products/%d</loc><lastmod>%s</lastmod></url>\n", origin, id, s.modTime(id).Format("2006-01-02"))
	}
	b.WriteString("</urlset>\n")
	return []byte(b.String())
}

func (s *Site) modTime(id int) time.Time {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.modTimes[id]
}

// setDate sets the Date header from the Clock. Without a Clock it
// suppresses the header, as RFC 9110 §6.6.1 asks of a server without a
// reliable clock: a fixed Date would make every response look months old to
// a cache, and no Date keeps the output byte-stable.
func (s *Site) setDate(h http.Header) {
	if s.opts.Clock == nil {
		h["Date"] = nil
		return
	}
	h.Set("Date", s.opts.Clock().UTC().Format(http.TimeFormat))
}

// ServeHTTP answers GET and HEAD (other methods get 405), after the
// configured latency, with injected faults taking precedence over pages.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveControl(w, r) {
		return
	}
	key := r.URL.RequestURI()
	entry := Request{Time: time.Now(), Method: r.Method, Path: key, Remote: r.RemoteAddr}
	attempt := s.rec.attempt(key)

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !s.wait(r.Context()) {
			s.rec.add(entry, StatusAborted, 0)
			return
		}
		w.Header().Set("Allow", "GET, HEAD")
		s.writeSimple(w, r, entry, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if s.serveFault(w, r, entry, attempt) {
		return
	}
	if !s.wait(r.Context()) {
		s.rec.add(entry, StatusAborted, 0)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	p, contentType := s.lookup(scheme+"://"+r.Host, key)
	if p == nil {
		s.writeSimple(w, r, entry, http.StatusNotFound, "not found")
		return
	}
	h := w.Header()
	s.setDate(h)
	h.Set("ETag", p.etag)
	h.Set("Last-Modified", p.modTime.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", s.opts.CacheControl)
	if notModified(r, p) {
		s.rec.add(entry, http.StatusNotModified, 0)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(p.body)))
	if r.Method == http.MethodHead {
		s.rec.add(entry, http.StatusOK, 0)
		w.WriteHeader(http.StatusOK)
		return
	}
	if !s.sleep(r.Context(), transferTime(len(p.body), s.opts.Bandwidth)) {
		s.rec.add(entry, StatusAborted, 0)
		return
	}
	s.rec.add(entry, http.StatusOK, int64(len(p.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(p.body)
}

// transferTime is how long n bytes take at bandwidth bytes per second (0:
// no time).
func transferTime(n int, bandwidth int64) time.Duration {
	if bandwidth <= 0 {
		return 0
	}
	return time.Duration(int64(n) * int64(time.Second) / bandwidth)
}

// notModified applies RFC 9110 §13.2.2: If-None-Match (weak comparison)
// decides when present; otherwise If-Modified-Since, at one-second precision.
func notModified(r *http.Request, p *page) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(p.etag, "W/") {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !p.modTime.Truncate(time.Second).After(t)
	}
	return false
}

// wait sleeps for the configured latency; false if the client went away or
// the site was closed first.
func (s *Site) wait(ctx context.Context) bool { return s.sleep(ctx, s.opts.Latency) }

// timerSleep is Site.sleep outside tests.
func (s *Site) timerSleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// writeSimple writes a short text/plain response with status code.
func (s *Site) writeSimple(w http.ResponseWriter, r *http.Request, entry Request, code int, msg string) {
	body := msg + "\n"
	h := w.Header()
	s.setDate(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	n := int64(len(body))
	if r.Method == http.MethodHead {
		n = 0
	}
	s.rec.add(entry, code, n)
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}
