package jobs

import (
	"context"
	"fmt"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/pipeline"
)

// ExtractRunID labels the items Runner.Extract shows (their run_id and
// the run part of their _id): they belong to no run.
const ExtractRunID = "extract"

// Extraction is what a run of a job does with one page: the crawler's
// Inspection (response, links followed and skipped, why), and the items
// the job's extract section gives on the page.
type Extraction struct {
	*crawler.Inspection
	// Items are the page's items as a run's outputs receive them (with
	// run_id ExtractRunID). A job without outputs extracts them here all
	// the same; a run of it writes none.
	Items []pipeline.Item
	// ExtractErr is why the page could not be parsed for items (a run
	// then counts it in the pipeline's extract errors and goes on).
	ExtractErr error
}

// Extract runs job's follow and extract rules on the page at rawURL, as a
// run would at link depth depth (0: a seed), with no run, lock, frontier
// or output: the page is read from the cache whatever its freshness, and
// fetched through the cache only when nothing is stored for it (see
// crawler.Inspect). The error is for what stops it (a URL that is not
// http(s), the store, ctx); what a run would record against the page is
// in Inspection.Failure.
func (r *Runner) Extract(ctx context.Context, job *configs.Job, rawURL string, depth int) (*Extraction, error) {
	ex, err := extractor(job)
	if err != nil {
		return nil, fmt.Errorf("job %s extract: %w", job.Name, err)
	}
	opts := r.crawlerOptions(job)
	opts.RunID, opts.Worker = ExtractRunID, r.worker()
	opts.Logger = r.log().With("job", job.Name)
	in, err := crawler.Inspect(ctx, opts, rawURL, depth)
	if err != nil {
		return nil, err
	}
	out := &Extraction{Inspection: in}
	if in.Page != nil {
		out.Items, out.ExtractErr = ex.Extract(*in.Page)
	}
	return out, nil
}
