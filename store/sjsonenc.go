package store

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// errSJSONEncode says a document holds a value FerretDB v1.24.2 cannot
// store (decimal128, JavaScript, min/max key...) or a double it cannot
// encode (NaN, ±Inf): the caller writes through the server instead, which
// answers with its own error.
var errSJSONEncode = errors.New("value not encodable as sjson")

// encodeSJSON encodes doc the way FerretDB v1.24.2's sjson.Marshal stores
// it in its SQLite tables: a JSON object whose "$s" member is the schema
// (every field's type, nested schemas, key order) followed by the fields'
// values. FerretDB reads what it returns exactly as what it writes itself.
//
// One deliberate difference: strings other than _id are not HTML-escaped
// (encoding/json writes '<' as \u003c). Both decode to the same string,
// and an HTML page stored as a string shrinks by up to a third, which
// SQLite parses on every insert (for the _id index) and FerretDB on every
// read. _id keeps encoding/json's exact form because FerretDB finds
// documents by comparing the stored _id's JSON text with its own encoding.
func encodeSJSON(doc bson.Raw) ([]byte, error) {
	fields, err := fieldsOf(doc)
	if err != nil {
		return nil, err
	}
	return encodeSJSONFields(doc, fields)
}

// encodeSJSONFields is encodeSJSON of doc, whose fields (fieldsOf) the
// caller has listed already.
func encodeSJSONFields(doc bson.Raw, fields []docField) ([]byte, error) {
	buf := make([]byte, 0, len(doc)+len(doc)/8+256)
	buf = append(buf, `{"$s":`...)
	buf, err := appendFieldsSchema(buf, fields, 0)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		buf = append(buf, ',')
		buf = appendJSONString(buf, f.key, true)
		buf = append(buf, ':')
		if buf, err = appendSJSONValue(buf, f.val, f.key == "_id", 0); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// docField is one field of a document: its name, read once (a BSON
// element's Key scans for the name's end and copies it on every call),
// and its value.
type docField struct {
	key string
	val bson.RawValue
}

// fieldsOf lists doc's fields with _id first, where FerretDB puts it.
func fieldsOf(doc bson.Raw) ([]docField, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSJSONEncode, err)
	}
	fields := make([]docField, len(elems))
	at := 0 // where the next field goes: after _id once it is found
	for _, e := range elems {
		f := docField{key: e.Key(), val: e.Value()}
		if f.key == "_id" && at > 0 && fields[0].key != "_id" {
			copy(fields[1:at+1], fields[:at])
			fields[0] = f
		} else {
			fields[at] = f
		}
		at++
	}
	return fields, nil
}

// maxSJSONDepth bounds nesting, like the BSON the server accepts.
const maxSJSONDepth = 150

// appendSchema appends doc's schema: {} when empty, else
// {"p":{key:elem,...},"$k":[key,...]}.
func appendSchema(buf []byte, doc bson.Raw, depth int) ([]byte, error) {
	if depth > maxSJSONDepth {
		return nil, fmt.Errorf("%w: nested too deep", errSJSONEncode)
	}
	fields, err := fieldsOf(doc)
	if err != nil {
		return nil, err
	}
	return appendFieldsSchema(buf, fields, depth)
}

// appendFieldsSchema is appendSchema of a document's fields.
func appendFieldsSchema(buf []byte, fields []docField, depth int) ([]byte, error) {
	if len(fields) == 0 {
		return append(buf, "{}"...), nil
	}
	if err := checkDuplicateKeys(len(fields), func(i int) string { return fields[i].key }); err != nil {
		return nil, err
	}
	buf = append(buf, `{"p":{`...)
	for i, f := range fields {
		if err := checkKey(f.key); err != nil {
			return nil, err
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, f.key, true)
		buf = append(buf, ':')
		var err error
		if buf, err = appendElemSchema(buf, f.val, depth); err != nil {
			return nil, err
		}
	}
	buf = append(buf, `},"$k":[`...)
	for i, f := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, f.key, true)
	}
	return append(buf, "]}"...), nil
}

// appendElemSchema appends the schema of one value.
func appendElemSchema(buf []byte, v bson.RawValue, depth int) ([]byte, error) {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		buf = append(buf, `{"t":"object","$s":`...)
		var err error
		if buf, err = appendSchema(buf, v.Document(), depth+1); err != nil {
			return nil, err
		}
		return append(buf, '}'), nil
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSJSONEncode, err)
		}
		buf = append(buf, `{"t":"array","i":[`...)
		for i, item := range vals {
			if item.Type == bson.TypeArray {
				return nil, fmt.Errorf("%w: nested arrays", errSJSONEncode)
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendElemSchema(buf, item, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, "]}"...), nil
	case bson.TypeBinary:
		sub, _ := v.Binary()
		buf = append(buf, `{"t":"binData","s":`...)
		buf = strconv.AppendUint(buf, uint64(sub), 10)
		return append(buf, '}'), nil
	case bson.TypeRegex:
		_, opts := v.Regex()
		buf = append(buf, `{"t":"regex","o":`...)
		buf = appendJSONString(buf, opts, true)
		return append(buf, '}'), nil
	}
	t, ok := sjsonScalarTypes[v.Type]
	if !ok {
		return nil, fmt.Errorf("%w: BSON type %s", errSJSONEncode, v.Type)
	}
	return append(buf, t...), nil
}

var sjsonScalarTypes = map[bson.Type]string{
	bson.TypeDouble:    `{"t":"double"}`,
	bson.TypeString:    `{"t":"string"}`,
	bson.TypeObjectID:  `{"t":"objectId"}`,
	bson.TypeBoolean:   `{"t":"bool"}`,
	bson.TypeDateTime:  `{"t":"date"}`,
	bson.TypeNull:      `{"t":"null"}`,
	bson.TypeInt32:     `{"t":"int"}`,
	bson.TypeTimestamp: `{"t":"timestamp"}`,
	bson.TypeInt64:     `{"t":"long"}`,
}

// appendSJSONValue appends one value; htmlSafe escapes strings exactly as
// encoding/json does.
func appendSJSONValue(buf []byte, v bson.RawValue, htmlSafe bool, depth int) ([]byte, error) {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		if depth > maxSJSONDepth {
			return nil, fmt.Errorf("%w: nested too deep", errSJSONEncode)
		}
		elems, err := v.Document().Elements()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSJSONEncode, err)
		}
		buf = append(buf, '{')
		for i, e := range elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, e.Key(), true)
			buf = append(buf, ':')
			if buf, err = appendSJSONValue(buf, e.Value(), false, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case bson.TypeArray:
		if depth > maxSJSONDepth {
			return nil, fmt.Errorf("%w: nested too deep", errSJSONEncode)
		}
		vals, err := v.Array().Values()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSJSONEncode, err)
		}
		buf = append(buf, '[')
		for i, item := range vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendSJSONValue(buf, item, false, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: double %v", errSJSONEncode, f)
		}
		if f == 0 {
			f = 0 // FerretDB stores -0 as 0
		}
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSJSONEncode, err)
		}
		return append(buf, b...), nil
	case bson.TypeString:
		return appendJSONString(buf, v.StringValue(), htmlSafe), nil
	case bson.TypeBinary:
		_, data := v.Binary()
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, data)
		return append(buf, '"'), nil
	case bson.TypeObjectID:
		id := v.ObjectID()
		buf = append(buf, '"')
		buf = hex.AppendEncode(buf, id[:])
		return append(buf, '"'), nil
	case bson.TypeBoolean:
		return strconv.AppendBool(buf, v.Boolean()), nil
	case bson.TypeDateTime:
		return strconv.AppendInt(buf, v.DateTime(), 10), nil
	case bson.TypeNull:
		return append(buf, "null"...), nil
	case bson.TypeRegex:
		pattern, _ := v.Regex()
		return appendJSONString(buf, pattern, true), nil
	case bson.TypeInt32:
		return strconv.AppendInt(buf, int64(v.Int32()), 10), nil
	case bson.TypeTimestamp:
		t, i := v.Timestamp()
		return strconv.AppendUint(buf, uint64(t)<<32|uint64(i), 10), nil
	case bson.TypeInt64:
		return strconv.AppendInt(buf, v.Int64(), 10), nil
	}
	return buf, fmt.Errorf("%w: BSON type %s", errSJSONEncode, v.Type)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does
// (invalid UTF-8 becomes U+FFFD; U+2028 and U+2029 are escaped), escaping
// '<', '>' and '&' only when htmlSafe.
func appendJSONString(buf []byte, s string, htmlSafe bool) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && (!htmlSafe || (b != '<' && b != '>' && b != '&')) {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
