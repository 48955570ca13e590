package configs

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree and collects every mistake instead of
// stopping at the first. Its typed readers return ok=false after recording
// an Error, so callers keep their defaults and carry on.
type decoder struct {
	file      string
	errs      []*Error
	lookupEnv func(string) (string, bool)
	// noJob says the file configures a cache that serves no job (a
	// proxy's policy): credentials: job is then a mistake.
	noJob bool
}

// errorf records a mistake at n (the node's position) under key.
func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	e := &Error{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// resolve follows aliases to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// got describes a value for "got ..." in messages.
func got(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Tag != "" && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!"):
		return "a value tagged " + truncate(n.Tag, 40)
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.ShortTag() == "!!null":
		return "an empty value"
	}
	v := n.Value
	switch n.ShortTag() {
	case "!!int", "!!float", "!!bool":
		if len(v) <= 60 {
			return v
		}
	}
	if len(v) > 60 {
		v = v[:57] + "..."
	}
	return strconv.Quote(v)
}

// join appends a key to a dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// userKey appends a user-chosen map key (a header name, a URL pattern, a
// field name), quoting it when it would make the path ambiguous.
func userKey(path, key string) string {
	if plainKey.MatchString(key) {
		return join(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// index appends a list index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// pair is one mapping entry, in file order.
type pair struct {
	key     string
	keyNode *yaml.Node
	value   *yaml.Node
}

// pairs returns the entries of a mapping in file order, reporting a
// non-mapping, non-string keys, merge keys and duplicate keys.
func (d *decoder) pairs(n *yaml.Node, path, want string) ([]pair, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || n.ShortTag() != "!!map" {
		d.errorf(n, path, "must be %s, got %s", want, got(n))
		return nil, false
	}
	seen := make(map[string]int)
	out := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			d.errorf(k, path, "keys must be strings, got %s", got(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errorf(k, path, "merge keys (<<) are not supported")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, userKey(path, k.Value), "duplicate key (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{key: k.Value, keyNode: k, value: v})
	}
	return out, true
}

// fields reads a mapping with a fixed set of keys: unknown keys are
// reported (with a suggestion), and the known ones returned by name.
func (d *decoder) fields(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, bool) {
	ps, ok := d.pairs(n, path, "a mapping")
	if !ok {
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(ps))
	for _, p := range ps {
		if !contains(known, p.key) {
			msg := "unknown key"
			if s := suggest(p.key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.errorf(p.keyNode, userKey(path, p.key), "%s", msg)
			continue
		}
		out[p.key] = p.value
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to k, if it is close enough to be
// a likely typo.
func suggest(k string, known []string) string {
	best, bestDist := "", 3
	for _, c := range known {
		if d := editDistance(strings.ToLower(k), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns n as a scalar node of one of the given tags.
func scalar(n *yaml.Node, tags ...string) (*yaml.Node, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return n, false
	}
	return n, contains(tags, n.ShortTag())
}

// str reads a string. Plain numbers and dates are taken as written.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	s, ok := scalar(n, "!!str", "!!int", "!!float", "!!timestamp")
	if !ok {
		d.errorf(s, path, "must be a string, got %s", got(n))
		return "", false
	}
	return s.Value, true
}

// nonEmpty reads a string that must not be empty.
func (d *decoder) nonEmpty(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(n, path, "must not be empty")
		return "", false
	}
	return s, ok
}

// boolean reads true or false.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := scalar(n, "!!bool")
	var b bool
	if ok && s.Decode(&b) == nil {
		return b, true
	}
	d.errorf(s, path, "must be true or false, got %s", got(n))
	return false, false
}

// integer reads an integer >= lo.
func (d *decoder) integer(n *yaml.Node, path string, lo int) (int, bool) {
	s, ok := scalar(n, "!!int")
	var v int
	if !ok || s.Decode(&v) != nil {
		d.errorf(s, path, "must be an integer >= %d, got %s", lo, got(n))
		return 0, false
	}
	if v < lo {
		d.errorf(s, path, "must be an integer >= %d, got %d", lo, v)
		return 0, false
	}
	return v, true
}

// positive reads a finite number > 0.
func (d *decoder) positive(n *yaml.Node, path string) (float64, bool) {
	s, ok := scalar(n, "!!int", "!!float")
	var v float64
	if !ok || s.Decode(&v) != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		d.errorf(s, path, "must be a number > 0, got %s", got(n))
		return 0, false
	}
	return v, true
}

// ratio reads a number from 0 to 1 (a fraction, not a percentage).
func (d *decoder) ratio(n *yaml.Node, path string) (float64, bool) {
	s, ok := scalar(n, "!!int", "!!float")
	var v float64
	if !ok || s.Decode(&v) != nil || math.IsNaN(v) || v < 0 || v > 1 {
		d.errorf(s, path, "must be a number from 0 to 1 (0.1 allows 10%% of the URLs to fail), got %s", got(n))
		return 0, false
	}
	return v, true
}

// list reads a sequence and returns its items.
func (d *decoder) list(n *yaml.Node, path, want string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || n.ShortTag() != "!!seq" {
		d.errorf(n, path, "must be %s, got %s", want, got(n))
		return nil, false
	}
	return n.Content, true
}

// strs reads a list of strings, calling check on each; items failing the
// check are dropped. The result is non-nil for an empty list.
func (d *decoder) strs(n *yaml.Node, path string, check func(item *yaml.Node, path, s string) bool) ([]string, bool) {
	items, ok := d.list(n, path, "a list of strings")
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		p := index(path, i)
		s, ok := d.str(it, p)
		if !ok || (check != nil && !check(it, p, s)) {
			continue
		}
		out = append(out, s)
	}
	return out, true
}

// duration reads a Go duration (30s, 1h30m) >= 0; a bare 0 is accepted.
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := scalar(n, "!!str", "!!int", "!!float")
	if ok {
		if v, err := ParseDuration(s.Value); err == nil {
			if v < 0 {
				d.errorf(s, path, "must not be negative, got %s", got(n))
				return 0, false
			}
			return v, true
		}
	}
	d.errorf(s, path, "must be a duration like 30s, 1h30m or 7d, got %s", got(n))
	return 0, false
}

// size reads a byte count: an integer, or a number with a unit (KB, MB,
// GB are powers of 1000; KiB, MiB, GiB powers of 1024).
func (d *decoder) size(n *yaml.Node, path string) (int64, bool) {
	s, ok := scalar(n, "!!str", "!!int")
	if ok {
		if v, ok := parseSize(s.Value); ok {
			return v, true
		}
	}
	d.errorf(s, path, "must be a size in bytes >= 0 like 10485760 or 10MiB, got %s", got(n))
	return 0, false
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, false
	}
	return v * mult, true
}
