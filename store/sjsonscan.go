package store

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The lexical half of the sjson decoder (sjson.go): JSON white space,
// strings, numbers and skipped values, and the schema in "$s".

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
		i, _ = skipDigits(s, i)
	default:
		return "", d.errorf("want a number")
	}
	var ok bool
	if i < len(s) && s[i] == '.' {
		if i, ok = skipDigits(s, i+1); !ok {
			d.i = i
			return "", d.errorf("invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i, ok = skipDigits(s, i); !ok {
			d.i = i
			return "", d.errorf("invalid number")
		}
	}
	d.i = i
	return s[start:i], nil
}

// skipDigits returns the index after the digits of s from i, and whether
// there was at least one.
func skipDigits(s string, i int) (int, bool) {
	j := i
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		j++
	}
	return j, j > i
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
		return d.members(func(string) error { return d.skip(depth + 1) })
	case c == '[':
		return d.elements(func() error { return d.skip(depth + 1) })
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
	sch := d.newSchema()
	err := d.members(func(k string) error {
		switch {
		case d.literal("null"):
			return nil
		case k == "p":
			return d.props(sch, depth)
		case k == "$k":
			return d.keys(sch)
		}
		return d.errorf("unknown schema field %q", k)
	})
	if err != nil {
		return nil, err
	}
	return sch, nil
}

// members reads an object, calling f with each member's key once the
// reader is at its value; f must consume the value.
func (d *sjsonDecoder) members(f func(k string) error) error {
	return d.list('{', '}', func() error {
		k, err := d.key()
		if err != nil {
			return err
		}
		d.ws()
		return f(k)
	})
}

func (d *sjsonDecoder) props(sch *sjsonSchema, depth int) error {
	base := len(d.propStack)
	defer func() { d.propStack = d.propStack[:base] }()
	err := d.members(func(k string) error {
		el, err := d.elem(depth + 1)
		if err != nil {
			return err
		}
		d.propStack = append(d.propStack, sjsonProp{name: k, elem: el})
		return nil
	})
	if err != nil || len(d.propStack) == base {
		return err
	}
	start := len(d.propArena)
	d.propArena = append(d.propArena, d.propStack[base:]...)
	sch.props = d.propArena[start:len(d.propArena):len(d.propArena)]
	return nil
}

func (d *sjsonDecoder) keys(sch *sjsonSchema) error {
	start := len(d.keyArena)
	err := d.elements(func() error {
		d.ws()
		k, err := d.str()
		if err != nil {
			return err
		}
		if strings.IndexByte(k, 0) >= 0 {
			return d.errorf("key %q holds a NUL byte", k)
		}
		d.keyArena = append(d.keyArena, k)
		return nil
	})
	if err != nil || len(d.keyArena) == start {
		return err
	}
	// Appends above reallocate, never overwrite these.
	sch.keys = d.keyArena[start:len(d.keyArena):len(d.keyArena)]
	return nil
}

// elements reads an array, calling f for each element; f must consume it.
func (d *sjsonDecoder) elements(f func() error) error { return d.list('[', ']', f) }

// list reads an object or array between open and close, calling f for
// each member or element; f must consume it.
func (d *sjsonDecoder) list(open, close byte, f func() error) error {
	if err := d.next(open); err != nil {
		return err
	}
	d.ws()
	if d.peek() == close {
		d.i++
		return nil
	}
	for {
		if err := f(); err != nil {
			return err
		}
		more, err := d.more(close)
		if err != nil || !more {
			return err
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
	el := d.newElem()
	err := d.members(func(k string) error {
		var err error
		switch k {
		case "t":
			t, err := d.str()
			if err != nil {
				return err
			}
			el.kind = sjsonKinds[t]
			if el.kind == 0 {
				return d.errorf("unknown type %q", t)
			}
		case "$s":
			el.schema, err = d.schemaOrNull(depth)
		case "o":
			if !d.literal("null") {
				el.options, err = d.str()
				el.hasOptions = true
			}
		case "s":
			if !d.literal("null") {
				n, err := d.number()
				if err != nil {
					return err
				}
				st, err := strconv.ParseUint(n, 10, 8)
				if err != nil {
					return d.errorf("binary subtype %s: %v", n, err)
				}
				el.subtype, el.hasSubtype = byte(st), true
			}
		case "i":
			if !d.literal("null") {
				el.items, err = d.items(depth)
				el.hasItems = true
			}
		default:
			return d.errorf("unknown schema field %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return el, nil
}

func (d *sjsonDecoder) schemaOrNull(depth int) (*sjsonSchema, error) {
	if d.literal("null") {
		return nil, nil
	}
	return d.schema(depth + 1)
}

func (d *sjsonDecoder) items(depth int) ([]*sjsonElem, error) {
	base := len(d.itemStack)
	defer func() { d.itemStack = d.itemStack[:base] }()
	err := d.elements(func() error {
		el, err := d.elem(depth + 1)
		if err != nil {
			return err
		}
		d.itemStack = append(d.itemStack, el)
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case len(d.itemStack) == base:
		return []*sjsonElem{}, nil
	}
	start := len(d.itemArena)
	d.itemArena = append(d.itemArena, d.itemStack[base:]...)
	return d.itemArena[start:len(d.itemArena):len(d.itemArena)], nil
}
