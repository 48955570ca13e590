package crawler

import (
	"net/url"
	"strings"

	"crawlcache/cache"
	"crawlcache/frontier"
)

// Secret query parameters (the cache policy's ignored parameters: api_key,
// token, ...) are the user's secrets when the job's seeds carry them. They
// are never written in clear: the frontier keeps a seed with their values
// redacted, and the fetch puts them back from the job's seeds (Options.Seeds,
// which a resume passes again). Links the site itself published may carry
// such parameters too (signed per-link URLs): those are the site's, not the
// user's, and the frontier keeps them as they are, since it must fetch them
// and must not merge distinct URLs; but logs, errors and items show every
// URL redacted, as the cache stores it.

// seedSecrets maps the frontier form of each seed that carries secret
// parameters (normalized, their values redacted) to the URL to fetch.
type seedSecrets map[string]string

// redact is u as logs and outputs show it (cache.RedactURL).
func (c *crawl) redact(u string) string { return cache.RedactURL(u, c.opts.CachePolicy) }

// seedLink turns a configured seed into its frontier link, with its secret
// parameters redacted, and remembers the URL to fetch for it.
func (c *crawl) seedLink(raw string) (frontier.Link, bool) {
	l, ok := c.normalize(raw)
	if !ok {
		return l, false
	}
	if r := c.redact(l.URL); r != l.URL {
		c.secrets[r] = l.URL
		l.URL = r
	}
	return l, true
}

// learnSeeds fills c.secrets from the configured seeds without adding them,
// for a resume: the frontier holds their redacted form.
func (c *crawl) learnSeeds() {
	for _, s := range c.opts.Seeds {
		c.seedLink(s)
	}
}

// fetchURL is the URL requested for e: a seed's secret parameters are put
// back from the job's seeds. A frontier written by an earlier release may
// hold a seed in clear; it is fetched as it is.
func (c *crawl) fetchURL(e frontier.Entry) string {
	if u, ok := c.secrets[e.URL]; ok {
		return u
	}
	return e.URL
}

// scrub replaces, in msg (an error message that may quote the requested
// URL), every secret parameter of reqURL with its redacted form.
func (c *crawl) scrub(msg, reqURL string) string {
	u, err := url.Parse(reqURL)
	if err != nil || u.RawQuery == "" {
		return msg
	}
	names := c.opts.CachePolicy.SecretParameters()
	for _, pair := range strings.Split(u.RawQuery, "&") {
		name, value, _ := strings.Cut(pair, "=")
		if value == "" || !isSecretName(name, names) {
			continue
		}
		msg = strings.ReplaceAll(msg, pair, name+"=REDACTED")
		if un, err := url.QueryUnescape(value); err == nil && un != value {
			msg = strings.ReplaceAll(msg, un, "REDACTED")
		}
	}
	return msg
}

// isSecretName reports whether the raw parameter name is one of names
// (case-insensitively, after unescaping), as the cache compares them.
func isSecretName(name string, names []string) bool {
	if un, err := url.QueryUnescape(name); err == nil {
		name = un
	}
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// scrubErr is cause with e's secret parameters redacted from its message,
// for logs and the frontier's error field; nil stays nil.
func (c *crawl) scrubErr(e frontier.Entry, cause error) error {
	if cause == nil {
		return nil
	}
	msg := cause.Error()
	scrubbed := c.scrub(msg, c.fetchURL(e))
	if scrubbed == msg {
		return cause
	}
	return &scrubbedError{msg: scrubbed, err: cause}
}

// scrubbedError keeps the chain of the original error for errors.Is while
// its message shows no secret.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
