// Package parses keeps the result of parsing a page — the links its
// follow selectors found and the fields of its extracted items — so that a
// later run that gets the same body (a 304, a fresh hit, or a 200 with the
// same body hash) reuses it instead of parsing the page again.
//
// A record is keyed by the page's cache key and a digest of the job's
// follow and extract rules, and it remembers the hash of the body it was
// made from: it is reused only for that body and those rules, so a changed
// page or a changed selector is parsed again. Links are stored as found,
// before any filtering: allowed domains, include/exclude, depth and robots
// are applied by the crawler at run time.
//
// The package does not parse pages, fetch them, or decide what a run
// does with the links and items; it only stores and finds records.
package parses

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"crawlcache/pipeline"
	"crawlcache/store"
)

// DefaultCollection is the collection of parse records, in the crawlcache
// database.
const DefaultCollection = "parses"

// MaxLinks is the largest number of links a stored record holds; the
// parse of a page with more is not stored (such a page is parsed on every
// run), so a record stays far below MongoDB's 16 MiB document limit.
const MaxLinks = 20000

// maxBytes bounds the stored size of a record's items.
const maxBytes = 4 << 20

// Collection is what the store needs from its collection: documents read,
// written and deleted by _id, and scans of an _id prefix (Sweep). Get
// returns an error that wraps store.ErrNotFound when there is no document
// with that _id.
type Collection interface {
	Get(ctx context.Context, id string) (bson.Raw, error)
	Upsert(ctx context.Context, id string, doc any) error
	Delete(ctx context.Context, id string) error
	ScanIDPrefix(ctx context.Context, prefix string, fn func(bson.Raw) error) error
}

var _ Collection = (*store.Collection)(nil)

// Record is one stored parse result, as it is stored (one document, read
// in Compass like any other).
type Record struct {
	ID string `bson:"_id"`
	// URL is the page's URL (after redirects, secrets redacted).
	URL string `bson:"url"`
	// CacheKey is the page's cache entry; Rules the digest of the follow
	// and extract rules; BodyHash the SHA-256 (hex) of the body parsed.
	CacheKey string `bson:"cache_key"`
	Rules    string `bson:"rules"`
	BodyHash string `bson:"body_hash"`
	// Links are the absolute links the follow selectors found, in page
	// order, before filtering.
	Links []string `bson:"links"`
	// Items hold each item's fields in extract order: a string, null, or
	// an array of strings.
	Items    []bson.D  `bson:"items"`
	ParsedAt time.Time `bson:"parsed_at"`

	// fields are Items as StoredFields gives them, when Found decoded
	// them straight from the stored document (Items is then nil); ok
	// says whether every value had a type extraction gives.
	fields   [][]pipeline.KV
	fieldsOK bool
	decoded  bool
}

// Store finds and saves parse records. It is safe for concurrent use.
type Store struct {
	coll Collection
}

// New returns a Store over coll.
func New(coll Collection) *Store {
	return &Store{coll: coll}
}

// ID is the _id of the record of the page with cacheKey under rules.
func ID(cacheKey, rules string) string {
	sum := sha256.Sum256([]byte(cacheKey + "\x00" + rules))
	return hex.EncodeToString(sum[:16])
}

// BodyHash is the hash a record keeps of the body it was made from.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Rules digests the follow selectors and the extractor's rules into one
// value: records made under other rules are not reused.
func Rules(follow []string, extractRules string) string {
	h := sha256.New()
	for _, s := range follow {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write([]byte{1})
	h.Write([]byte(extractRules))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Lookup returns the record id when it was made from a body with hash
// bodyHash, and nil otherwise (none, another body, or a record that does
// not decode). An error is the store's; the caller parses the page then.
func (s *Store) Lookup(ctx context.Context, id, bodyHash string) (*Record, error) {
	l := s.Ref(id)
	l.Raw, l.Err = s.coll.Get(ctx, id)
	return Found(l, bodyHash)
}

// Ref is the read of the record id, for a caller that reads it with
// other documents (store.GetAll) and then calls Found.
func (s *Store) Ref(id string) store.Lookup {
	return store.Lookup{Coll: s.coll, ID: id}
}

// Found is Lookup's answer from the read l of a record (Ref), done.
func Found(l store.Lookup, bodyHash string) (*Record, error) {
	switch {
	case l.Err == nil:
	case errors.Is(l.Err, store.ErrNotFound):
		return nil, nil
	default:
		return nil, fmt.Errorf("find parse result %s: %w", l.ID, l.Err)
	}
	if h, ok := l.Raw.Lookup("body_hash").StringValueOK(); !ok || h != bodyHash {
		return nil, nil // another body: not worth decoding
	}
	rec, ok := decodeRecord(l.Raw)
	if !ok || rec.BodyHash != bodyHash {
		return nil, nil
	}
	return rec, nil
}

// decodeRecord reads a stored record as bson.Unmarshal would (unknown
// fields ignored, null as the zero value, any other type mismatch a
// failure), walking the document instead of decoding it through
// reflection, with its items as StoredFields gives them: reading records
// is on the path of every reused page, and this is several times cheaper
// (BenchmarkFoundStoredFields).
func decodeRecord(raw []byte) (*Record, bool) {
	rec := &Record{decoded: true}
	var items bsoncore.Value
	str := func(v bsoncore.Value, dst *string) bool {
		if v.Type == bsoncore.TypeNull {
			return true
		}
		s, ok := v.StringValueOK()
		*dst = s
		return ok
	}
	ok := eachElement(raw, func(k []byte, v bsoncore.Value) bool {
		switch string(k) {
		case "_id":
			return str(v, &rec.ID)
		case "url":
			return str(v, &rec.URL)
		case "cache_key":
			return str(v, &rec.CacheKey)
		case "rules":
			return str(v, &rec.Rules)
		case "body_hash":
			return str(v, &rec.BodyHash)
		case "links":
			links, ok := stringsOf(v)
			rec.Links = links
			return ok
		case "items":
			items = v
		case "parsed_at":
			if v.Type == bsoncore.TypeNull {
				return true
			}
			ms, ok := v.DateTimeOK()
			rec.ParsedAt = time.UnixMilli(ms).UTC()
			return ok
		}
		return true
	})
	if !ok {
		return nil, false
	}
	rec.fields, rec.fieldsOK = fieldsOf(items)
	return rec, true
}

// eachElement calls fn with each element of the BSON document (or array)
// doc in order; false when doc is malformed or fn returns false.
func eachElement(doc []byte, fn func(key []byte, v bsoncore.Value) bool) bool {
	n, _, ok := bsoncore.ReadLength(doc)
	if !ok || n < 5 || int(n) > len(doc) || doc[n-1] != 0 {
		return false
	}
	rem := doc[4 : n-1]
	for len(rem) > 0 {
		e, r, ok := bsoncore.ReadElement(rem)
		if !ok || !fn(e.KeyBytes(), e.Value()) {
			return false
		}
		rem = r
	}
	return true
}

// stringsOf reads an array of strings (nil for null); false for any
// other value.
func stringsOf(v bsoncore.Value) ([]string, bool) {
	if v.Type == bsoncore.TypeNull {
		return nil, true
	}
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, false
	}
	out := []string{}
	ok = eachElement(arr, func(_ []byte, x bsoncore.Value) bool {
		s, ok := x.StringValueOK()
		out = append(out, s)
		return ok
	})
	return out, ok
}

// fieldsOf reads the items of a stored record as StoredFields gives
// them; false as there.
func fieldsOf(items bsoncore.Value) ([][]pipeline.KV, bool) {
	if items.Type == 0 || items.Type == bsoncore.TypeNull {
		return [][]pipeline.KV{}, true
	}
	arr, ok := items.ArrayOK()
	if !ok {
		return nil, false
	}
	out := [][]pipeline.KV{}
	ok = eachElement(arr, func(_ []byte, item bsoncore.Value) bool {
		doc, ok := item.DocumentOK()
		if !ok {
			return false
		}
		var fields []pipeline.KV
		ok = eachElement(doc, func(k []byte, v bsoncore.Value) bool {
			var val any
			switch v.Type {
			case bsoncore.TypeNull:
			case bsoncore.TypeString:
				val = v.StringValue()
			case bsoncore.TypeArray:
				ss, ok := stringsOf(v)
				if !ok {
					return false
				}
				val = ss
			default:
				return false
			}
			fields = append(fields, pipeline.KV{Key: string(k), Value: val})
			return true
		})
		if fields == nil {
			fields = []pipeline.KV{}
		}
		out = append(out, fields)
		return ok
	})
	if !ok {
		return nil, false
	}
	return out, true
}

// Save stores rec, replacing the record with the same _id. A record with
// more than MaxLinks links or more than 4 MiB of items is not stored
// (ok false): such a page is parsed again each time.
func (s *Store) Save(ctx context.Context, rec *Record) (ok bool, err error) {
	if len(rec.Links) > MaxLinks {
		return false, nil
	}
	n := 0
	for _, it := range rec.Items {
		for _, e := range it {
			switch v := e.Value.(type) {
			case string:
				n += len(v)
			case []string:
				for _, x := range v {
					n += len(x) + 8
				}
			}
			n += len(e.Key) + 8
		}
	}
	if n > maxBytes {
		return false, nil
	}
	if rec.Links == nil {
		rec.Links = []string{}
	}
	if rec.Items == nil {
		rec.Items = []bson.D{}
	}
	if err := s.coll.Upsert(ctx, rec.ID, rec); err != nil {
		return false, fmt.Errorf("save parse result %s: %w", rec.ID, err)
	}
	return true, nil
}

// ItemFields turns extracted items into what a record stores.
func ItemFields(items []pipeline.Item) []bson.D {
	out := make([]bson.D, len(items))
	for i, it := range items {
		d := make(bson.D, len(it.Fields))
		for j, kv := range it.Fields {
			d[j] = bson.E{Key: kv.Key, Value: kv.Value}
		}
		out[i] = d
	}
	return out
}

// StoredFields turns a record's items back into the fields of
// pipeline.Page.Stored: the same keys, values and order as extracted. It
// returns false when a value has a type extraction never gives (the
// record was edited by hand): the page is parsed again then.
func StoredFields(rec *Record) ([][]pipeline.KV, bool) {
	if rec.decoded {
		return rec.fields, rec.fieldsOK
	}
	// A record built in memory: its items as they would be stored.
	t, data, err := bson.MarshalValue(rec.Items)
	if err != nil {
		return nil, false
	}
	return fieldsOf(bsoncore.Value{Type: bsoncore.Type(t), Data: data})
}
