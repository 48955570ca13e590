package crawler

import (
	"fmt"
	"net/url"
	"strings"

	"crawlcache/cache"
	"crawlcache/frontier"
)

// normalize turns an absolute URL into a frontier link: fragment dropped,
// normalized like the cache's keys (cache.NormalizeURL, no parameter
// removed), http and https only.
func (c *crawl) normalize(raw string) (frontier.Link, bool) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	n, err := cache.NormalizeURL(raw, nil)
	if err != nil {
		return frontier.Link{}, false
	}
	u, err := url.Parse(n)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return frontier.Link{}, false
	}
	return frontier.Link{URL: n, Host: u.Host}, true
}

// filterLinks turns the raw links found on e's page into the frontier links
// to add: normalized, deduplicated, within depth, domains, include/exclude
// and robots.txt.
func (c *crawl) filterLinks(e frontier.Entry, raws []string) []frontier.Link {
	if c.opts.MaxDepth > 0 && e.Depth+1 > c.opts.MaxDepth {
		return nil
	}
	seen := make(map[string]bool, len(raws))
	var out []frontier.Link
	for _, raw := range raws {
		l, ok := c.normalize(raw)
		if !ok || seen[l.URL] {
			continue
		}
		seen[l.URL] = true
		if len(c.secrets) > 0 {
			// The page links to a seed with its secret: it is that seed.
			if r := c.redact(l.URL); c.secrets[r] == l.URL {
				l.URL = r
			}
		}
		u, err := url.Parse(l.URL)
		if err != nil || !c.hostAllowed(u) || !c.matches(l.URL) {
			continue
		}
		if c.opts.Robots && !c.robots.Allowed(c.fetchCtx, u) {
			c.breakdown.blocked(l.URL)
			continue
		}
		l.Depth = e.Depth + 1
		l.Parent = e.URL
		out = append(out, l)
	}
	return out
}

// matches applies Include and Exclude to a normalized URL.
func (c *crawl) matches(u string) bool {
	for _, re := range c.opts.Exclude {
		if re.MatchString(u) {
			return false
		}
	}
	if len(c.opts.Include) == 0 {
		return true
	}
	for _, re := range c.opts.Include {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

// hostAllowed reports whether u's host is an allowed domain or a subdomain
// of one; a domain written with a port matches that host:port only.
func (c *crawl) hostAllowed(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	hostPort := strings.ToLower(u.Host)
	for _, d := range c.allowed {
		if strings.Contains(d, ":") {
			if hostPort == d {
				return true
			}
			continue
		}
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// allowedDomains cleans the configured domains, defaulting to the seeds'
// hosts.
func allowedDomains(domains, seeds []string) ([]string, error) {
	var out []string
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSpace(d))
		d = strings.TrimPrefix(strings.TrimPrefix(d, "http://"), "https://")
		d = strings.TrimSuffix(strings.TrimPrefix(d, "."), "/")
		if d != "" {
			out = append(out, d)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, s := range seeds {
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("seed %q is not an absolute url", s)
		}
		out = append(out, strings.ToLower(u.Hostname()))
	}
	return out, nil
}
