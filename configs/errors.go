package configs

import (
	"cmp"
	"errors"
	"regexp"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Error is one mistake in a job file. Load, Parse and LoadDir return every
// Error of a file joined with errors.Join; use errors.As to get the first, or
// Errors to get them all.
type Error struct {
	// File is the path of the file (never empty).
	File string
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Key is the dotted path of the offending key, e.g. rate.per_host or
	// outputs[1].jsonl.path; empty for file-level errors.
	Key string
	// Msg says what is wrong. It never contains a header value.
	Msg string
}

// Error formats the mistake as "file:line: key: msg".
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Msg
}

// Errors returns every *Error inside err (as joined by Load, Parse or
// LoadDir), in order. Other errors in the tree are skipped.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		switch x := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

// joinErrors sorts errs by position and joins them; nil if there are none.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// yamlLine matches the position yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxErrors turns a yaml.v3 parse error into positioned Errors.
func syntaxErrors(file string, err error) []*Error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]*Error, 0, len(msgs))
	for _, m := range msgs {
		e := &Error{File: file, Msg: m}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			e.Line, _ = strconv.Atoi(g[1])
			e.Msg = g[2]
		}
		e.Msg = "invalid YAML: " + e.Msg
		out = append(out, e)
	}
	return out
}
