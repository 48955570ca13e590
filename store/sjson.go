package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// FerretDB v1's SQLite backend stores a document as JSON text ("sjson",
// internal/handler/sjson): the fields as plain JSON values, and a schema in
// the first field "$s" that gives each field's BSON type, the key order of
// every (sub)document and the item types of every array:
//
//	{"$s":{"p":{"_id":{"t":"string"},"n":{"t":"int"}},"$k":["_id","n"]},"_id":"a","n":1}
//
// appendSJSON turns that text into the BSON FerretDB sends for the document
// on the wire, byte for byte: same key order, same types, JSON strings
// unescaped the way encoding/json does (invalid UTF-8 and lone surrogates
// become U+FFFD). It reads the text once, without building a tree of Go
// values, because that is what made a find through FerretDB slow.

// sjsonMaxDepth bounds the nesting of documents and arrays (BSON allows 100
// in MongoDB) so that corrupt text cannot exhaust the stack.
const sjsonMaxDepth = 200

// errSJSON is wrapped by every decoding error.
var errSJSON = errors.New("invalid sjson")

type sjsonKind uint8

const (
	kindObject sjsonKind = iota + 1
	kindArray
	kindDouble
	kindString
	kindBinary
	kindObjectID
	kindBool
	kindDate
	kindNull
	kindRegex
	kindInt
	kindTimestamp
	kindLong
)

// sjsonKinds maps a schema "t" to its kind.
var sjsonKinds = map[string]sjsonKind{
	"object":    kindObject,
	"array":     kindArray,
	"double":    kindDouble,
	"string":    kindString,
	"binData":   kindBinary,
	"objectId":  kindObjectID,
	"bool":      kindBool,
	"date":      kindDate,
	"null":      kindNull,
	"regex":     kindRegex,
	"int":       kindInt,
	"timestamp": kindTimestamp,
	"long":      kindLong,
}

// BSON element types.
const (
	bsonDouble    = 0x01
	bsonString    = 0x02
	bsonDocument  = 0x03
	bsonArray     = 0x04
	bsonBinary    = 0x05
	bsonObjectID  = 0x07
	bsonBool      = 0x08
	bsonDate      = 0x09
	bsonNull      = 0x0A
	bsonRegex     = 0x0B
	bsonInt32     = 0x10
	bsonTimestamp = 0x11
	bsonInt64     = 0x12
)

// sjsonSchema is the schema of a document: "$k" and "p".
type sjsonSchema struct {
	keys  []string
	props []sjsonProp
}

type sjsonProp struct {
	name string
	elem *sjsonElem
}

// sjsonElem is the schema of one value.
type sjsonElem struct {
	kind       sjsonKind
	schema     *sjsonSchema // object
	items      []*sjsonElem // array
	hasItems   bool
	options    string // regex
	hasOptions bool
	subtype    byte // binData
	hasSubtype bool
}

// elem returns the schema of the n-th key, or nil.
func (s *sjsonSchema) elem(n int, key string) *sjsonElem {
	if n < len(s.props) && s.props[n].name == key {
		return s.props[n].elem
	}
	for i := range s.props {
		if s.props[i].name == key {
			return s.props[i].elem
		}
	}
	return nil
}

// appendSJSON appends the BSON form of the sjson document text to dst.
func appendSJSON(dst []byte, text string) ([]byte, error) {
	d := sjsonDecoder{s: text}
	d.ws()
	if d.peek() != '{' {
		return dst, d.errorf("document is not a JSON object")
	}
	dst, err := d.object(dst, nil, true, 0)
	if err != nil {
		return dst, err
	}
	d.ws()
	if d.i != len(d.s) {
		return dst, d.errorf("%d bytes after the document", len(d.s)-d.i)
	}
	return dst, nil
}

type sjsonDecoder struct {
	s string
	i int

	// The schema's values come from arenas, a few allocations per
	// document rather than one per field. Props and items are read onto a
	// stack (a nested schema's above its parent's) and then copied to
	// their arena in one piece.
	elems     []sjsonElem
	schemas   []sjsonSchema
	keyArena  []string
	propArena []sjsonProp
	propStack []sjsonProp
	itemArena []*sjsonElem
	itemStack []*sjsonElem
}

// arenaChunk is the number of values an arena allocates at once.
const arenaChunk = 32

func (d *sjsonDecoder) newElem() *sjsonElem {
	if len(d.elems) == cap(d.elems) {
		d.elems = make([]sjsonElem, 0, arenaChunk)
	}
	d.elems = d.elems[:len(d.elems)+1]
	return &d.elems[len(d.elems)-1]
}

func (d *sjsonDecoder) newSchema() *sjsonSchema {
	if len(d.schemas) == cap(d.schemas) {
		d.schemas = make([]sjsonSchema, 0, arenaChunk)
	}
	d.schemas = d.schemas[:len(d.schemas)+1]
	return &d.schemas[len(d.schemas)-1]
}

func (d *sjsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSJSON, d.i, fmt.Sprintf(format, args...))
}

func (d *sjsonDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (d *sjsonDecoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// next skips white space and consumes c.
func (d *sjsonDecoder) next(c byte) error {
	d.ws()
	if d.peek() != c {
		return d.errorf("want %q", c)
	}
	d.i++
	return nil
}

// more skips white space after a member or item and reports whether
// another follows (a comma) or the container ends (close).
func (d *sjsonDecoder) more(close byte) (bool, error) {
	d.ws()
	switch d.peek() {
	case ',':
		d.i++
		return true, nil
	case close:
		d.i++
		return false, nil
	}
	return false, d.errorf("want ',' or %q", close)
}

// literal consumes word if it is next.
func (d *sjsonDecoder) literal(word string) bool {
	if strings.HasPrefix(d.s[d.i:], word) {
		d.i += len(word)
		return true
	}
	return false
}

// key reads a member name and the colon after it. The result may share
// memory with the text.
func (d *sjsonDecoder) key() (string, error) {
	d.ws()
	k, err := d.str()
	if err != nil {
		return "", err
	}
	return k, d.next(':')
}

// str reads a JSON string as encoding/json decodes it. The result shares
// memory with the text when the string needs no unescaping.
func (d *sjsonDecoder) str() (string, error) {
	if d.peek() != '"' {
		return "", d.errorf("want a string")
	}
	start := d.i + 1
	for j := start; j < len(d.s); j++ {
		c := d.s[j]
		switch {
		case c == '"':
			raw := d.s[start:j]
			if utf8.ValidString(raw) {
				d.i = j + 1
				return raw, nil
			}
			j = len(d.s) // invalid UTF-8: take the slow path
		case c == '\\':
			j = len(d.s)
		case c < ' ':
			d.i = j
			return "", d.errorf("control character in string")
		}
	}
	b, err := d.appendStr(nil)
	return string(b), err
}

// appendStr reads a JSON string and appends its content to dst, unescaped
// as encoding/json does. HTML pages dominate: runs of plain ASCII between
// \u003c-style escapes.
func (d *sjsonDecoder) appendStr(dst []byte) ([]byte, error) {
	if d.peek() != '"' {
		return dst, d.errorf("want a string")
	}
	s := d.s
	i := d.i + 1
	for i < len(s) {
		c := s[i]
		if plainASCII[c] {
			j := i + 1
			for j < len(s) && plainASCII[s[j]] {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if c == '\\' && i+5 < len(s) && s[i+1] == 'u' && s[i+2] == '0' && s[i+3] == '0' {
			// \u00XX, how encoding/json writes <, >, & and controls.
			if hi, lo := hexValue[s[i+4]], hexValue[s[i+5]]; hi < 8 && lo < 16 {
				dst = append(dst, hi<<4|lo)
				i += 6
				continue
			}
		}
		switch {
		case c == '"':
			d.i = i + 1
			return dst, nil
		case c == '\\':
			if i+1 >= len(s) {
				d.i = i
				return dst, d.errorf("unterminated string")
			}
			switch s[i+1] {
			case '"', '\\', '/':
				dst = append(dst, s[i+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s, i+2)
				if r < 0 {
					d.i = i
					return dst, d.errorf("invalid \\u escape")
				}
				i += 6
				if r < utf8.RuneSelf {
					dst = append(dst, byte(r))
					continue
				}
				if utf16.IsSurrogate(r) {
					if r2 := u4(s, i); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				d.i = i
				return dst, d.errorf("invalid escape")
			}
			i += 2
		case c < ' ':
			d.i = i
			return dst, d.errorf("control character in string")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	d.i = i
	return dst, d.errorf("unterminated string")
}

// plainASCII marks the bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexValue maps a hex digit to its value, anything else to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

// hex4 parses the four hex digits at s[i:], or returns -1.
func hex4(s string, i int) rune {
	if i+4 > len(s) {
		return -1
	}
	a, b, c, d := hexValue[s[i]], hexValue[s[i+1]], hexValue[s[i+2]], hexValue[s[i+3]]
	if (a|b|c|d)&0xf0 != 0 {
		return -1
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d)
}

// u4 parses a \uXXXX escape at s[i:], or returns -1.
func u4(s string, i int) rune {
	if i+1 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return -1
	}
	return hex4(s, i+2)
}

// number reads a JSON number and returns its text.
func (d *sjsonDecoder) number() (string, error) {
	s, start := d.s, d.i
	i := start
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return "", d.errorf("want a number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.i = i
			return "", d.errorf("invalid number")
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.i = i
			return "", d.errorf("invalid number")
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return s[start:i], nil
}

// skip consumes one JSON value of any kind.
func (d *sjsonDecoder) skip(depth int) error {
	if depth > sjsonMaxDepth {
		return d.errorf("nested too deeply")
	}
	d.ws()
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		d.i++
		d.ws()
		if d.peek() == '}' {
			d.i++
			return nil
		}
		for {
			if _, err := d.key(); err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			more, err := d.more('}')
			if err != nil || !more {
				return err
			}
		}
	case c == '[':
		d.i++
		d.ws()
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			more, err := d.more(']')
			if err != nil || !more {
				return err
			}
		}
	case c == '-' || ('0' <= c && c <= '9'):
		_, err := d.number()
		return err
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	}
	return d.errorf("want a JSON value")
}

// schema reads a document schema: {"p":{<key>:<elem>,...},"$k":[<key>,...]}.
func (d *sjsonDecoder) schema(depth int) (*sjsonSchema, error) {
	if depth > sjsonMaxDepth {
		return nil, d.errorf("nested too deeply")
	}
	if err := d.next('{'); err != nil {
		return nil, err
	}
	sch := d.newSchema()
	d.ws()
	if d.peek() == '}' {
		d.i++
		return sch, nil
	}
	for {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		d.ws()
		switch {
		case d.literal("null"):
		case k == "p":
			if err := d.props(sch, depth); err != nil {
				return nil, err
			}
		case k == "$k":
			if err := d.keys(sch); err != nil {
				return nil, err
			}
		default:
			return nil, d.errorf("unknown schema field %q", k)
		}
		more, err := d.more('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return sch, nil
		}
	}
}

func (d *sjsonDecoder) props(sch *sjsonSchema, depth int) error {
	if err := d.next('{'); err != nil {
		return err
	}
	d.ws()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	base := len(d.propStack)
	defer func() { d.propStack = d.propStack[:base] }()
	for {
		k, err := d.key()
		if err != nil {
			return err
		}
		el, err := d.elem(depth + 1)
		if err != nil {
			return err
		}
		d.propStack = append(d.propStack, sjsonProp{name: k, elem: el})
		more, err := d.more('}')
		if err != nil {
			return err
		}
		if !more {
			start := len(d.propArena)
			d.propArena = append(d.propArena, d.propStack[base:]...)
			sch.props = d.propArena[start:len(d.propArena):len(d.propArena)]
			return nil
		}
	}
}

func (d *sjsonDecoder) keys(sch *sjsonSchema) error {
	if err := d.next('['); err != nil {
		return err
	}
	d.ws()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	start := len(d.keyArena)
	for {
		d.ws()
		k, err := d.str()
		if err != nil {
			return err
		}
		if strings.IndexByte(k, 0) >= 0 {
			return d.errorf("key %q holds a NUL byte", k)
		}
		d.keyArena = append(d.keyArena, k)
		more, err := d.more(']')
		if err != nil {
			return err
		}
		if !more {
			// Appends above reallocate, never overwrite these.
			sch.keys = d.keyArena[start:len(d.keyArena):len(d.keyArena)]
			return nil
		}
	}
}

// elem reads the schema of one value: {"t":<type>, ...}. A JSON null
// gives nil.
func (d *sjsonDecoder) elem(depth int) (*sjsonElem, error) {
	if depth > sjsonMaxDepth {
		return nil, d.errorf("nested too deeply")
	}
	d.ws()
	if d.literal("null") {
		return nil, nil
	}
	if err := d.next('{'); err != nil {
		return nil, err
	}
	el := d.newElem()
	d.ws()
	if d.peek() == '}' {
		d.i++
		return el, nil
	}
	for {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		d.ws()
		switch k {
		case "t":
			t, err := d.str()
			if err != nil {
				return nil, err
			}
			el.kind = sjsonKinds[t]
			if el.kind == 0 {
				return nil, d.errorf("unknown type %q", t)
			}
		case "$s":
			if el.schema, err = d.schemaOrNull(depth); err != nil {
				return nil, err
			}
		case "o":
			if !d.literal("null") {
				if el.options, err = d.str(); err != nil {
					return nil, err
				}
				el.hasOptions = true
			}
		case "s":
			if !d.literal("null") {
				n, err := d.number()
				if err != nil {
					return nil, err
				}
				st, err := strconv.ParseUint(n, 10, 8)
				if err != nil {
					return nil, d.errorf("binary subtype %s: %v", n, err)
				}
				el.subtype, el.hasSubtype = byte(st), true
			}
		case "i":
			if !d.literal("null") {
				if el.items, err = d.items(depth); err != nil {
					return nil, err
				}
				el.hasItems = true
			}
		default:
			return nil, d.errorf("unknown schema field %q", k)
		}
		more, err := d.more('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return el, nil
		}
	}
}

func (d *sjsonDecoder) schemaOrNull(depth int) (*sjsonSchema, error) {
	if d.literal("null") {
		return nil, nil
	}
	return d.schema(depth + 1)
}

func (d *sjsonDecoder) items(depth int) ([]*sjsonElem, error) {
	if err := d.next('['); err != nil {
		return nil, err
	}
	d.ws()
	if d.peek() == ']' {
		d.i++
		return []*sjsonElem{}, nil
	}
	base := len(d.itemStack)
	defer func() { d.itemStack = d.itemStack[:base] }()
	for {
		el, err := d.elem(depth + 1)
		if err != nil {
			return nil, err
		}
		d.itemStack = append(d.itemStack, el)
		more, err := d.more(']')
		if err != nil {
			return nil, err
		}
		if !more {
			start := len(d.itemArena)
			d.itemArena = append(d.itemArena, d.itemStack[base:]...)
			return d.itemArena[start:len(d.itemArena):len(d.itemArena)], nil
		}
	}
}

// object reads the JSON object at d.i and appends it as a BSON document.
// At the top (top is true) its schema is its own "$s" member, otherwise
// sch. FerretDB writes the members in schema order, which object decodes
// in one pass; any other order takes a second pass.
func (d *sjsonDecoder) object(dst []byte, sch *sjsonSchema, top bool, depth int) ([]byte, error) {
	if depth > sjsonMaxDepth {
		return dst, d.errorf("nested too deeply")
	}
	start, mark := d.i, len(dst)
	dst = append(dst, 0, 0, 0, 0)
	d.i++ // '{'
	d.ws()
	n := 0
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			k, err := d.key()
			if err != nil {
				return dst, err
			}
			if top && sch == nil {
				if k != "$s" {
					break // schema not first
				}
				if sch, err = d.schema(depth + 1); err != nil {
					return dst, err
				}
			} else {
				if n >= len(sch.keys) || k != sch.keys[n] {
					break
				}
				if dst, err = d.value(dst, k, sch.elem(n, k), depth); err != nil {
					return dst, err
				}
				n++
			}
			more, err := d.more('}')
			if err != nil {
				return dst, err
			}
			if !more {
				if top && sch == nil {
					return dst, d.errorf("schema is not set")
				}
				if sch != nil && n != len(sch.keys) {
					return dst, d.errorf("%d keys in the schema, %d in the document", len(sch.keys), n)
				}
				return endDocument(dst, mark), nil
			}
		}
		d.i, dst = start, dst[:mark]
		return d.objectAnyOrder(dst, sch, top, depth)
	}
	if top {
		return dst, d.errorf("schema is not set")
	}
	// An empty object is an empty document whatever the schema says, as
	// in FerretDB.
	return endDocument(dst, mark), nil
}

// objectAnyOrder is object for members in any order: like FerretDB, it
// reads them into a map (the last of duplicates wins), then emits the
// schema's keys in order.
func (d *sjsonDecoder) objectAnyOrder(dst []byte, sch *sjsonSchema, top bool, depth int) ([]byte, error) {
	d.i++ // '{'
	at := map[string]int{}
	var end int
	d.ws()
	if d.peek() == '}' {
		d.i++
		end = d.i
	} else {
		for {
			k, err := d.key()
			if err != nil {
				return dst, err
			}
			d.ws()
			at[k] = d.i
			if err := d.skip(depth + 1); err != nil {
				return dst, err
			}
			more, err := d.more('}')
			if err != nil {
				return dst, err
			}
			if !more {
				end = d.i
				break
			}
		}
	}
	if top {
		pos, ok := at["$s"]
		if !ok {
			return dst, d.errorf("schema is not set")
		}
		d.i = pos
		var err error
		if sch, err = d.schema(depth + 1); err != nil {
			return dst, err
		}
		delete(at, "$s")
	}
	if len(at) == 0 && !top {
		d.i = end
		mark := len(dst)
		return endDocument(append(dst, 0, 0, 0, 0), mark), nil
	}
	if sch == nil {
		return dst, d.errorf("document schema is not set")
	}
	if len(sch.keys) != len(at) {
		return dst, d.errorf("%d keys in the schema, %d in the document", len(sch.keys), len(at))
	}
	mark := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for n, k := range sch.keys {
		pos, ok := at[k]
		if !ok {
			return dst, d.errorf("missing key %q", k)
		}
		d.i = pos
		var err error
		if dst, err = d.value(dst, k, sch.elem(n, k), depth); err != nil {
			return dst, err
		}
	}
	d.i = end
	return endDocument(dst, mark), nil
}

// endDocument terminates the BSON document that starts at mark.
func endDocument(dst []byte, mark int) []byte {
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[mark:], uint32(len(dst)-mark))
	return dst
}

// element appends a BSON element header: type and key.
func element(dst []byte, t byte, key string) []byte {
	dst = append(dst, t)
	dst = append(dst, key...)
	return append(dst, 0)
}

// value reads the JSON value at d.i, typed by el, and appends it as the
// BSON element key. A JSON null is a BSON null whatever el says.
func (d *sjsonDecoder) value(dst []byte, key string, el *sjsonElem, depth int) ([]byte, error) {
	d.ws()
	if d.literal("null") {
		return element(dst, bsonNull, key), nil
	}
	if el == nil {
		return dst, d.errorf("no schema for field %q", key)
	}
	var err error
	switch el.kind {
	case kindObject:
		if el.schema == nil {
			return dst, d.errorf("no schema for document %q", key)
		}
		if d.peek() != '{' {
			return dst, d.errorf("want an object for %q", key)
		}
		return d.object(element(dst, bsonDocument, key), el.schema, false, depth+1)
	case kindArray:
		if !el.hasItems {
			return dst, d.errorf("no item schemas for array %q", key)
		}
		return d.array(element(dst, bsonArray, key), el.items, depth+1)
	case kindString:
		dst = element(dst, bsonString, key)
		mark := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		if dst, err = d.appendStr(dst); err != nil {
			return dst, err
		}
		dst = append(dst, 0)
		binary.LittleEndian.PutUint32(dst[mark:], uint32(len(dst)-mark-4))
		return dst, nil
	case kindBinary:
		if !el.hasSubtype {
			return dst, d.errorf("no binary subtype for %q", key)
		}
		return d.binary(element(dst, bsonBinary, key), el.subtype)
	case kindObjectID:
		var s string
		if s, err = d.str(); err != nil {
			return dst, err
		}
		if len(s) != 24 {
			return dst, d.errorf("object id %q", s)
		}
		dst = element(dst, bsonObjectID, key)
		n := len(dst)
		dst = append(dst, make([]byte, 12)...)
		if _, err := hex.Decode(dst[n:], unsafeBytes(s)); err != nil {
			return dst, d.errorf("object id %q: %v", s, err)
		}
		return dst, nil
	case kindBool:
		switch {
		case d.literal("true"):
			return append(element(dst, bsonBool, key), 1), nil
		case d.literal("false"):
			return append(element(dst, bsonBool, key), 0), nil
		}
		return dst, d.errorf("want a bool for %q", key)
	case kindRegex:
		if !el.hasOptions {
			return dst, d.errorf("no regex options for %q", key)
		}
		var p string
		if p, err = d.str(); err != nil {
			return dst, err
		}
		if strings.IndexByte(p, 0) >= 0 || strings.IndexByte(el.options, 0) >= 0 {
			return dst, d.errorf("regex %q holds a NUL byte", key)
		}
		dst = append(element(dst, bsonRegex, key), p...)
		dst = append(append(dst, 0), el.options...)
		return append(dst, 0), nil
	case kindNull:
		return dst, d.errorf("want null for %q", key)
	}

	// Numbers.
	num, err := d.number()
	if err != nil {
		return dst, err
	}
	switch el.kind {
	case kindDouble:
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return dst, d.errorf("double %s: %v", num, err)
		}
		return binary.LittleEndian.AppendUint64(element(dst, bsonDouble, key), math.Float64bits(f)), nil
	case kindInt:
		n, err := strconv.ParseInt(num, 10, 32)
		if err != nil {
			return dst, d.errorf("int %s: %v", num, err)
		}
		return binary.LittleEndian.AppendUint32(element(dst, bsonInt32, key), uint32(n)), nil
	case kindLong, kindDate:
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return dst, d.errorf("long %s: %v", num, err)
		}
		t := byte(bsonInt64)
		if el.kind == kindDate {
			t = bsonDate
		}
		return binary.LittleEndian.AppendUint64(element(dst, t, key), uint64(n)), nil
	case kindTimestamp:
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return dst, d.errorf("timestamp %s: %v", num, err)
		}
		return binary.LittleEndian.AppendUint64(element(dst, bsonTimestamp, key), n), nil
	}
	return dst, d.errorf("unhandled type %d for %q", el.kind, key)
}

// array reads the JSON array at d.i and appends it as a BSON array.
func (d *sjsonDecoder) array(dst []byte, items []*sjsonElem, depth int) ([]byte, error) {
	if depth > sjsonMaxDepth {
		return dst, d.errorf("nested too deeply")
	}
	if d.peek() != '[' {
		return dst, d.errorf("want an array")
	}
	d.i++
	mark := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	d.ws()
	n := 0
	if d.peek() == ']' {
		d.i++
	} else {
		for {
			if n >= len(items) {
				return dst, d.errorf("more items than the %d in the schema", len(items))
			}
			var err error
			if dst, err = d.value(dst, arrayKey(n), items[n], depth); err != nil {
				return dst, err
			}
			n++
			more, err := d.more(']')
			if err != nil {
				return dst, err
			}
			if !more {
				break
			}
		}
	}
	if n != len(items) {
		return dst, d.errorf("%d items in the schema, %d in the array", len(items), n)
	}
	return endDocument(dst, mark), nil
}

// arrayKeys are the keys of the first array items, to spare a conversion.
var arrayKeys = func() []string {
	keys := make([]string, 128)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	return keys
}()

// arrayKey returns the BSON key of the n-th array item.
func arrayKey(n int) string {
	if n < len(arrayKeys) {
		return arrayKeys[n]
	}
	return strconv.Itoa(n)
}

// binary reads a base64 JSON string (encoding/json's form of []byte) and
// appends the BSON binary value.
func (d *sjsonDecoder) binary(dst []byte, subtype byte) ([]byte, error) {
	s, err := d.str()
	if err != nil {
		return dst, err
	}
	mark := len(dst)
	dst = append(dst, 0, 0, 0, 0, subtype)
	n := len(dst)
	dst = append(dst, make([]byte, base64.StdEncoding.DecodedLen(len(s)))...)
	m, err := base64.StdEncoding.Decode(dst[n:], unsafeBytes(s))
	if err != nil {
		return dst, d.errorf("binary: %v", err)
	}
	dst = dst[:n+m]
	binary.LittleEndian.PutUint32(dst[mark:], uint32(m))
	return dst, nil
}

// unsafeBytes views s as bytes for functions that only read them.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
