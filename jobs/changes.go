package jobs

import (
	"context"
	"net/http"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/configs"
	"crawlcache/pipeline"
)

// changeTracker is the change tracker of run runID of job: its records go
// to crawlcache.pages and crawlcache.page_changes, a page's history is
// kept as long as the cache keeps bodies (its TTL, when one is set).
func (r *Runner) changeTracker(ctx context.Context, job *configs.Job, runID string) (*changes.Tracker, error) {
	opts := changes.Options{
		Pages:   r.Store.Collection(Database, changes.PagesCollection),
		Records: r.Store.Collection(Database, changes.RecordsCollection),
		Job:     job.Name, Run: runID, Now: r.Now,
		Strip: stripper(job.Changes),
	}
	admin := cache.NewAdmin(r.Store, cache.DefaultDatabase, r.Now)
	if info, err := admin.TTL(ctx); err == nil && info.Set {
		opts.Retention = info.TTL
	}
	return changes.New(opts)
}

// stripper removes the parts rules ignore from a body; nil when none are.
func stripper(rules configs.Changes) func([]byte) []byte {
	if !rules.Any() {
		return nil
	}
	return func(body []byte) []byte {
		if len(rules.IgnoreCSS) > 0 {
			body = pipeline.WithoutElements(pipeline.Page{Status: http.StatusOK, Header: http.Header{}, Body: body}, rules.IgnoreCSS)
		}
		for _, re := range rules.IgnoreRegex {
			body = re.ReplaceAll(body, nil)
		}
		return body
	}
}
