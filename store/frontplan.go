package store

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The query front (front.go) answers some queries on summary collections
// from SQLite, with indexes on FerretDB's table, instead of letting
// FerretDB decode every document. This file turns a MongoDB filter and
// sort into SQL over FerretDB's stored JSON, or says that it cannot
// (errFrontUnsupported: the command is forwarded to FerretDB). A
// translation must select exactly the documents FerretDB's filter
// selects: anything it is not sure of is refused.

// errFrontUnsupported says that a command is not one the front answers
// exactly; it goes to FerretDB as it came.
var errFrontUnsupported = errors.New("not answered by the query front")

// frontKind is the BSON type family a front field holds in every
// document that has it (checked before each query, frontexec.go).
type frontKind uint8

const (
	frontNumber frontKind = iota + 1 // int, long, double
	frontString
	frontDate
)

// frontField is a top-level field of a front collection.
type frontField struct {
	name string
	kind frontKind
}

// frontCollection is a collection the front answers queries on.
type frontCollection struct {
	db, name string
	fields   []frontField
}

// frontCollections are the collections the front answers queries on: the
// cache's page summaries (one small document per stored response), which
// people filter by status, URL prefix and last validation in Compass or
// mongosh.
var frontCollections = []frontCollection{{
	db: "http_cache", name: "pages",
	fields: []frontField{{"status", frontNumber}, {"url", frontString}, {"validated_at", frontDate}},
}}

// frontCollectionOf returns the front collection db.name, or nil.
func frontCollectionOf(db, name string) *frontCollection {
	for i := range frontCollections {
		if frontCollections[i].db == db && frontCollections[i].name == name {
			return &frontCollections[i]
		}
	}
	return nil
}

func (c *frontCollection) field(name string) (frontField, bool) {
	for _, f := range c.fields {
		if f.name == name {
			return f, true
		}
	}
	return frontField{}, false
}

// frontValueExpr is the SQL value of top-level field name in a stored
// document: the number, text or date (milliseconds) FerretDB's JSON holds.
// The front's indexes are on these expressions, and SQLite matches an
// index by the text of its expression: queries must use the same text.
func frontValueExpr(name string) string {
	return `json_extract(` + ferretDocColumn + `, '$.` + name + `')`
}

// frontTypeExpr is the BSON type FerretDB's schema ("$s") records for
// top-level field name ("int", "string", "date", …), NULL when the
// document has no such field.
func frontTypeExpr(name string) string {
	return `json_extract(` + ferretDocColumn + `, '$."$s".p.` + name + `.t')`
}

// frontTypes is the SQL list of the type names of kind's family.
var frontTypes = map[frontKind]string{
	frontNumber: `('double', 'int', 'long')`,
	frontString: `('string')`,
	frontDate:   `('date')`,
}

// frontPlan is a translated query: a condition on the table's rows, its
// arguments, the fields whose types must be checked first, and the order.
type frontPlan struct {
	where   []string
	args    []any
	checked []frontField // fields the condition or the order reads
	order   []string     // ORDER BY terms; the row order is FerretDB's (rowid) after them
	regexes []frontRegex // matched in Go on the rows the condition selects
}

// frontRegex is a regular expression a string field must match.
type frontRegex struct {
	field frontField
	re    *regexp.Regexp
}

func (p *frontPlan) check(f frontField) {
	for _, g := range p.checked {
		if g.name == f.name {
			return
		}
	}
	p.checked = append(p.checked, f)
}

// condition is the WHERE condition of the plan ("1" for none).
func (p *frontPlan) condition() string {
	if len(p.where) == 0 {
		return "1"
	}
	return strings.Join(p.where, " AND ")
}

// planFilter adds filter's conditions to p.
func (c *frontCollection) planFilter(p *frontPlan, filter bsoncore.Document) error {
	elems, err := filter.Elements()
	if err != nil {
		return errFrontUnsupported
	}
	seen := map[string]bool{}
	for _, e := range elems {
		key := e.Key()
		if seen[key] {
			return errFrontUnsupported // duplicate keys: let the server say
		}
		seen[key] = true
		v := e.Value()
		switch {
		case key == "$and":
			arr, ok := v.ArrayOK()
			if !ok {
				return errFrontUnsupported
			}
			items, err := arr.Values()
			if err != nil || len(items) == 0 {
				return errFrontUnsupported
			}
			for _, item := range items {
				sub, ok := item.DocumentOK()
				if !ok {
					return errFrontUnsupported
				}
				if err := c.planFilter(p, sub); err != nil {
					return err
				}
			}
		case key == "_id":
			if err := planID(p, v); err != nil {
				return err
			}
		default:
			f, ok := c.field(key)
			if !ok {
				return errFrontUnsupported
			}
			if err := planField(p, f, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// planID plans {_id: "string"}: FerretDB's _id index, with the type
// checked (the JSON text of an ObjectID is its hex string).
func planID(p *frontPlan, v bsoncore.Value) error {
	s, ok := v.StringValueOK()
	if !ok || !utf8.ValidString(s) {
		return errFrontUnsupported
	}
	p.where = append(p.where, idIndexExpr+` = ?`, frontTypeExpr("_id")+` = 'string'`)
	p.args = append(p.args, sjsonString(s))
	return nil
}

// planField plans a condition on field f: a value (equality), a regular
// expression (strings: an anchored literal prefix), or a document of
// operators.
func planField(p *frontPlan, f frontField, v bsoncore.Value) error {
	p.check(f)
	// The type check makes this term true of every document that has the
	// field; it lets SQLite use the field's index (type, value).
	p.where = append(p.where, frontTypeExpr(f.name)+` IN `+frontTypes[f.kind])
	expr := frontValueExpr(f.name)
	if v.Type == bsoncore.TypeRegex {
		pattern, options := v.Regex()
		return planPrefix(p, f, expr, pattern, options)
	}
	doc, ok := v.DocumentOK()
	if !ok {
		arg, err := frontArg(f, v)
		if err != nil {
			return err
		}
		p.where = append(p.where, expr+` = ?`)
		p.args = append(p.args, arg)
		return nil
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) == 0 {
		return errFrontUnsupported // {} is an equality with a document
	}
	for _, e := range elems {
		op, ov := e.Key(), e.Value()
		switch op {
		case "$eq", "$gt", "$gte", "$lt", "$lte":
			arg, err := frontArg(f, ov)
			if err != nil {
				return err
			}
			p.where = append(p.where, expr+` `+sqlOps[op]+` ?`)
			p.args = append(p.args, arg)
		case "$in":
			if err := planIn(p, f, expr, ov); err != nil {
				return err
			}
		case "$regex":
			pattern, ok := ov.StringValueOK()
			options := ""
			if !ok {
				if ov.Type != bsoncore.TypeRegex {
					return errFrontUnsupported
				}
				pattern, options = ov.Regex()
			}
			if o, err := doc.LookupErr("$options"); err == nil {
				s, isString := o.StringValueOK()
				if !isString || options != "" {
					return errFrontUnsupported
				}
				options = s
			}
			if err := planPrefix(p, f, expr, pattern, options); err != nil {
				return err
			}
		case "$options":
			if _, err := doc.LookupErr("$regex"); err != nil {
				return errFrontUnsupported // $options alone: an error
			}
		default:
			return errFrontUnsupported
		}
	}
	return nil
}

var sqlOps = map[string]string{"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

// planIn plans {$in: [values]}.
func planIn(p *frontPlan, f frontField, expr string, v bsoncore.Value) error {
	arr, ok := v.ArrayOK()
	if !ok {
		return errFrontUnsupported
	}
	items, err := arr.Values()
	if err != nil {
		return errFrontUnsupported
	}
	if len(items) == 0 {
		p.where = append(p.where, "0")
		return nil
	}
	marks := make([]string, len(items))
	for i, item := range items {
		arg, err := frontArg(f, item)
		if err != nil {
			return err
		}
		marks[i] = "?"
		p.args = append(p.args, arg)
	}
	p.where = append(p.where, expr+` IN (`+strings.Join(marks, ", ")+`)`)
	return nil
}

// planPrefix plans a regular expression on a string field. FerretDB
// matches one with Go's regexp, compiled from "(?<options>)<pattern>"
// (options i, m and s; x refused; others ignored): the front compiles the
// same and matches the same strings (frontexec.go), after narrowing the
// rows to the index range of the literal prefix every match starts with
// when the expression is anchored at the start of the text.
func planPrefix(p *frontPlan, f frontField, expr, pattern, options string) error {
	if f.kind != frontString || !utf8.ValidString(pattern) {
		return errFrontUnsupported
	}
	if prefix, ok := regexPrefix(pattern); ok && options == "" {
		addRange(p, expr, prefix)
		return nil
	}
	var flags string
	for _, o := range options {
		switch o {
		case 'i', 'm', 's':
			flags += string(o)
		default:
			return errFrontUnsupported // x (refused by FerretDB) and the ones it ignores
		}
	}
	full := pattern
	if flags != "" {
		full = "(?" + flags + ")" + pattern
	}
	re, err := regexp.Compile(full)
	if err != nil {
		return errFrontUnsupported // FerretDB answers the error
	}
	if prefix, ok := anchoredPrefix(full); ok {
		addRange(p, expr, prefix)
	}
	p.regexes = append(p.regexes, frontRegex{field: f, re: re})
	return nil
}

// addRange narrows expr to the strings that start with prefix.
func addRange(p *frontPlan, expr, prefix string) {
	p.where = append(p.where, expr+` >= ?`)
	p.args = append(p.args, prefix)
	if hi, ok := prefixSuccessor(prefix); ok {
		p.where = append(p.where, expr+` < ?`)
		p.args = append(p.args, hi)
	}
}

// anchoredPrefix returns the literal every match of expr starts with when
// expr can only match at the start of the text (\A, or ^ without the m
// flag) followed by a case-sensitive literal; ok is false otherwise.
func anchoredPrefix(expr string) (string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return "", false
	}
	lit := re.Sub[1]
	if lit.Op != syntax.OpLiteral || lit.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(lit.Rune), true
}

// regexPrefix returns the literal that pattern matches at the start of a
// string when pattern is "^" followed by literal characters only (ASCII
// punctuation may be escaped with a backslash); ok is false otherwise.
func regexPrefix(pattern string) (string, bool) {
	rest, ok := strings.CutPrefix(pattern, "^")
	if !ok || !utf8.ValidString(rest) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		ch := rest[i]
		switch {
		case ch == '\\':
			if i+1 >= len(rest) || !isASCIIPunct(rest[i+1]) {
				return "", false // \d, \b, \Q… and the like are not literals
			}
			i++
			b.WriteByte(rest[i])
		case strings.IndexByte(".^$|?*+()[]{}", ch) >= 0:
			return "", false
		case ch < 0x20 || ch == 0x7f:
			return "", false // control characters: not worth the doubt
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), true
}

func isASCIIPunct(ch byte) bool {
	return ch > ' ' && ch < 0x7f && !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z')
}

// prefixSuccessor is the smallest string greater than every string that
// starts with prefix, in SQLite's (and BSON's) byte order; ok is false
// when there is none (an empty prefix).
func prefixSuccessor(prefix string) (string, bool) {
	b := []byte(prefix)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", false
	}
	b[len(b)-1]++
	return string(b), true
}

// maxExactInt bounds the integers the front compares: beyond it, a double
// and a long may compare differently in SQLite and in FerretDB.
const maxExactInt = 1 << 53

// frontArg is the SQL value to compare field f's values with, for the
// BSON value v of a query.
func frontArg(f frontField, v bsoncore.Value) (any, error) {
	switch f.kind {
	case frontNumber:
		switch v.Type {
		case bsoncore.TypeInt32:
			return int64(v.Int32()), nil
		case bsoncore.TypeInt64:
			if n := v.Int64(); n >= -maxExactInt && n <= maxExactInt {
				return n, nil
			}
		case bsoncore.TypeDouble:
			if d := v.Double(); !math.IsNaN(d) && !math.IsInf(d, 0) && math.Abs(d) <= maxExactInt {
				return d, nil
			}
		}
	case frontString:
		if s, ok := v.StringValueOK(); ok && utf8.ValidString(s) {
			return s, nil
		}
	case frontDate:
		if ms, ok := v.DateTimeOK(); ok {
			return ms, nil
		}
	}
	return nil, errFrontUnsupported
}

// planSort adds the order of sort ({field: 1 or -1, …}) on front fields.
// FerretDB sorts documents without the field first (as null), then by
// value; the front's type check makes every present value one family.
// Documents equal on every key stay in FerretDB's row order, which
// FerretDB itself does not promise (its sort is not stable; MongoDB
// leaves that order open too).
func (c *frontCollection) planSort(p *frontPlan, sort bsoncore.Document) error {
	elems, err := sort.Elements()
	if err != nil {
		return errFrontUnsupported
	}
	for _, e := range elems {
		f, ok := c.field(e.Key())
		if !ok {
			return errFrontUnsupported
		}
		dir, ok := wholeNumber(e.Value())
		if !ok || dir != 1 && dir != -1 {
			return errFrontUnsupported
		}
		p.check(f)
		desc := ""
		if dir < 0 {
			desc = " DESC"
		}
		p.order = append(p.order, frontTypeExpr(f.name)+` IS NOT NULL`+desc, frontValueExpr(f.name)+desc)
	}
	return nil
}

// wholeNumber reads an int32, int64 or whole double.
func wholeNumber(v bsoncore.Value) (int64, bool) {
	switch v.Type {
	case bsoncore.TypeInt32:
		return int64(v.Int32()), true
	case bsoncore.TypeInt64:
		return v.Int64(), true
	case bsoncore.TypeDouble:
		d := v.Double()
		if d == math.Trunc(d) && math.Abs(d) <= maxExactInt {
			return int64(d), true
		}
	}
	return 0, false
}

// sjsonString is the JSON text FerretDB stores for string s, as its
// _id index holds it (encoding/json's, which escapes <, > and &).
func sjsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// frontProjection is a projection of top-level fields, all included or
// all excluded, and _id kept or not.
type frontProjection struct {
	include bool
	fields  map[string]bool
	dropID  bool
}

// planProjection reads a projection such as {url: 1} or {url: 1, _id: 0}
// or {status: 0}; any other (dotted paths, expressions, $-operators, a
// mix of inclusion and exclusion, only _id) is refused. An empty
// projection is nil: every field.
func planProjection(doc bsoncore.Document) (*frontProjection, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, errFrontUnsupported
	}
	if len(elems) == 0 {
		return nil, nil
	}
	p := &frontProjection{fields: map[string]bool{}}
	seen := map[string]bool{}
	mode := 0 // 1 include, -1 exclude
	for _, e := range elems {
		key := e.Key()
		if key == "" || seen[key] || strings.ContainsAny(key, ".$") {
			return nil, errFrontUnsupported
		}
		seen[key] = true
		var on bool
		v := e.Value()
		if b, ok := v.BooleanOK(); ok {
			on = b
		} else if n, ok := wholeNumber(v); ok && (n == 0 || n == 1) {
			on = n == 1
		} else {
			return nil, errFrontUnsupported
		}
		if key == "_id" {
			p.dropID = !on
			continue
		}
		m := map[bool]int{true: 1, false: -1}[on]
		if mode != 0 && mode != m {
			return nil, errFrontUnsupported
		}
		mode = m
		p.fields[key] = true
	}
	if mode == 0 {
		return nil, errFrontUnsupported
	}
	p.include = mode == 1
	return p, nil
}

// apply is doc projected as FerretDB projects it: _id first (unless
// dropped), then the document's other fields in its order, those named
// (inclusion) or those not named (exclusion).
func (p *frontProjection) apply(doc []byte) ([]byte, error) {
	elems, err := bsoncore.Document(doc).Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(doc)))
	if !p.dropID {
		for _, e := range elems {
			if e.Key() == "_id" {
				out = append(out, e...)
			}
		}
	}
	for _, e := range elems {
		if k := e.Key(); k != "_id" && p.fields[k] == p.include {
			out = append(out, e...)
		}
	}
	return bsoncore.AppendDocumentEnd(out, idx)
}
