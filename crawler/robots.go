package crawler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/temoto/robotstxt"
)

// maxRobotsSize bounds the robots.txt body read (Google reads 500 KiB).
const maxRobotsSize = 512 << 10

// robots fetches and remembers each host's robots.txt for one run. The file
// is requested through the cache transport like any page, so a warm run
// reads it from the store and a resumed run sees the same rules.
type robots struct {
	client    *http.Client // goes through the cache transport
	userAgent string
	headers   http.Header
	polite    *Politeness // receives Crawl-delay; may be nil
	logger    *slog.Logger

	mu    sync.Mutex
	hosts map[string]*robotsEntry
}

type robotsEntry struct {
	once sync.Once
	data *robotstxt.RobotsData // nil: everything allowed
}

func newRobots(client *http.Client, userAgent string, headers http.Header, polite *Politeness, logger *slog.Logger) *robots {
	return &robots{client: client, userAgent: userAgent, headers: headers, polite: polite, logger: logger, hosts: make(map[string]*robotsEntry)}
}

// Allowed reports whether u may be fetched. The first call for a host
// fetches its robots.txt (concurrent callers for that host wait for it);
// a robots.txt that cannot be fetched allows everything, as a 404 does,
// while a 5xx answer disallows the host (RFC 9309).
func (r *robots) Allowed(ctx context.Context, u *url.URL) bool {
	r.mu.Lock()
	e, ok := r.hosts[u.Host]
	if !ok {
		e = &robotsEntry{}
		r.hosts[u.Host] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.data = r.fetch(ctx, u) })
	if e.data == nil {
		return true
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return e.data.TestAgent(p, r.userAgent)
}

func (r *robots) fetch(ctx context.Context, u *url.URL) *robotstxt.RobotsData {
	robotsURL := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/robots.txt"}).String()
	data, err := r.get(ctx, robotsURL)
	if err != nil {
		if ctx.Err() != nil { // the run is stopping: nothing will be fetched
			r.logger.Debug("robots.txt fetch cancelled", "url", robotsURL, "err", err)
			return nil
		}
		r.logger.Warn("robots.txt unavailable, allowing the host", "url", robotsURL, "err", err)
		return nil
	}
	g := data.FindGroup(r.userAgent)
	if g != nil && g.CrawlDelay > 0 && r.polite != nil {
		r.polite.SetCrawlDelay(u.Host, g.CrawlDelay)
		r.logger.Info("robots.txt crawl-delay", "host", u.Host, "delay", g.CrawlDelay)
	}
	return data
}

func (r *robots) get(ctx context.Context, robotsURL string) (*robotstxt.RobotsData, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, robotsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build robots.txt request: %w", err)
	}
	for k, vs := range r.headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("User-Agent", r.userAgent)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", robotsURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRobotsSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", robotsURL, err)
	}
	data, err := robotstxt.FromStatusAndBytes(resp.StatusCode, body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", robotsURL, err)
	}
	return data, nil
}
