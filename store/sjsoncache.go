package store

import (
	"strings"
	"sync"
)

// Documents of one collection nearly always carry byte-identical "$s"
// schemas, and reading one costs as much as decoding a small document's
// values. topSchemas keeps the schemas already read, keyed by their exact
// text, so that a document whose schema text was seen before skips it.
//
// A hit gives what reading the text would: the cached schema was read
// from exactly these bytes, to their end, and the reader's result depends
// on nothing but the bytes it reads. So however the end of the text
// looked up is guessed, a hit is right. Documents whose schema is not cached
// (new, longer than schemaCacheMaxText, or invalid) are read as before.

const (
	// schemaCacheEntries bounds the number of cached schemas; a full
	// cache drops an arbitrary entry for each one added.
	schemaCacheEntries = 256
	// schemaCacheMaxText bounds the text of a cached schema, so that the
	// cache holds at most about 2 MB of text plus the schemas read from it.
	schemaCacheMaxText = 8 << 10
)

// schemaCache maps a top-level schema's text to the schema read from it.
// It is safe for concurrent use; its schemas are never modified.
type schemaCache struct {
	max int // entries
	mu  sync.RWMutex
	m   map[string]*sjsonSchema
}

func newSchemaCache(max int) *schemaCache {
	return &schemaCache{max: max, m: make(map[string]*sjsonSchema, max)}
}

// afterSchema is the text that ends a top-level schema and starts the
// _id field that FerretDB writes first (the schema's last character
// included).
const afterSchema = `},"_id":`

// topSchemas is the process's cache of top-level schemas, shared by
// every reader of every collection.
var topSchemas = newSchemaCache(schemaCacheEntries)

func (c *schemaCache) get(text string) *sjsonSchema {
	c.mu.RLock()
	sch := c.m[text]
	c.mu.RUnlock()
	return sch
}

// add caches sch under text, which it must own (not share memory with a
// row of SQLite).
func (c *schemaCache) add(text string, sch *sjsonSchema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[text]; ok {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[text] = sch
}

// topSchema reads the document's schema, the value of "$s" at d.i, from
// d.cache when its text is there. A schema read anew is read from a
// copy of its text and cached, since its names share memory with the
// text read, which may be SQLite's row.
func (d *sjsonDecoder) topSchema(depth int) (*sjsonSchema, error) {
	if d.cache == nil {
		return d.schema(depth)
	}
	start := d.i
	// FerretDB writes _id right after the schema: the text up to there
	// is looked up without scanning the schema for its end.
	guess := -1
	if n := strings.Index(d.s[start:min(len(d.s), start+schemaCacheMaxText+len(afterSchema)-1)], afterSchema); n >= 0 {
		guess = start + n + 1
		if sch := d.cache.get(d.s[start:guess]); sch != nil {
			d.i = guess
			return sch, nil
		}
	}
	end := schemaEnd(d.s, start)
	if end < 0 {
		return d.schema(depth)
	}
	if end != guess {
		if sch := d.cache.get(d.s[start:end]); sch != nil {
			d.i = end
			return sch, nil
		}
	}
	text := strings.Clone(d.s[start:end])
	own := sjsonDecoder{s: text}
	sch, err := own.schema(depth)
	if err != nil || own.i != len(text) {
		// Invalid, or not where the scan ended: read it in place, which
		// reports the error at its offset in the document.
		return d.schema(depth)
	}
	d.cache.add(text, sch)
	d.i = end
	return sch, nil
}

// schemaEnd returns the end of the JSON object at s[i:] (after white
// space), found by matching braces outside strings, or -1 when there is
// none within schemaCacheMaxText bytes. It validates nothing: it only
// tells which bytes to look up.
func schemaEnd(s string, i int) int {
	limit := min(len(s), i+schemaCacheMaxText)
	j := i
	for j < limit && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
		j++
	}
	if j >= limit || s[j] != '{' {
		return -1
	}
	depth := 0
	for ; j < limit; j++ {
		switch s[j] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return j + 1
			}
		case '"':
			for j++; j < limit && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
		}
	}
	return -1
}
