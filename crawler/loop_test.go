package crawler

import (
	"context"
	"strings"
	"testing"
	"time"

	"crawlcache/testsite"
)

// TestCrawlEndsWhenDrainedCheckKeepsFailing: a frontier store that answers
// claims but never the drained check (here: a run id the _id-prefix scan
// refuses) ends the run with an error naming the check, instead of looping
// forever because each successful claim reset the failure count.
func TestCrawlEndsWhenDrainedCheckKeepsFailing(t *testing.T) {
	e := newEnv(t)
	_, base := newSite(t, testsite.Options{Pages: 3, Seed: 1})
	c, err := newCrawl(e.options("has space", base+"/", nil))
	if err != nil {
		t.Fatalf("newCrawl: %v", err)
	}
	// A guard against the hang this test is about, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = c.run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the crawl did not end: the loop kept retrying a failing drained check")
	}
	if err == nil {
		t.Skip("this store answers the drained check for a run id with a space: nothing to test here")
	}
	if !strings.Contains(err.Error(), "drained") {
		t.Errorf("error %q, want it to name the drained check", err)
	}
}
