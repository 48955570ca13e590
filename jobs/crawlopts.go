package jobs

import (
	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/pipeline"
)

// crawlerOptions are the crawler options a job and this Runner's store
// give every run of the job; execute adds the run's own (run id, frontier,
// pipeline, hooks). Runner.Extract uses the same, so that what it shows
// for a page is what a run does with it.
func (r *Runner) crawlerOptions(job *configs.Job) crawler.Options {
	return crawler.Options{
		Job:   job.Name,
		Seeds: job.Seeds, AllowedDomains: job.AllowedDomains, MaxDepth: job.MaxDepth, MaxPages: job.MaxPages,
		Include: job.Include, Exclude: job.Exclude, Follow: job.Follow,
		UserAgent: job.UserAgent, Headers: job.Headers, Robots: job.Robots, Timeout: job.Timeout, MaxBodySize: job.MaxBodySize,
		PerHost: job.Rate.PerHost, Burst: job.Rate.Burst, Parallelism: job.Rate.Parallelism,
		RetryMax: job.Retry.Max, RetryBackoff: job.Retry.Backoff, PerHostParallelism: job.Rate.PerHostParallelism,
		Store: r.Store, CachePolicy: cachePolicy(job),
		Now: r.Now, Upstream: r.Upstream, Proxy: job.Proxy, NoProxy: job.NoProxy,
		Sitemaps: crawler.SitemapOptions{Discover: job.Sitemaps.Discover, URLs: job.Sitemaps.URLs, TrustLastMod: job.Sitemaps.TrustLastMod},
		Render:   r.renderOptions(job),
	}
}

// extractor is the job's extract section as a pipeline.Extractor.
func extractor(job *configs.Job) (*pipeline.Extractor, error) {
	spec := pipeline.ExtractSpec{Item: job.Extract.Item}
	for _, f := range job.Extract.Fields {
		spec.Fields = append(spec.Fields, pipeline.Field{Name: f.Name, CSS: f.CSS, Attr: f.Attr, Text: f.Text, HTML: f.HTML, All: f.All})
	}
	return pipeline.NewExtractor(spec)
}

// parseRules is the digest of the job's rules under which its runs store
// and reuse parse results (crawler.ParseRules): the crawler's extractor is
// the pipeline's, which a job has only with outputs (Runner.pipeline).
func parseRules(job *configs.Job) string {
	extract := ""
	if len(job.Outputs) > 0 {
		if ex, err := extractor(job); err == nil {
			extract = ex.Rules()
		}
	}
	return crawler.ParseRules(job.Follow, extract)
}

// cachePolicy is the job's cache policy: under expire_after: adaptive a
// page refetched with a body that differs only in the parts the job's
// changes rules ignore counts as unchanged for its revisit interval, as it
// does in the run's change records (changes.Same).
func cachePolicy(job *configs.Job) cache.Policy {
	pol := job.Cache
	if strip := stripper(job.Changes); strip != nil {
		pol.Adaptive.Unchanged = func(prev, next []byte) bool { return changes.Same(prev, next, strip) }
	}
	return pol
}
