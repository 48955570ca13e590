package store

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
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

// sjsonMaxDepth bounds the nesting of the JSON text read, so that corrupt
// text cannot exhaust the stack. SQLite refuses to store JSON nested deeper
// than 1000 (its parser runs on every insert, for the _id index), so no
// stored row is deeper: the server stores documents nested 300 deep, whose
// schema nests three times deeper than the document.
const sjsonMaxDepth = 1000

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
	return decodeSJSON(dst, text, topSchemas)
}

// decodeSJSON is appendSJSON with the schemas of cache (none if nil).
func decodeSJSON(dst []byte, text string, cache *schemaCache) ([]byte, error) {
	d := sjsonDecoder{s: text, cache: cache}
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
	s     string
	i     int
	cache *schemaCache // top-level schemas already read, or nil

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
				if sch, err = d.topSchema(depth + 1); err != nil {
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
		if sch, err = d.topSchema(depth + 1); err != nil {
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
	return d.numberValue(dst, key, el)
}

// numberValue reads the JSON number at d.i, typed by el, and appends it as
// the BSON element key.
func (d *sjsonDecoder) numberValue(dst []byte, key string, el *sjsonElem) ([]byte, error) {
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
