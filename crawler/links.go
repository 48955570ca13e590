package crawler

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

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

// Reasons a link found on a page is not followed (LinkVerdict.Skip).
const (
	SkipNotHTTP   = "scheme"    // not an http(s) URL (mailto:, javascript:, unparsable)
	SkipDuplicate = "duplicate" // listed earlier on the same page
	SkipDepth     = "depth"     // beyond max_depth
	SkipDomain    = "domain"    // host not in allowed_domains
	SkipExclude   = "exclude"   // matches an exclude pattern
	SkipInclude   = "include"   // matches no include pattern
	SkipRobots    = "robots"    // disallowed by robots.txt
)

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
		if l, skip, _ := c.judgeLink(e, raw, seen); skip == "" {
			out = append(out, l)
		}
	}
	return out
}

// judgeLink decides on one raw link of e's page: the frontier link to
// add, or why not (a Skip* reason, and the rule that decided when there
// is one: the pattern, the depth limit). seen holds the links already
// judged on the page.
func (c *crawl) judgeLink(e frontier.Entry, raw string, seen map[string]bool) (l frontier.Link, skip, rule string) {
	f := c.linkFactsOf(raw)
	if !f.ok {
		return frontier.Link{URL: raw}, SkipNotHTTP, ""
	}
	l = f.link
	if seen[l.URL] {
		return l, SkipDuplicate, ""
	}
	seen[l.URL] = true
	l.URL = f.final
	l.Depth = e.Depth + 1
	l.Parent = e.URL
	if c.opts.MaxDepth > 0 && l.Depth > c.opts.MaxDepth {
		return l, SkipDepth, fmt.Sprintf("max_depth %d", c.opts.MaxDepth)
	}
	if f.skip != "" {
		return l, f.skip, f.rule
	}
	if c.opts.Robots && !c.robots.Allowed(c.fetchCtx, f.u) {
		c.breakdown.blocked(l.URL)
		return l, SkipRobots, ""
	}
	return l, "", ""
}

// linkFacts is what judgeLink finds of a raw link whatever page it is on:
// its normalized link (ok false: not http(s)), the URL followed (a seed's
// secret put back), that URL parsed, and whether allowed_domains,
// include or exclude skip it. robots.txt is asked every time.
type linkFacts struct {
	link  frontier.Link
	final string
	u     *url.URL
	ok    bool
	skip  string
	rule  string
}

// linkMemoSize bounds the links whose facts a crawl remembers: pages of
// a site share most of their links (navigation), and a re-crawl from
// stored parses judges the same links page after page. The memo is
// cleared when full.
const linkMemoSize = 4096

// linkMemo remembers linkFacts by raw link. Safe for concurrent use: a
// sync.Map, whose reads of links already there take no lock (every fetch
// goroutine judges every link of its page here), holding pointers, so that
// a lookup touches a small entry rather than a copy of the facts.
type linkMemo struct {
	m sync.Map     // raw link → *linkFacts
	n atomic.Int64 // entries stored since the memo was last cleared
}

// linkFactsOf returns the facts of raw, from the memo when it has them.
// They must not be changed.
func (c *crawl) linkFactsOf(raw string) *linkFacts {
	if f, ok := c.links.m.Load(raw); ok {
		return f.(*linkFacts)
	}
	f := &linkFacts{}
	f.link, f.ok = c.normalize(raw)
	if f.ok {
		f.final = f.link.URL
		if len(c.secrets) > 0 {
			// The page links to a seed with its secret: it is that seed.
			if r := c.redact(f.final); c.secrets[r] == f.final {
				f.final = r
			}
		}
		u, err := url.Parse(f.final)
		switch {
		case err != nil || !c.hostAllowed(u):
			f.skip = SkipDomain
		default:
			f.u = u
			f.skip, f.rule = c.patternSkip(f.final)
		}
	}
	if c.links.n.Add(1) > linkMemoSize {
		c.links.m.Clear()
		c.links.n.Store(1)
	}
	c.links.m.Store(raw, f)
	return f
}

// patternSkip applies Exclude and Include to a normalized URL: it returns
// SkipExclude and the first exclude pattern it matches, SkipInclude when
// it matches no include pattern, or "" when the link may be followed.
func (c *crawl) patternSkip(u string) (skip, rule string) {
	for _, re := range c.opts.Exclude {
		if re.MatchString(u) {
			return SkipExclude, re.String()
		}
	}
	if len(c.opts.Include) == 0 {
		return "", ""
	}
	for _, re := range c.opts.Include {
		if re.MatchString(u) {
			return "", ""
		}
	}
	return SkipInclude, ""
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
