package crawler

import (
	"context"
	"net/http"
	"time"

	"github.com/gocolly/colly/v2"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/parses"
	"crawlcache/pipeline"
	"crawlcache/store"
)

// reuseTimeout bounds one lookup or save of a parse record: a slow store
// costs a parse, never a stuck page.
const reuseTimeout = 10 * time.Second

// pageParse is what the crawl knows of one HTML page's parse: the record
// it may reuse, or the parse it makes and then stores. It rides along with
// the page to the pipeline in pipeline.Page.Meta.
type pageParse struct {
	id, key, url, bodyHash string
	rec                    *parses.Record // reused; nil: parsed this run
	stored                 [][]pipeline.KV
	links                  []string // found this run (rec == nil)
	tooMany                bool     // more links than a record keeps
	// state is the read of the page's change state (the run's
	// Options.Changes), done with the record's, for observe; nil
	// without change tracking.
	state *store.Lookup
}

// rulesDigest is the digest of the run's follow and extract rules.
func (c *crawl) rulesDigest() string {
	extract := ""
	if c.opts.Pipeline != nil && c.opts.Pipeline.Extractor != nil {
		extract = c.opts.Pipeline.Extractor.Rules()
	}
	return ParseRules(c.follow, extract)
}

// ParseRules is the digest under which a run whose Options.Follow is
// follow (nil: DefaultFollow) and whose extractor's rules are extract
// (pipeline.Extractor.Rules; empty without one) stores and reuses parse
// results: what a run records of itself so that a sweep of old parse
// records knows which rules are in use.
func ParseRules(follow []string, extract string) string {
	if follow == nil {
		follow = DefaultFollow
	}
	return parses.Rules(follow, extract)
}

// lookupParse returns the parse state of r's page when parse results are
// reused (Options.Parses) and the page is HTML, with the stored record
// when one was made from this very body under the same rules; nil
// otherwise. The record is read together with the page's change state
// (store.GetAll), which observe then uses, unless pre (the head read
// before the request) read them under the same cache key. A store error
// is logged once and costs a parse.
func (c *crawl) lookupParse(r *colly.Response, pageURL string, pre *preRead) *pageParse {
	if c.opts.Parses == nil || !isHTML(*r.Headers, r.Body) {
		return nil
	}
	req := &http.Request{Method: http.MethodGet, URL: r.Request.URL, Header: http.Header{}}
	if r.Request.Headers != nil {
		req.Header = *r.Request.Headers
	}
	key := cache.Key(req, nil, c.opts.CachePolicy, nil)
	pp := &pageParse{id: parses.ID(key, c.rules), key: key, url: pageURL, bodyHash: c.bodyHash(r)}
	var parse store.Lookup
	if pre != nil && pre.key == key && (c.opts.Changes == nil || (pre.state != nil && pre.state.ID == c.opts.Changes.StateRef(pageURL).ID)) {
		parse, pp.state = pre.parse, pre.state
	} else {
		c.readParse(pp.id, pageURL, &parse, &pp.state)
	}
	rec, stored, err := reusable(parse, pp.bodyHash)
	if err != nil {
		c.reuseErr(err)
		return pp
	}
	if rec != nil {
		pp.rec, pp.stored = rec, stored
	}
	return pp
}

// readParse reads the parse record id and, with change tracking, the
// change state of pageURL into *parse and *state, together with the
// lookups more (store.GetAll), which it returns read, last.
func (c *crawl) readParse(id, pageURL string, parse *store.Lookup, state **store.Lookup, more ...store.Lookup) []store.Lookup {
	ls := []store.Lookup{c.opts.Parses.Ref(id)}
	if c.opts.Changes != nil {
		ls = append(ls, c.opts.Changes.StateRef(pageURL))
	}
	n := len(ls)
	ls = append(ls, more...)
	ctx, cancel := context.WithTimeout(c.ackCtx, reuseTimeout)
	store.GetAll(ctx, ls)
	cancel()
	*parse = ls[0]
	if n > 1 {
		*state = &ls[1]
	}
	return ls[n:]
}

// reusable is the record the read l found for a body of hash bodyHash,
// with its items' fields; nil when there is none, or one that cannot be
// used (parses.StoredFields refuses it). An error is the store's.
func reusable(l store.Lookup, bodyHash string) (*parses.Record, [][]pipeline.KV, error) {
	rec, err := parses.Found(l, bodyHash)
	if err != nil || rec == nil {
		return nil, nil, err
	}
	stored, ok := parses.StoredFields(rec)
	if !ok {
		return nil, nil, nil
	}
	return rec, stored, nil
}

// reuseErr logs the first store error of the parse records at WARN and
// later ones at DEBUG.
func (c *crawl) reuseErr(err error) {
	if c.reuseErrs.Add(1) == 1 {
		c.log.Warn("parse results: store error; pages are parsed instead", "err", err)
		return
	}
	c.log.Debug("parse results: store error", "err", err)
}

// countParse counts r's page as parsed or, when pp has a stored parse,
// as reused, and returns which (changes.ParseParsed, changes.ParseReused).
// Pages that are not HTML are neither ("").
func (c *crawl) countParse(r *colly.Response, pp *pageParse) string {
	switch {
	case pp == nil && (c.opts.Parses != nil || !isHTML(*r.Headers, r.Body)):
		return ""
	case pp != nil && pp.rec != nil:
		c.reused.Add(1)
		return changes.ParseReused
	}
	c.parsed.Add(1)
	return changes.ParseParsed
}

// collect remembers a link found by this run's parse of pp's page, for its
// record.
func (pp *pageParse) collect(u string) {
	if pp == nil || pp.rec != nil || pp.tooMany {
		return
	}
	if len(pp.links) >= parses.MaxLinks {
		pp.tooMany, pp.links = true, nil
		return
	}
	pp.links = append(pp.links, u)
}

// saveParse stores the record of pp's page made this run, with the fields
// of its items. A store error is logged, not fatal: the page is parsed
// again next time.
func (c *crawl) saveParse(pp *pageParse, items []pipeline.Item) {
	if pp == nil || pp.rec != nil || pp.tooMany {
		return
	}
	rec := &parses.Record{
		ID: pp.id, URL: pp.url, CacheKey: pp.key, Rules: c.rules, BodyHash: pp.bodyHash,
		Links: pp.links, Items: parses.ItemFields(items), ParsedAt: c.now().UTC(),
	}
	ctx, cancel := context.WithTimeout(c.ackCtx, reuseTimeout)
	defer cancel()
	if _, err := c.opts.Parses.Save(ctx, rec); err != nil {
		c.reuseErr(err)
	}
}

// onParsed is the pipeline's OnParsed hook: the page was parsed for its
// items, so its parse result is stored.
func (c *crawl) onParsed(pg pipeline.Page, items []pipeline.Item) {
	if pp, ok := pg.Meta.(*pageParse); ok {
		c.saveParse(pp, items)
	}
}

// findLinks calls each with the links of r's page: from its stored parse,
// from the tokenizer (simple follow selectors) or from a goquery parse
// (the others, when parse results are reused; colly's parse otherwise).
// It stops when each returns false.
func (c *crawl) findLinks(r *colly.Response, st *pageState, pp *pageParse, each func(string) bool) {
	switch {
	case pp != nil && pp.rec != nil:
		for _, u := range pp.rec.Links {
			if !each(u) {
				return
			}
		}
	case c.linkSel != nil:
		if !isHTML(*r.Headers, r.Body) {
			return
		}
		if !scanLinks(r.Body, r.Request.URL.String(), c.linkSel, func(u string) bool {
			pp.collect(u)
			return each(u)
		}) {
			c.parsedLinks(r, pp, each) // a page the tokenizer would read differently
		}
	case c.linkFinder != nil:
		c.parsedLinks(r, pp, each)
	default:
		for _, u := range st.links {
			if !each(u) {
				return
			}
		}
	}
}

// parsedLinks finds the links of r's page with the pipeline's goquery
// link finder and resolves them as colly would.
func (c *crawl) parsedLinks(r *colly.Response, pp *pageParse, each func(string) bool) {
	pg := pipeline.Page{URL: r.Request.URL.String(), Status: r.StatusCode, Header: *r.Headers, Body: r.Body}
	values, base, err := c.linkFinder.Find(pg)
	if err != nil {
		return // a page the parser refuses has no links, as with colly
	}
	resolveLinks(pg.URL, base, values, func(u string) bool {
		pp.collect(u)
		return each(u)
	})
}

// resolveLinks resolves attribute values found on the page at pageURL
// against its <base href> (if any, resolved against pageURL) as colly's
// Request.AbsoluteURL does: fragments-only values are dropped.
func resolveLinks(pageURL, baseHref string, values []string, yield func(string) bool) {
	base, err := linkParser.Parse(pageURL)
	if err != nil {
		return
	}
	if baseHref != "" {
		if u, err := base.Parse(baseHref); err == nil {
			if b, err := linkParser.Parse(u.Href(false)); err == nil {
				base = b
			}
		}
	}
	for _, v := range values {
		if v == "" || v[0] == '#' {
			continue
		}
		u, err := base.Parse(v)
		if err != nil {
			continue
		}
		if !yield(u.Href(false)) {
			return
		}
	}
}
