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
// counted it) or, with r nil, the failure cause. A store error stops the
// run: the records are what the next run compares with, and what the
// run's summary is counted from once it completes.
func (c *crawl) observe(u string, r *colly.Response, pp *pageParse, parse string, cause error) {
	t := c.opts.Changes
	if t == nil {
		return
	}
	o := changes.Observation{URL: u, Err: cause, Parse: parse}
	if cause != nil {
		o.ErrorKind = errorKind(cause)
		var re *respondedError
		if errors.As(cause, &re) {
			o.Status = re.status // counted in Progress.Statuses
		}
	}
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
	ctx, cancel := context.WithTimeout(c.ackCtx, reuseTimeout)
	defer cancel()
	if _, err := t.Observe(ctx, o); err != nil {
		c.setFatal(fmt.Errorf("record what changed: %w", err))
	}
}
