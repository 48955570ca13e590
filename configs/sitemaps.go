package configs

import (
	"go.yaml.in/yaml/v3"
)

// Sitemaps says which sitemaps a job reads at the start of each run.
type Sitemaps struct {
	// Discover (`sitemaps: true`) reads the Sitemap: lines of each seed
	// host's robots.txt and its /sitemap.xml.
	Discover bool
	// URLs (`sitemaps: [URL, ...]`) are the sitemaps to read.
	URLs []string
	// TrustLastMod (`trust_lastmod: true`) lets a <lastmod> no newer than
	// the cached copy's last validation count as fresh: served without a
	// request, even when expired.
	TrustLastMod bool
}

// Enabled reports whether the job reads any sitemap.
func (s Sitemaps) Enabled() bool { return s.Discover || len(s.URLs) > 0 }

// sitemaps decodes the `sitemaps` and `trust_lastmod` keys: `sitemaps` is
// true, false or a list of absolute http(s) sitemap URLs.
func (d *decoder) sitemaps(m map[string]*yaml.Node, j *Job) {
	if n, ok := m["sitemaps"]; ok {
		if r := resolve(n); r != nil && r.Kind == yaml.SequenceNode {
			j.Sitemaps.URLs, _ = d.strs(n, "sitemaps", func(it *yaml.Node, p, s string) bool {
				u, ok := d.checkSeed(it, p, s)
				if ok && len(j.AllowedDomains) > 0 && !j.AllowsHost(u.Hostname()) {
					d.errorf(it, p, "host %q is not in allowed_domains: sitemaps are read only from allowed hosts", u.Hostname())
					return false
				}
				return ok
			})
			if len(r.Content) == 0 {
				d.errorf(n, "sitemaps", "an empty list reads no sitemap: write false, true (robots.txt and /sitemap.xml of each seed host) or a list of sitemap URLs")
			}
		} else if s, ok := scalar(n, "!!bool"); ok {
			j.Sitemaps.Discover, _ = d.boolean(s, "sitemaps")
		} else {
			d.errorf(n, "sitemaps", "must be true, false or a list of sitemap URLs, got %s", got(n))
		}
	}
	if n, ok := m["trust_lastmod"]; ok {
		j.Sitemaps.TrustLastMod, _ = d.boolean(n, "trust_lastmod")
		if j.Sitemaps.TrustLastMod && !j.Sitemaps.Enabled() {
			d.errorf(n, "trust_lastmod", "needs sitemaps: without sitemaps there is no <lastmod> to trust")
		}
	}
}
