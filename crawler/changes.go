package crawler

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocolly/colly/v2"

	"crawlcache/changes"
)

// observe tells the run's change tracker (Options.Changes) what page u
// got: a response r (pp carries its body hash when parse results are
// reused; parse says how its links and items were found, as countParse
// counted it) or, with r nil, the failure cause.
func (c *crawl) observe(u string, r *colly.Response, pp *pageParse, parse string, cause error) {
	if r == nil {
		c.record(u, 0, nil, pp, parse, cause)
		return
	}
	var body []byte
	if r.StatusCode >= 200 && r.StatusCode < 300 {
		body = r.Body
		if pp == nil && c.opts.Changes != nil {
			pp = &pageParse{bodyHash: c.bodyHash(r)}
		}
	}
	c.record(u, r.StatusCode, body, pp, parse, cause)
}

// record is observe's work, for a page that got status (0: none) and,
// for a 2xx, body (nil when the page was finished from its head: pp's
// body hash then says it all). A store error stops the run: the records
// are what the next run compares with, and what the run's summary is
// counted from once it completes.
func (c *crawl) record(u string, status int, body []byte, pp *pageParse, parse string, cause error) {
	t := c.opts.Changes
	if t == nil {
		return
	}
	o := changes.Observation{URL: u, Err: cause, Parse: parse, Status: status}
	if cause != nil {
		o.ErrorKind = errorKind(cause)
		var re *respondedError
		if errors.As(cause, &re) {
			o.Status = re.status // counted in Progress.Statuses
		}
	}
	if cause == nil && status >= 200 && status < 300 {
		o.Body = body
		if pp != nil {
			o.BodyHash, o.State = pp.bodyHash, pp.state
		}
	}
	ctx, cancel := context.WithTimeout(c.ackCtx, reuseTimeout)
	defer cancel()
	if _, err := t.Observe(ctx, o); err != nil {
		c.setFatal(fmt.Errorf("record what changed: %w", err))
	}
}
