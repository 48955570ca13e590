package configs

import (
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Changes says which parts of a page do not count when a run decides
// whether the page changed since the job's last run (`changes:` key).
type Changes struct {
	// IgnoreCSS (`ignore_css`) are CSS selectors of elements removed
	// before comparing (a timestamp, a nonce, an ad slot).
	IgnoreCSS []string
	// IgnoreRegex (`ignore_regex`) are regular expressions whose matches
	// are removed from the body before comparing; IgnorePatterns are their
	// sources, in the same order.
	IgnoreRegex    []*regexp.Regexp
	IgnorePatterns []string
}

// Any reports whether some part of pages is ignored.
func (c Changes) Any() bool { return len(c.IgnoreCSS) > 0 || len(c.IgnoreRegex) > 0 }

// changes decodes the `changes` key: a mapping with ignore_css and
// ignore_regex lists.
func (d *decoder) changes(m map[string]*yaml.Node, j *Job) {
	n, ok := m["changes"]
	if !ok {
		return
	}
	f, ok := d.fields(n, "changes", "ignore_css", "ignore_regex")
	if !ok {
		return
	}
	if v, ok := f["ignore_css"]; ok {
		j.Changes.IgnoreCSS, _ = d.strs(v, "changes.ignore_css", d.checkSelector)
	}
	if v, ok := f["ignore_regex"]; ok {
		j.Changes.IgnoreRegex, j.Changes.IgnorePatterns = d.regexps(v, "changes.ignore_regex")
	}
}
