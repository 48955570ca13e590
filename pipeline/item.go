// Package pipeline turns fetched pages into items and writes them to sinks.
//
// It has three parts: an Extractor (CSS selectors, goquery) that turns one
// Page into Items, Sinks that store items (MongoDB, JSONL, CSV), and a
// Pipeline that joins them with bounded channels and tells the crawler when a
// page's items are durably written, so the crawler can acknowledge the page
// in its frontier.
//
// Every item has a deterministic ID derived from (run, url, index), and every
// sink uses it to store each item at most once per run, so a page that is
// processed again after a crash and resume never duplicates an item.
//
// The package is the only one that imports goquery. It does not fetch pages,
// read job configs or own any collection other than the one a MongoSink is
// given.
package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Served values say how the cache answered the request for a page.
const (
	ServedHit         = "hit"
	ServedMiss        = "miss"
	ServedRevalidated = "revalidated"
	ServedStale       = "stale"
)

// Page is one fetched response handed to the pipeline by the crawler.
type Page struct {
	RunID string
	Job   string
	// URL is the final URL of the response (after redirects); relative
	// href/src values are resolved against it.
	URL    string
	Status int // 0 is treated as 200
	Header http.Header
	Body   []byte
	// FetchedAt is when the response was fetched from the origin or read
	// from the cache.
	FetchedAt time.Time
	// Served is one of the Served* constants.
	Served string
	Depth  int
	// Stored, if not nil, holds the fields of the page's items from an
	// earlier parse of the same body with the same rules (one entry per
	// item, fields in ExtractSpec order): Extract then builds the items
	// from them without parsing the body, which may then be absent, as
	// Header may (a page finished from the cache's page summary).
	Stored [][]KV
	// Meta is carried unchanged to OnParsed and OnPageDone; the pipeline
	// never reads it.
	Meta any
}

// KV is one extracted field of an item. Value is a string, nil (the
// selector matched nothing) or a []string (a Field with All set; empty, not
// nil, when nothing matched).
type KV struct {
	Key   string
	Value any
}

// Item is one extracted record.
type Item struct {
	// ID is ItemID(RunID, URL, Index): the same page in the same run always
	// gives the same IDs, which is what makes sinks idempotent.
	ID        string
	RunID     string
	Job       string
	URL       string
	Index     int // position of the item on its page, from 0
	FetchedAt time.Time
	Served    string
	// Fields are in the order of ExtractSpec.Fields.
	Fields []KV
}

// Get returns the value of the field named key, and whether the item has it.
func (it Item) Get(key string) (any, bool) {
	for _, kv := range it.Fields {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// ItemID returns the deterministic ID of the index-th item of url in run:
// 32 hex digits of SHA-256 over the three values. It is a string so that
// the embedded server can look it up by _id.
func ItemID(runID, url string, index int) string {
	h := sha256.New()
	h.Write([]byte(runID))
	h.Write([]byte{0})
	h.Write([]byte(url))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(index)))
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// reservedKeys are the item metadata keys every sink writes before the
// extracted fields; a field may not use one of them as its name.
var reservedKeys = []string{"_id", "run_id", "job", "url", "index", "fetched_at", "served"}

// ReservedFieldNames returns the keys every item carries before its
// extracted fields; NewExtractor rejects fields with these names.
func ReservedFieldNames() []string {
	return slices.Clone(reservedKeys)
}

// timeFormat is how the file sinks write FetchedAt.
const timeFormat = time.RFC3339Nano
