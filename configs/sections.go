package configs

import (
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"crawlcache/cache"
	"crawlcache/pipeline"
)

// cacheKeys are the keys of the cache section; they map to cache.Policy
// (ttl to Job.TTL).
var cacheKeys = []string{
	"expire_after", "urls_expire_after", "cache_control", "stale_if_error",
	"stale_while_revalidate", "only_if_cached", "allowable_codes",
	"allowable_methods", "match_headers", "ignored_parameters", "ttl",
	"credentials", "adaptive",
}

// cache reads the cache section into j.Cache, j.TTL and j.TTLSet.
func (d *decoder) cache(n *yaml.Node, p string, j *Job) {
	m, ok := d.fields(n, p, cacheKeys...)
	if !ok {
		return
	}
	pol := &j.Cache
	if v, ok := m["expire_after"]; ok {
		pol.ExpireAfter, _ = d.expiry(v, join(p, "expire_after"))
	}
	if v, ok := m["urls_expire_after"]; ok {
		d.urlsExpireAfter(v, join(p, "urls_expire_after"), pol)
	}
	if v, ok := m["cache_control"]; ok {
		pol.CacheControl, _ = d.boolean(v, join(p, "cache_control"))
	}
	if v, ok := m["only_if_cached"]; ok {
		pol.OnlyIfCached, _ = d.boolean(v, join(p, "only_if_cached"))
	}
	if v, ok := m["stale_if_error"]; ok {
		d.staleIfError(v, join(p, "stale_if_error"), pol)
	}
	if v, ok := m["stale_while_revalidate"]; ok {
		pol.StaleWhileRevalidate, _ = d.duration(v, join(p, "stale_while_revalidate"))
	}
	if v, ok := m["allowable_codes"]; ok {
		d.allowableCodes(v, join(p, "allowable_codes"), pol)
	}
	if v, ok := m["allowable_methods"]; ok {
		pol.AllowableMethods, _ = d.strs(v, join(p, "allowable_methods"), d.checkToken("an HTTP method like GET"))
		for i, s := range pol.AllowableMethods {
			pol.AllowableMethods[i] = strings.ToUpper(s)
		}
	}
	if v, ok := m["match_headers"]; ok {
		pol.MatchHeaders, _ = d.strs(v, join(p, "match_headers"), d.checkToken("a header name"))
		for i, s := range pol.MatchHeaders {
			pol.MatchHeaders[i] = http.CanonicalHeaderKey(s)
		}
	}
	if v, ok := m["ignored_parameters"]; ok {
		pol.IgnoredParameters, _ = d.strs(v, join(p, "ignored_parameters"), func(it *yaml.Node, kp, s string) bool {
			if s == "" {
				d.errorf(it, kp, "must not be empty")
				return false
			}
			return true
		})
	}
	if v, ok := m["credentials"]; ok {
		d.credentials(v, join(p, "credentials"), pol)
	}
	d.adaptive(m, p, pol)
	if v, ok := m["ttl"]; ok {
		kp := join(p, "ttl")
		if s, ok := scalar(v, "!!str"); ok && strings.TrimSpace(s.Value) == "none" {
			j.TTL, j.TTLSet = 0, true
		} else if s, ok := scalar(v, "!!str", "!!int", "!!float"); ok {
			if dur, err := ParseDuration(s.Value); err == nil && dur > 0 {
				j.TTL, j.TTLSet = dur, true
			} else {
				d.errorf(s, kp, "must be a duration > 0 like 168h, or none, got %s", got(v))
			}
		} else {
			d.errorf(s, kp, "must be a duration > 0 like 168h, or none, got %s", got(v))
		}
	}
}

// urlsExpireAfter reads cache.urls_expire_after (at kp) into pol.
func (d *decoder) urlsExpireAfter(v *yaml.Node, kp string, pol *cache.Policy) {
	ps, _ := d.pairs(v, kp, "a mapping of URL patterns to expiries")
	for _, e := range ps {
		key := userKey(kp, e.key)
		switch _, err := path.Match(e.key, ""); {
		case strings.TrimSpace(e.key) == "":
			d.errorf(e.keyNode, key, "pattern must not be empty")
			continue
		case strings.Contains(e.key, "://"):
			d.errorf(e.keyNode, key, "pattern must not include the scheme (write example.org/news/*)")
			continue
		case err != nil:
			d.errorf(e.keyNode, key, "invalid glob pattern")
			continue
		}
		if exp, ok := d.expiry(e.value, key); ok {
			pol.URLsExpireAfter = append(pol.URLsExpireAfter, cache.URLExpiry{Pattern: e.key, Expiry: exp})
		}
	}
}

// staleIfError reads cache.stale_if_error (at kp) into pol: true (no
// limit), false, or a duration.
func (d *decoder) staleIfError(v *yaml.Node, kp string, pol *cache.Policy) {
	if s, isBool := scalar(v, "!!bool"); isBool {
		var b bool
		if s.Decode(&b) == nil && b {
			pol.StaleIfError = -1 // without limit
		}
	} else if s, ok := scalar(v, "!!str", "!!int"); ok {
		if dur, err := ParseDuration(s.Value); err == nil && dur >= 0 {
			pol.StaleIfError = dur
		} else {
			d.errorf(s, kp, "must be true, false or a duration >= 0 like 1h, got %s", got(v))
		}
	} else {
		d.errorf(s, kp, "must be true, false or a duration >= 0 like 1h, got %s", got(v))
	}
}

// allowableCodes reads cache.allowable_codes (at kp) into pol.
func (d *decoder) allowableCodes(v *yaml.Node, kp string, pol *cache.Policy) {
	if items, ok := d.list(v, kp, "a list of HTTP status codes"); ok {
		pol.AllowableCodes = make([]int, 0, len(items))
		for i, it := range items {
			c, ok := scalar(it, "!!int")
			var code int
			if !ok || c.Decode(&code) != nil || code < 100 || code > 599 {
				d.errorf(c, index(kp, i), "must be an HTTP status code (100-599), got %s", got(it))
				continue
			}
			pol.AllowableCodes = append(pol.AllowableCodes, code)
		}
	}
}

// credentials reads cache.credentials (at kp) into pol: token or job.
func (d *decoder) credentials(v *yaml.Node, kp string, pol *cache.Policy) {
	s, isStr := scalar(v, "!!str")
	switch {
	case isStr && s.Value == "token":
		pol.Credentials = cache.CredentialsToken
	case isStr && s.Value == "job" && d.noJob:
		d.errorf(v, kp, "job binds entries to a job, and a proxy serves no job: use token (each client's entries bound to its own credential)")
	case isStr && s.Value == "job":
		pol.Credentials = cache.CredentialsJob
	default:
		d.errorf(v, kp, "must be token (entries bound to the credential values) or job (bound to this job, for a token that rotates), got %s", got(v))
	}
}

// expiry reads a freshness lifetime: a Go duration (0s = revalidate on
// every use), never, or do_not_cache.
func (d *decoder) expiry(n *yaml.Node, p string) (cache.Expiry, bool) {
	s, ok := scalar(n, "!!str", "!!int", "!!float")
	if ok {
		if exp, err := ParseExpiry(s.Value); err == nil {
			return exp, true
		}
	}
	d.errorf(s, p, "%s, got %s", expiryWant, got(n))
	return cache.Expiry{}, false
}

const expiryWant = "must be a duration >= 0 like 1h, never, do_not_cache or adaptive"

// ParseExpiry parses an expire_after value: a Go duration >= 0 (0s means
// revalidate on every use), "never", "do_not_cache" or "adaptive" (each
// URL's learned interval, bounded by cache.adaptive). Command-line flags
// use it so they accept exactly what job files accept.
func ParseExpiry(s string) (cache.Expiry, error) {
	switch v := strings.TrimSpace(s); v {
	case "never":
		return cache.Expiry{Kind: cache.ExpireNever}, nil
	case "do_not_cache":
		return cache.Expiry{Kind: cache.ExpireDoNotCache}, nil
	case expireAdaptive:
		return cache.Expiry{Kind: cache.ExpireAdaptive}, nil
	default:
		if dur, err := ParseDuration(v); err == nil && dur >= 0 {
			return cache.Expiry{Kind: cache.ExpireAfter, After: dur}, nil
		}
	}
	return cache.Expiry{}, fmt.Errorf("%s, got %q", expiryWant, truncate(s, 60))
}

// checkToken accepts HTTP tokens (methods, header names).
func (d *decoder) checkToken(want string) func(*yaml.Node, string, string) bool {
	return func(n *yaml.Node, p, s string) bool {
		if !validToken(s) {
			d.errorf(n, p, "must be %s, got %s", want, got(n))
			return false
		}
		return true
	}
}

// extract reads the extract section.
func (d *decoder) extract(n *yaml.Node, p string, e *Extract) {
	m, ok := d.fields(n, p, "item", "fields")
	if !ok {
		return
	}
	if v, ok := m["item"]; ok {
		if s, ok := d.str(v, join(p, "item")); ok && d.checkSelector(v, join(p, "item"), s) {
			e.Item = s
		}
	}
	v, ok := m["fields"]
	if !ok {
		d.errorf(n, join(p, "fields"), "required: at least one field to extract")
		return
	}
	fp := join(p, "fields")
	ps, ok := d.pairs(v, fp, "a mapping of field names to {css, attr, text, all, html}")
	if ok && len(ps) == 0 {
		d.errorf(v, fp, "at least one field is required")
	}
	for _, f := range ps {
		if field, ok := d.field(f, fp); ok {
			e.Fields = append(e.Fields, field)
		}
	}
}

// field reads one extract field.
func (d *decoder) field(f pair, fp string) (Field, bool) {
	key := userKey(fp, f.key)
	field := Field{Name: f.key}
	if f.key == "" || strings.HasPrefix(f.key, "_") || strings.HasPrefix(f.key, "$") || strings.ContainsAny(f.key, ".\x00") {
		d.errorf(f.keyNode, key, "field names must not be empty, start with _ or $, or contain '.'")
		return field, false
	}
	if slices.Contains(pipeline.ReservedFieldNames(), f.key) {
		d.errorf(f.keyNode, key, "%q is reserved for item metadata (%s); choose another name", f.key, strings.Join(pipeline.ReservedFieldNames(), ", "))
		return field, false
	}
	m, ok := d.fields(f.value, key, "css", "attr", "text", "all", "html")
	if !ok {
		return field, false
	}
	before := len(d.errs)
	if v, ok := m["css"]; ok {
		if s, ok := d.str(v, join(key, "css")); ok && d.checkSelector(v, join(key, "css"), s) {
			field.CSS = s
		}
	}
	if v, ok := m["attr"]; ok {
		field.Attr, _ = d.nonEmpty(v, join(key, "attr"))
	}
	if v, ok := m["text"]; ok {
		field.Text, _ = d.boolean(v, join(key, "text"))
	}
	if v, ok := m["html"]; ok {
		field.HTML, _ = d.boolean(v, join(key, "html"))
	}
	if v, ok := m["all"]; ok {
		field.All, _ = d.boolean(v, join(key, "all"))
	}
	if len(d.errs) > before {
		return field, false
	}
	switch n := btoi(field.Text) + btoi(field.Attr != "") + btoi(field.HTML); {
	case n > 1:
		d.errorf(f.keyNode, key, "set only one of text, attr and html")
		return field, false
	case n == 0:
		if _, explicit := m["text"]; explicit {
			d.errorf(f.keyNode, key, "nothing to take: set text, attr or html")
			return field, false
		}
		field.Text = true
	}
	return field, true
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outputs reads the outputs list: one kind per entry, no two entries
// writing the same collection or file.
func (d *decoder) outputs(n *yaml.Node, p string) []Output {
	items, ok := d.list(n, p, "a list of outputs (mongodb, jsonl or csv)")
	if !ok {
		return nil
	}
	var outs []Output
	seen := make(map[string]int)
	for i, it := range items {
		ip := index(p, i)
		m, ok := d.fields(it, ip, OutputMongoDB, OutputJSONL, OutputCSV)
		if !ok {
			continue
		}
		if len(m) != 1 {
			if len(m) == 0 && len(resolve(it).Content) == 0 {
				d.errorf(it, ip, "must name one output kind: mongodb, jsonl or csv")
			} else if len(m) > 1 {
				d.errorf(it, ip, "must have exactly one output kind (mongodb, jsonl or csv), got %d; use one list entry per output", len(m))
			}
			continue
		}
		for kind, v := range m {
			if o, ok := d.output(kind, v, join(ip, kind)); ok {
				what, target := "collection", "collection:"+o.Collection
				if o.Kind != OutputMongoDB {
					what, target = "file", "file:"+filepath.Clean(o.Path)
				}
				if prev, dup := seen[target]; dup {
					d.errorf(it, ip, "duplicate output: writes the same %s as outputs[%d]", what, prev)
					continue
				}
				seen[target] = i
				outs = append(outs, o)
			}
		}
	}
	return outs
}

// output reads one output's settings; a null value takes the defaults.
func (d *decoder) output(kind string, v *yaml.Node, p string) (Output, bool) {
	o := Output{Kind: kind}
	var m map[string]*yaml.Node
	if r := resolve(v); r != nil && r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null" {
		m = map[string]*yaml.Node{}
	} else {
		var ok bool
		keys := []string{"path"}
		if kind == OutputMongoDB {
			keys = []string{"collection"}
		}
		if m, ok = d.fields(v, p, keys...); !ok {
			return o, false
		}
	}
	if kind == OutputMongoDB {
		o.Collection = DefaultCollection
		if c, ok := m["collection"]; ok {
			s, ok := d.nonEmpty(c, join(p, "collection"))
			if !ok {
				return o, false
			}
			if strings.ContainsAny(s, "$\x00") || strings.HasPrefix(s, "system.") || len(s) > 120 {
				d.errorf(c, join(p, "collection"), "invalid collection name %s", got(c))
				return o, false
			}
			if isReservedCollection(s) {
				d.errorf(c, join(p, "collection"), "%q is one of crawlcache's own collections (reserved: %s); choose another name, e.g. items",
					s, strings.Join(reservedCollections, ", "))
				return o, false
			}
			o.Collection = s
		}
		return o, true
	}
	pv, ok := m["path"]
	if !ok {
		d.errorf(v, join(p, "path"), "required: the file to write")
		return o, false
	}
	s, ok := d.nonEmpty(pv, join(p, "path"))
	if !ok {
		return o, false
	}
	if strings.HasSuffix(s, "/") || strings.ContainsRune(s, 0) {
		d.errorf(pv, join(p, "path"), "must be a file path, got %s", got(pv))
		return o, false
	}
	o.Path = s
	return o, true
}

// checkSchedule validates a cron expression or descriptor with
// cron.ParseStandard (5 fields, descriptors such as @daily and @every 6h,
// optional CRON_TZ= prefix), the parser the scheduler uses.
func checkSchedule(s string) (err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return fmt.Errorf("must be a cron expression like '0 */6 * * *' or '@every 6h', got an empty string")
	}
	if _, ok, err := ParseEvery(s); ok {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid cron expression %q", truncate(s, 60))
		}
	}()
	if _, err := cron.ParseStandard(s); err != nil {
		return fmt.Errorf("invalid cron expression %q: %v (want 5 fields like '0 */6 * * *' or a descriptor like '@every 6h', '@daily')", truncate(s, 60), err)
	}
	return nil
}
