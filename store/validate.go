package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// What FerretDB v1.24.2 refuses in a document it is asked to store, read in
// its source (internal/types/document_validation.go, ValidateData, run by
// insert, update and findAndModify on every document, at every level,
// including documents inside arrays):
//
//   - a field name that is not valid UTF-8, starts with '$' or contains '.';
//   - the same field name twice in one (sub)document;
//   - an array directly inside an array;
//   - ±Infinity (NaN its sjson encoder cannot write: the write fails);
//   - a top-level _id that is an array or a regex, or no _id (insert adds one).
//
// It also refuses, with an internal error ("malformed JSON"), a top-level
// field name holding '"' or '\\': its sjson.Marshal writes top-level names
// into the JSON without escaping them (nested names are escaped). The same
// flaw makes it store a top-level name holding a control character
// (U+0000–U+001F) as JSON that SQLite accepts but Go's JSON decoder does
// not: the insert succeeds, and from then on every find, count or scan of
// the collection fails. The direct writer refuses those itself
// (ErrUnreadableDocument) rather than hand them to the server.
//
// It does not refuse invalid UTF-8 in string values (encoding/json stores
// each bad byte as U+FFFD, the direct encoder too: both read back alike),
// empty field names, deep nesting (no limit of its own: the driver and
// SQLite's JSON parser bound it) or a document over 16 MiB (the driver
// refuses those before sending them).
//
// The direct writer does not reproduce the server's refusals: it hands every
// document it is not sure of to the server (ErrDirectUnsupported), which
// stores it or refuses it with its own error. That makes the decision the
// server's by construction; the checks below only have to catch everything
// the server might refuse, and TestDirectWriteParity proves on random and
// hostile documents that both paths decide alike and read back alike.
// Before these checks, a document with a repeated field name was stored
// directly, and afterwards every find and count on its collection failed
// in FerretDB's decoder ("keys: 3, fields: 2").

// ErrUnreadableDocument is returned by Direct's writes (and so by InsertOne,
// InsertMany and Upsert with a Direct) for a document that the embedded
// server would store but could not read back: a top-level field name with
// a control character (U+0000–U+001F). FerretDB v1.24.2 writes such a name
// unescaped, and every later find or count on the collection fails. Rename
// the field.
var ErrUnreadableDocument = errors.New("document the embedded store could not read back")

// checkTopKeys checks the top-level field names of a document
// (checkTopKey), listed by fieldsOf.
func checkTopKeys(fields []docField) error {
	for _, f := range fields {
		if err := checkTopKey(f.key); err != nil {
			return err
		}
	}
	return nil
}

// checkTopKey checks a top-level field name against what FerretDB's
// unescaped top-level names break: control characters are refused
// (ErrUnreadableDocument), '"' and '\\' handed to the server, which refuses
// them.
func checkTopKey(key string) error {
	for i := 0; i < len(key); i++ {
		switch b := key[i]; {
		case b < 0x20:
			return fmt.Errorf("field name %q has a control character: %w (FerretDB v1.24.2 would store it unescaped, and every later find or count on the collection would fail); rename the field", key, ErrUnreadableDocument)
		case b == '"' || b == '\\':
			return fmt.Errorf("%w: top-level field name %q", errSJSONEncode, key)
		}
	}
	return nil
}

// checkKey hands to the server the field names it refuses or stores its own
// way: not UTF-8, empty, with a dot, starting with $.
func checkKey(key string) error {
	if key == "" || key[0] == '$' || strings.IndexByte(key, '.') >= 0 || !utf8.ValidString(key) {
		return fmt.Errorf("%w: field name %q", errSJSONEncode, key)
	}
	return nil
}

// smallDocKeys is the number of fields up to which a repeated name is
// searched by comparing pairs rather than with a map: cheaper for the few
// fields of the cache's documents.
const smallDocKeys = 16

// checkDuplicateKeys hands to the server a (sub)document that names a
// field twice. keys(i) returns the i-th of n field names.
func checkDuplicateKeys(n int, keys func(int) string) error {
	if n <= smallDocKeys {
		for i := 1; i < n; i++ {
			ki := keys(i)
			for j := 0; j < i; j++ {
				if keys(j) == ki {
					return fmt.Errorf("%w: field name %q twice", errSJSONEncode, ki)
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		k := keys(i)
		if _, ok := seen[k]; ok {
			return fmt.Errorf("%w: field name %q twice", errSJSONEncode, k)
		}
		seen[k] = struct{}{}
	}
	return nil
}
