package crawler

import (
	"net/http"
	"net/url"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// When parse results are reused, a page is first judged from small
// documents alone, read together before any request: the cache's Page of
// its response (cache.Transport.ReadHead), its parse record and its change
// state. When the cache would serve the response as a fresh hit and the
// parse record was made from that very body (the Page names its hash), the
// page is finished from the record: no colly request, and its body is
// never read from the store. When the response is due instead, and the
// Page holds its validators, the conditional request is made from the
// Page (cache.Transport.RevalidateHead): a 304 finishes the page the same
// way, and any other answer, already stored by the cache, is handed to
// colly's request for the page (handoff.go) instead of being fetched
// again. Otherwise the page is requested as usual, and the parse record
// and change state read here are used again (preRead), so the head costs
// one small read.

// preRead is what the head read of a page found, handed to its request.
type preRead struct {
	key   string // the cache key read under
	parse store.Lookup
	state *store.Lookup // nil without change tracking
}

// headRequest is the request colly would make for reqURL (colly's URL
// parsing, the job's headers, User-Agent and Accept), on the fetch
// context and with the page's sitemap hint: the cache judges it as it
// would judge colly's.
func (c *crawl) headRequest(reqURL string) (*http.Request, bool) {
	parsed, err := linkParser.Parse(reqURL)
	if err != nil {
		return nil, false
	}
	u, err := url.Parse(parsed.Href(false))
	if err != nil {
		return nil, false
	}
	hdr := c.requestHeader()
	if hdr.Get("Accept") == "" {
		hdr.Set("Accept", "*/*")
	}
	if hdr.Get("Host") != "" {
		return nil, false // a Host override: leave it to colly
	}
	req, err := http.NewRequestWithContext(c.fetchCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false
	}
	req.Header = hdr
	if c.lastMods != nil {
		req = withLastMod(c, req)
	}
	return req, true
}

// fromHead finishes e from its head when it can (true), and otherwise
// returns what it read for the request (nil when it read nothing) and the
// handoff token under which the request's answer waits when the head was
// revalidated and the origin sent a new body ("" when none).
func (f *fetcher) fromHead(e frontier.Entry, reqURL string) (bool, *preRead, string) {
	c := f.c
	if c.opts.Parses == nil || c.render != nil || c.cache == nil {
		return false, nil, ""
	}
	req, ok := c.headRequest(reqURL)
	if !ok {
		return false, nil, ""
	}
	hr, ok := c.cache.ReadHead(req)
	if !ok {
		return false, nil, ""
	}
	pageURL := c.redact(req.URL.String())
	pre := &preRead{key: hr.Key}
	found := c.readParse(parses.ID(hr.Key, c.rules), pageURL, &pre.parse, &pre.state, hr.Lookup, hr.Rev)
	head, ok := c.cache.JudgeHead(hr, found[0], found[1])
	if !ok || head.Status < 200 || head.Status > 299 {
		return false, pre, ""
	}
	rec, stored, err := reusable(pre.parse, head.BodySHA256)
	if err != nil || rec == nil {
		return false, pre, "" // a store error is met again, and logged, by the request
	}
	if c.opts.Changes != nil && !c.opts.Changes.KnowsBody(pageURL, pre.state, head.BodySHA256) {
		return false, pre, ""
	}
	served := cache.ServedHit
	if head.Due {
		ans := c.cache.RevalidateHead(head)
		switch {
		case ans.NotModified:
			served = cache.ServedRevalidated
		case ans.Stale:
			served = cache.ServedStale
		default:
			return false, pre, c.handoffs.put(req.URL.String(), ans.Response, ans.Err)
		}
	} else {
		c.cache.UsedHead(head)
	}
	pp := &pageParse{id: rec.ID, key: hr.Key, url: pageURL, bodyHash: head.BodySHA256, rec: rec, stored: stored, state: pre.state}
	c.countServed(served)
	c.breakdown.status(head.Status)
	c.reused.Add(1)
	c.heads.Add(1)
	c.record(changes.Observation{URL: pageURL, Status: head.Status, BodyHash: pp.bodyHash, State: pp.state, Parse: changes.ParseReused}, nil)
	c.finish(e, nil, &pageState{}, pp, pipeline.Page{
		RunID: c.opts.RunID, Job: c.opts.Job, URL: pageURL, Status: head.Status,
		Header: http.Header{}, FetchedAt: c.now(), Served: served, Depth: e.Depth,
	})
	return true, nil, ""
}
