package configs

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"crawlcache/render"
)

// Defaults of the render section.
const (
	DefaultRenderWait        = "networkidle"
	DefaultRenderTimeout     = render.DefaultTimeout
	DefaultRenderParallelism = render.DefaultParallelism
)

// Render says which pages are loaded in headless Chromium before links
// are followed and items extracted. The zero value (Enabled false) renders
// nothing.
type Render struct {
	// Enabled turns rendering on for the job's pages (HTML responses with
	// a 2xx status), or only those matching Include.
	Enabled bool
	// Wait is when a page counts as rendered: "load", "networkidle" (no
	// request open for 500 ms after load) or a CSS selector that must
	// match. Default DefaultRenderWait.
	Wait string
	// Timeout bounds one page's render. Default DefaultRenderTimeout.
	Timeout time.Duration
	// Parallelism is how many pages are rendered at once. Default
	// DefaultRenderParallelism.
	Parallelism int
	// Block lists resource types answered without a request (image, font,
	// media, stylesheet, script, xhr, fetch, ...). Default image, font,
	// media; an empty list blocks none.
	Block []string
	// Include, if not empty, renders only pages whose URL matches one of
	// these; IncludePatterns are their sources.
	Include         []*regexp.Regexp
	IncludePatterns []string
	// Cookies keeps a cookie jar per page; by default no request of a
	// render carries a cookie.
	Cookies bool
}

// renderKeys are the keys of the render section.
var renderKeys = []string{"enabled", "wait", "timeout", "parallelism", "block", "include", "cookies"}

// defaultRender is the render section's value before the file is read.
func defaultRender() Render {
	return Render{
		Wait: DefaultRenderWait, Timeout: DefaultRenderTimeout, Parallelism: DefaultRenderParallelism,
		Block: slices.Clone(render.DefaultBlock),
	}
}

// render reads the render section over the defaults in r.
func (d *decoder) render(n *yaml.Node, p string, r *Render) {
	m, ok := d.fields(n, p, renderKeys...)
	if !ok {
		return
	}
	r.Enabled = true // a render section turns rendering on unless it says enabled: false
	if v, ok := m["enabled"]; ok {
		r.Enabled, _ = d.boolean(v, join(p, "enabled"))
	}
	if v, ok := m["wait"]; ok {
		kp := join(p, "wait")
		if s, ok := d.nonEmpty(v, kp); ok {
			s = strings.TrimSpace(s)
			if s == "load" || s == "networkidle" || d.checkSelector(v, kp, s) {
				r.Wait = s
			}
		}
	}
	if v, ok := m["timeout"]; ok {
		kp := join(p, "timeout")
		if t, ok := d.duration(v, kp); ok {
			if t == 0 {
				d.errorf(v, kp, "must be > 0, got %s", got(v))
			} else {
				r.Timeout = t
			}
		}
	}
	if v, ok := m["parallelism"]; ok {
		if i, ok := d.integer(v, join(p, "parallelism"), 1); ok {
			r.Parallelism = i
		}
	}
	if v, ok := m["block"]; ok {
		r.Block, _ = d.strs(v, join(p, "block"), func(it *yaml.Node, kp, s string) bool {
			if !slices.Contains(render.ResourceTypes, s) {
				d.errorf(it, kp, "unknown resource type %s; one of %s", got(it), strings.Join(render.ResourceTypes, ", "))
				return false
			}
			return true
		})
		if r.Block == nil {
			r.Block = []string{}
		}
	}
	if v, ok := m["include"]; ok {
		r.Include, r.IncludePatterns = d.regexps(v, join(p, "include"))
	}
	if v, ok := m["cookies"]; ok {
		r.Cookies, _ = d.boolean(v, join(p, "cookies"))
	}
}

// Renders reports whether the job renders the page at url (normalized).
func (r Render) Renders(url string) bool {
	if !r.Enabled {
		return false
	}
	if len(r.Include) == 0 {
		return true
	}
	for _, re := range r.Include {
		if re.MatchString(url) {
			return true
		}
	}
	return false
}
