package crawler

import (
	"strings"

	"github.com/gocolly/colly/v2"

	"crawlcache/cache"
	"crawlcache/parses"
)

// bodyHash is parses.BodyHash(r.Body): the hash the cache stored with the
// body (cache.HeaderBodySHA256) when colly handed the crawler the very
// bytes the cache served, else the hash of r.Body computed here. On a
// re-crawl of unchanged pages (a 304 or a fresh hit) that saves hashing
// every body on every run.
func (c *crawl) bodyHash(r *colly.Response) string {
	if h := cache.StoredBodySHA256(*r.Headers); h != "" && c.servedAsIs(r) {
		return h
	}
	return parses.BodyHash(r.Body)
}

// servedAsIs reports whether colly left the body of r as the cache served
// it. colly v2.3.0 changes a body in two places (http_backend.go Do and
// Response.fixCharset): it gunzips a body whose Content-Encoding or
// Content-Type says gzip (or whose path ends in .xml.gz), and it converts
// to UTF-8 a body whose Content-Type names another charset, or none when
// charset detection is on (or the request asks for an encoding). The
// tests below mirror those conditions, erring towards "changed": a body
// colly may have touched is hashed again. colly's MaxBodySize is one byte
// over the largest body the cache stores, so a stored body is never
// truncated.
func (c *crawl) servedAsIs(r *colly.Response) bool {
	if r.Request == nil || r.Request.ResponseCharacterEncoding != "" || int64(len(r.Body)) > c.maxBody {
		return false
	}
	ct := strings.ToLower(r.Headers.Get("Content-Type"))
	if r.Headers.Get("Content-Encoding") != "" || strings.Contains(ct, "gzip") ||
		(r.Request.URL != nil && strings.HasSuffix(strings.ToLower(r.Request.URL.Path), ".gz")) {
		return false
	}
	for _, binary := range []string{"image/", "video/", "audio/", "font/"} {
		if strings.Contains(ct, binary) {
			return true // never converted
		}
	}
	if !strings.Contains(ct, "charset") {
		return !c.detectCharset
	}
	return strings.Contains(ct, "utf-8") || strings.Contains(ct, "utf8")
}
