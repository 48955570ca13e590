package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// keyVersion is hashed first into every key. Changing anything that goes
// into a key must change this string, and a test pins known keys so such a
// change cannot happen by accident (requests-cache's keys changed between
// releases and silently emptied users' caches).
const keyVersion = "crawlcache-key-v1"

// errNotAbsolute is returned by NormalizeURL for a URL without a host.
var errNotAbsolute = errors.New("not an absolute URL")

// Key returns the cache key of req: 32 hex characters of SHA-256 over the
// method, the normalized URL (NormalizeURL with the policy's ignored
// parameters), the userinfo if any, body, and the values of the request
// headers named in p.MatchHeaders and in the Vary header of vary.
//
// vary is the stored entry's header; nil keys on the request alone
// (the primary key). In RFC mode (Policy.CacheControl) Transport stores a
// response that varies on headers beyond match_headers under
// Key(req, body, p, vary), one Entry per variant, and records the Vary
// header names in a Variants document under the primary key: a lookup is
// two _id finds. The crawler policy ignores Vary.
//
// A URL that does not parse as absolute is keyed on its raw text. Key is
// stable across releases: known keys are pinned in a test.
func Key(req *http.Request, body []byte, p Policy, vary http.Header) string {
	h := sha256.New()
	writeField(h, keyVersion)
	writeField(h, strings.ToUpper(methodOf(req)))
	raw := req.URL.String()
	norm, err := NormalizeURL(raw, p.ignoredParameters())
	if err != nil {
		norm = raw
	}
	writeField(h, norm)
	if req.URL.User != nil {
		writeField(h, "userinfo:"+req.URL.User.String())
	}
	if len(body) > 0 {
		writeField(h, "body:")
		writeField(h, string(body))
	}
	for _, name := range keyHeaderNames(p.MatchHeaders, vary) {
		writeField(h, name+":"+strings.Join(req.Header.Values(name), ","))
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// KeyForURL returns the key of a request for rawURL with the given method,
// no body and no headers: the key a crawler's plain GET of rawURL has
// unless the policy matches headers. It returns an error when rawURL does
// not parse as an absolute URL.
func KeyForURL(method, rawURL string, p Policy) (string, error) {
	if _, err := NormalizeURL(rawURL, nil); err != nil {
		return "", err
	}
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("key for %s: %w", rawURL, err)
	}
	return Key(req, nil, p, nil), nil
}

// NormalizeURL returns rawURL in the form used for keys and for the url
// field of stored entries: scheme and host lower-cased, the default port
// (80 for http, 443 for https) dropped, userinfo and fragment dropped, an
// empty path written as "/", and the query's parameters sorted with the
// ignored ones (compared case-insensitively, after unescaping) removed.
// Paths and parameter values keep their original escaping. nil ignored
// removes nothing. It returns an error when rawURL does not parse or has no
// host.
func NormalizeURL(rawURL string, ignored []string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("normalize url: %w", err)
	}
	if u.Host == "" || u.Scheme == "" || u.Opaque != "" {
		return "", fmt.Errorf("normalize url %q: %w", rawURL, errNotAbsolute)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if host == "" || (strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "[")) {
		return "", fmt.Errorf("normalize url %q: %w", rawURL, errNotAbsolute)
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal, maybe with a zone
		host = "[" + strings.ReplaceAll(host, "%", "%25") + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(path)
	if q := normalizeQuery(u.RawQuery, ignored); q != "" {
		b.WriteByte('?')
		b.WriteString(q)
	}
	return b.String(), nil
}

// normalizeQuery sorts the raw "name=value" pairs of a query and drops
// empty pairs and ignored names. It works on the raw text so that values
// keep their escaping (url.Values would re-encode them).
func normalizeQuery(raw string, ignored []string) string {
	if raw == "" {
		return ""
	}
	pairs := strings.Split(raw, "&")
	kept := pairs[:0]
	for _, pair := range pairs {
		if pair == "" {
			continue
		}
		if isIgnoredParam(pair, ignored) {
			continue
		}
		kept = append(kept, pair)
	}
	slices.Sort(kept)
	return strings.Join(kept, "&")
}

// isIgnoredParam reports whether the raw pair's name is one of ignored.
func isIgnoredParam(pair string, ignored []string) bool {
	if len(ignored) == 0 {
		return false
	}
	name, _, _ := strings.Cut(pair, "=")
	if un, err := url.QueryUnescape(name); err == nil {
		name = un
	}
	for _, ig := range ignored {
		if strings.EqualFold(name, ig) {
			return true
		}
	}
	return false
}

// RedactURL returns rawURL as the cache writes a stored request's URL: the
// values of p's ignored (secret) query parameters and a userinfo password
// replaced by "REDACTED", everything else as written. It is for logs and
// outputs that name a URL the crawl fetched. A URL that does not parse is
// returned as "REDACTED" whole, since what in it is secret is unknown.
func RedactURL(rawURL string, p Policy) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redacted
	}
	return redactURL(u, p.ignoredParameters())
}

// SecretParameters is the effective list of ignored (secret) query
// parameters: IgnoredParameters, or DefaultIgnoredParameters if nil.
func (p Policy) SecretParameters() []string { return p.ignoredParameters() }

// redactURL returns rawURL for the stored request: the values of ignored
// (secret) parameters and the userinfo password replaced, everything else
// as sent.
func redactURL(u *url.URL, ignored []string) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), redacted)
		}
	}
	if c.RawQuery != "" && len(ignored) > 0 {
		pairs := strings.Split(c.RawQuery, "&")
		for i, pair := range pairs {
			if isIgnoredParam(pair, ignored) {
				name, _, _ := strings.Cut(pair, "=")
				pairs[i] = name + "=" + redacted
			}
		}
		c.RawQuery = strings.Join(pairs, "&")
	}
	return c.String()
}

// keyHeaderNames are the canonical, sorted, de-duplicated header names
// whose request values join the key.
func keyHeaderNames(match []string, vary http.Header) []string {
	var names []string
	for _, n := range match {
		names = append(names, http.CanonicalHeaderKey(strings.TrimSpace(n)))
	}
	if vary != nil {
		names = append(names, varyNames(vary)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// varyNames lists the canonical header names in h's Vary header ("*"
// included as is).
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	return names
}

// writeField writes s length-prefixed, so that no two different field
// sequences hash the same bytes.
func writeField(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

func methodOf(req *http.Request) string {
	if req.Method == "" {
		return http.MethodGet
	}
	return req.Method
}

// ignoredParameters is the effective list of ignored/secret parameters.
func (p Policy) ignoredParameters() []string {
	if p.IgnoredParameters == nil {
		return DefaultIgnoredParameters
	}
	return p.IgnoredParameters
}
