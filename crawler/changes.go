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
	if c.opts.Changes == nil {
		return
	}
	o := changes.Observation{URL: u, Parse: parse}
	if r != nil {
		o.Status = r.StatusCode
		if o.Status >= 200 && o.Status < 300 {
			o.Body = r.Body
			if pp != nil {
				o.BodyHash, o.State = pp.bodyHash, pp.state
			} else {
				o.BodyHash = c.bodyHash(r)
			}
		}
	}
	c.record(o, cause)
}

// record tells the change tracker o, or, with cause set, that the page
// failed. A 2xx observation may come without its body (a page finished
// from its head: the hash then says it all). A store error stops the run:
// the records are what the next run compares with, and what the run's
// summary is counted from once it completes.
func (c *crawl) record(o changes.Observation, cause error) {
	t := c.opts.Changes
	if t == nil {
		return
	}
	if cause != nil {
		o.Err, o.ErrorKind = cause, errorKind(cause)
		var re *respondedError
		if errors.As(cause, &re) {
			o.Status = re.status // counted in Progress.Statuses
		}
	}
	ctx, cancel := context.WithTimeout(c.ackCtx, reuseTimeout)
	defer cancel()
	if _, err := t.Observe(ctx, o); err != nil {
		c.setFatal(fmt.Errorf("record what changed: %w", err))
	}
}
