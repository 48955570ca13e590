package jobs

import (
	"fmt"

	"crawlcache/configs"
	"crawlcache/crawler"
	"crawlcache/render"
)

// renderOptions turns the job's render section into the crawler's
// options; nil when the job does not render.
func (r *Runner) renderOptions(job *configs.Job) *crawler.RenderOptions {
	if !job.Render.Enabled {
		return nil
	}
	rd := job.Render
	return &crawler.RenderOptions{
		Chromium: r.Chromium, Wait: render.ParseWait(rd.Wait), Timeout: rd.Timeout, Parallelism: rd.Parallelism,
		Block: rd.Block, Cookies: rd.Cookies, Include: rd.Include,
	}
}

// checkRender fails a job that renders pages when Chromium cannot be
// found, before any run is recorded, saying how to install it.
func (r *Runner) checkRender(job *configs.Job) error {
	if !job.Render.Enabled {
		return nil
	}
	if _, err := render.FindChromium(r.Chromium); err != nil {
		return fmt.Errorf("job %s renders pages (render in %s): %w", job.Name, job.Source, err)
	}
	return nil
}
