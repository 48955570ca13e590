package configs

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/andybalholm/cascadia"
	"go.yaml.in/yaml/v3"
)

// topKeys are the keys of a job file, in the order of the reference.
var topKeys = []string{
	"name", "seeds", "allowed_domains", "max_depth", "max_pages",
	"include", "exclude", "follow", "user_agent", "headers", "robots",
	"timeout", "max_body_size", "rate", "retry", "cache", "extract",
	"outputs", "schedule", "max_error_ratio", "sitemaps", "trust_lastmod", "render",
	"changes", "proxy",
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// job decodes the root mapping into j, starting from the defaults.
func (d *decoder) job(root *yaml.Node, j *Job) {
	setDefaults(j)
	if r := resolve(root); r == nil || r.Kind != yaml.MappingNode {
		d.errorf(r, "", "a job file must be a mapping of keys (name, seeds, ...), got %s", got(r))
		return
	}
	m, ok := d.fields(root, "", topKeys...)
	if !ok {
		return
	}
	d.name(root, m, j)
	seeds := d.seeds(root, m, j)
	if n, ok := m["allowed_domains"]; ok {
		j.AllowedDomains, _ = d.strs(n, "allowed_domains", checkDomain(d))
		for i, s := range j.AllowedDomains {
			j.AllowedDomains[i] = strings.ToLower(strings.TrimSuffix(s, "."))
		}
	} else {
		for _, s := range seeds {
			if !contains(j.AllowedDomains, s.host) {
				j.AllowedDomains = append(j.AllowedDomains, s.host)
			}
		}
	}
	d.scope(m, j)
	d.fetching(m, j)
	if n, ok := m["rate"]; ok {
		d.rate(n, "rate", &j.Rate)
	}
	if n, ok := m["retry"]; ok {
		d.retry(n, "retry", &j.Retry)
	}
	if n, ok := m["cache"]; ok {
		d.cache(n, "cache", j)
	}
	if n, ok := m["extract"]; ok {
		d.extract(n, "extract", &j.Extract)
	}
	if n, ok := m["outputs"]; ok {
		j.Outputs = d.outputs(n, "outputs")
	}
	d.sitemaps(m, j)
	if n, ok := m["render"]; ok {
		j.Render = defaultRender()
		d.render(n, "render", &j.Render)
	}
	d.changes(m, j)
	d.proxy(m, j)
	if n, ok := m["schedule"]; ok {
		if s, ok := d.str(n, "schedule"); ok {
			if err := checkSchedule(s); err != nil {
				d.errorf(n, "schedule", "%v", err)
			} else {
				j.Schedule = strings.TrimSpace(s)
			}
		}
	}
	if _, ok := m["allowed_domains"]; ok && len(j.AllowedDomains) > 0 {
		for _, s := range seeds {
			if !j.AllowsHost(s.host) {
				d.errorf(s.node, s.path, "host %q is not in allowed_domains", s.host)
			}
		}
	}
}

// setDefaults sets the values of the keys a job file may leave out.
func setDefaults(j *Job) {
	j.Follow = slices.Clone(DefaultFollow)
	j.UserAgent = DefaultUserAgent
	j.Robots = true
	j.Timeout = DefaultTimeout
	j.MaxBodySize = DefaultMaxBodySize
	j.Rate = Rate{PerHost: DefaultPerHost, Burst: DefaultBurst, Parallelism: DefaultParallelism}
	j.Retry = Retry{Max: DefaultRetryMax, Backoff: DefaultBackoff}
	j.MaxErrorRatio = DefaultMaxErrorRatio
}

// name decodes the required name key.
func (d *decoder) name(root *yaml.Node, m map[string]*yaml.Node, j *Job) {
	n, ok := m["name"]
	if !ok {
		d.errorf(root, "name", "required: every job needs a unique name")
		return
	}
	j.nameLine = n.Line
	if s, ok := d.nonEmpty(n, "name"); ok {
		if validName.MatchString(s) {
			j.Name = s
		} else {
			d.errorf(n, "name", "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, got %s", got(n))
		}
	}
}

// seedRef is a valid seed URL with where it is in the file, for the check
// against allowed_domains.
type seedRef struct {
	node *yaml.Node
	path string
	host string
}

// seeds decodes the required seeds key and returns the valid seeds.
func (d *decoder) seeds(root *yaml.Node, m map[string]*yaml.Node, j *Job) []seedRef {
	n, ok := m["seeds"]
	if !ok {
		d.errorf(root, "seeds", "required: list the URLs the crawl starts from")
		return nil
	}
	var seeds []seedRef
	list, ok := d.strs(n, "seeds", func(it *yaml.Node, p, s string) bool {
		u, ok := d.checkSeed(it, p, s)
		if ok {
			seeds = append(seeds, seedRef{it, p, strings.ToLower(u.Hostname())})
		}
		return ok
	})
	if ok && len(list) == 0 && len(resolve(n).Content) == 0 {
		d.errorf(n, "seeds", "at least one seed URL is required")
	}
	j.Seeds = list
	return seeds
}

// scope decodes the keys that bound the crawl: depth, pages, error ratio,
// include, exclude and follow.
func (d *decoder) scope(m map[string]*yaml.Node, j *Job) {
	if n, ok := m["max_depth"]; ok {
		j.MaxDepth, _ = d.integer(n, "max_depth", 0)
	}
	if n, ok := m["max_pages"]; ok {
		j.MaxPages, _ = d.integer(n, "max_pages", 0)
	}
	if n, ok := m["max_error_ratio"]; ok {
		j.MaxErrorRatio, _ = d.ratio(n, "max_error_ratio")
	}
	if n, ok := m["include"]; ok {
		j.Include, j.IncludePatterns = d.regexps(n, "include")
	}
	if n, ok := m["exclude"]; ok {
		j.Exclude, j.ExcludePatterns = d.regexps(n, "exclude")
	}
	if n, ok := m["follow"]; ok {
		j.Follow, _ = d.strs(n, "follow", d.checkSelector)
	}
}

// fetching decodes the keys of how each page is requested: user agent,
// headers, robots, timeout and body size limit.
func (d *decoder) fetching(m map[string]*yaml.Node, j *Job) {
	if n, ok := m["user_agent"]; ok {
		j.UserAgent, _ = d.nonEmpty(n, "user_agent")
	}
	if n, ok := m["headers"]; ok {
		j.Headers = d.headers(n, "headers")
	}
	if n, ok := m["robots"]; ok {
		j.Robots, _ = d.boolean(n, "robots")
	}
	if n, ok := m["timeout"]; ok {
		if v, ok := d.duration(n, "timeout"); ok {
			if v == 0 {
				d.errorf(n, "timeout", "must be > 0, got %s", got(n))
			} else {
				j.Timeout = v
			}
		}
	}
	if n, ok := m["max_body_size"]; ok {
		j.MaxBodySize, _ = d.size(n, "max_body_size")
	}
}

// checkSeed accepts absolute http(s) URLs with a host.
func (d *decoder) checkSeed(n *yaml.Node, path, s string) (*url.URL, bool) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		d.errorf(n, path, "must be an absolute http(s) URL: %v", unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		d.errorf(n, path, "must be an absolute http(s) URL, got %q", redact(u, s))
	case u.Hostname() == "":
		d.errorf(n, path, "must be an absolute http(s) URL with a host, got %q", redact(u, s))
	default:
		return u, true
	}
	return nil, false
}

// redact hides a password in a URL shown in an error; otherwise the URL
// is shown as written.
func redact(u *url.URL, raw string) string {
	if _, has := u.User.Password(); has {
		return u.Redacted()
	}
	return truncate(raw, 80)
}

// unwrapURLError drops url.Error's repetition of the whole input, which
// could contain credentials.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

var validHost = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$|^\[[0-9A-Fa-f:.]+\]$`)

// checkDomain accepts bare host names (no scheme, port or path).
func checkDomain(d *decoder) func(*yaml.Node, string, string) bool {
	return func(n *yaml.Node, path, s string) bool {
		switch {
		case strings.Contains(s, "://"):
			d.errorf(n, path, "must be a host name like example.org, not a URL, got %s", got(n))
		case !validHost.MatchString(s):
			d.errorf(n, path, "must be a host name like example.org (no port, path or wildcard), got %s", got(n))
		default:
			return true
		}
		return false
	}
}

// regexps compiles a list of regular expressions (RE2 syntax).
func (d *decoder) regexps(n *yaml.Node, path string) ([]*regexp.Regexp, []string) {
	var res []*regexp.Regexp
	srcs, _ := d.strs(n, path, func(it *yaml.Node, p, s string) bool {
		re, err := regexp.Compile(s)
		if err != nil {
			d.errorf(it, p, "invalid regexp: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			return false
		}
		res = append(res, re)
		return true
	})
	return res, srcs
}

// checkSelector accepts CSS selectors that cascadia (and so goquery)
// compiles; goquery silently matches nothing for an invalid one.
func (d *decoder) checkSelector(n *yaml.Node, path, s string) bool {
	if strings.TrimSpace(s) == "" {
		d.errorf(n, path, "must be a CSS selector, got %s", got(n))
		return false
	}
	if _, err := cascadia.Compile(s); err != nil {
		d.errorf(n, path, "invalid CSS selector %s: %v", got(n), err)
		return false
	}
	return true
}

var validEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// headers reads request headers, expanding ${ENV_VAR}. Values never appear
// in errors: they are where secrets go.
func (d *decoder) headers(n *yaml.Node, path string) http.Header {
	ps, ok := d.pairs(n, path, "a mapping of header names to values")
	if !ok {
		return nil
	}
	h := make(http.Header, len(ps))
	firstLine := make(map[string]int)
	for _, p := range ps {
		key := userKey(path, p.key)
		canon := http.CanonicalHeaderKey(p.key)
		switch {
		case !validToken(p.key):
			d.errorf(p.keyNode, key, "invalid header name")
			continue
		case canon == "Host":
			d.errorf(p.keyNode, key, "the Host header cannot be set")
			continue
		case canon == "User-Agent":
			d.errorf(p.keyNode, key, "set the user agent with the user_agent key")
			continue
		}
		if line, dup := firstLine[canon]; dup {
			d.errorf(p.keyNode, key, "duplicate header (first at line %d)", line)
			continue
		}
		firstLine[canon] = p.keyNode.Line
		v, ok := scalar(p.value, "!!str", "!!int", "!!float")
		if !ok {
			d.errorf(v, key, "must be a string")
			continue
		}
		val, err := expandEnv(v.Value, d.lookupEnv)
		if err != nil {
			d.errorf(v, key, "%v", err)
			continue
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			d.errorf(v, key, "value must not contain a line break or NUL")
			continue
		}
		h.Set(canon, val)
	}
	return h
}

// validToken reports whether s is an HTTP token (RFC 9110 field name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// expandEnv replaces ${NAME} with the variable's value; $${ is a literal
// "${". An unset variable is an error, so a missing secret is not sent as
// an empty header. The error names the variable, never the value.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		name := s[i+2 : i+end]
		if !validEnvName.MatchString(name) {
			return "", fmt.Errorf("invalid environment variable reference ${%s}", truncate(name, 40))
		}
		v, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(v)
		s = s[i+end+1:]
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// rate reads the rate section over the defaults in r.
func (d *decoder) rate(n *yaml.Node, path string, r *Rate) {
	m, ok := d.fields(n, path, "per_host", "burst", "parallelism", "per_host_parallelism")
	if !ok {
		return
	}
	if v, ok := m["per_host"]; ok {
		if f, ok := d.positive(v, join(path, "per_host")); ok {
			r.PerHost = f
		}
	}
	if v, ok := m["burst"]; ok {
		if i, ok := d.integer(v, join(path, "burst"), 1); ok {
			r.Burst = i
		}
	}
	if v, ok := m["parallelism"]; ok {
		if i, ok := d.integer(v, join(path, "parallelism"), 1); ok {
			r.Parallelism = i
		}
	}
	if v, ok := m["per_host_parallelism"]; ok {
		if i, ok := d.integer(v, join(path, "per_host_parallelism"), 0); ok {
			r.PerHostParallelism = i
		}
	}
}

// retry reads the retry section over the defaults in r.
func (d *decoder) retry(n *yaml.Node, path string, r *Retry) {
	m, ok := d.fields(n, path, "max", "backoff")
	if !ok {
		return
	}
	if v, ok := m["max"]; ok {
		if i, ok := d.integer(v, join(path, "max"), 0); ok {
			r.Max = i
		}
	}
	if v, ok := m["backoff"]; ok {
		if b, ok := d.duration(v, join(path, "backoff")); ok {
			r.Backoff = b
		}
	}
}
