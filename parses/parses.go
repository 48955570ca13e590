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

// Collection is what the store needs from its collection: documents read
// and written by _id. Get returns an error that wraps store.ErrNotFound
// when there is no document with that _id.
type Collection interface {
	Get(ctx context.Context, id string) (bson.Raw, error)
	Upsert(ctx context.Context, id string, doc any) error
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
	var rec Record
	if err := bson.Unmarshal(l.Raw, &rec); err != nil || rec.BodyHash != bodyHash {
		return nil, nil
	}
	return &rec, nil
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
	out := make([][]pipeline.KV, len(rec.Items))
	for i, d := range rec.Items {
		fields := make([]pipeline.KV, len(d))
		for j, e := range d {
			v, ok := fieldValue(e.Value)
			if !ok {
				return nil, false
			}
			fields[j] = pipeline.KV{Key: e.Key, Value: v}
		}
		out[i] = fields
	}
	return out, true
}

// fieldValue converts a decoded value back to what Extract gives: a
// string, nil, or a []string (empty, not nil, for an empty array).
func fieldValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		return v, true
	case bson.A:
		out := make([]string, len(v))
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}
