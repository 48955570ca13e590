package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// storeTimeout bounds one store operation, so a hung server degrades to the
// network instead of hanging the crawl.
const storeTimeout = 10 * time.Second

// The cache's storage contract: what it needs of each of its collections,
// in the small interfaces below. *store.Collection implements them (the
// checks after them); which store serves them, and whether lookups and
// writes by _id go straight to the embedded store's files, is decided
// once, when the store is opened.

// entries is what a Transport needs, per request, of the responses,
// revalidations, redirects and variants collections: everything by _id,
// because the embedded server pushes nothing else down
// (docs/architecture.md).
type entries interface {
	// Get returns the document with _id id, or an error wrapping
	// store.ErrNotFound (also when the collection does not exist).
	Get(ctx context.Context, id string) (bson.Raw, error)
	// Insert stores doc; an error wrapping store.ErrDuplicateID when its
	// _id is taken.
	Insert(ctx context.Context, doc any) error
	// Upsert replaces the document with _id id by doc, or inserts it.
	Upsert(ctx context.Context, id string, doc any) error
	// Delete deletes the document with _id id; none is not an error.
	Delete(ctx context.Context, id string) error
	// DeleteMany deletes the documents filter matches (here: by _id).
	DeleteMany(ctx context.Context, filter any) (int64, error)
	// UpdateOne applies an update document ($set, $addToSet, …) to the
	// document filter matches (with upsert, inserts one).
	UpdateOne(ctx context.Context, filter, update any, upsert bool) (store.UpdateResult, error)
	// Direct reports that the operations by _id write the embedded
	// store's files in this process rather than going through a server.
	Direct() bool
	// TTLIndexes reports that the server expires documents by a TTL
	// index (MongoDB).
	TTLIndexes() bool
	// Name is the collection's name, for messages.
	Name() string
}

// scans is what Admin needs to inspect and sweep a collection: scans,
// counts and deletes by filter (each reads the whole collection on the
// embedded server: never per request).
type scans interface {
	Scan(ctx context.Context, filter any, opts store.FindOptions, fn func(bson.Raw) error) error
	All(ctx context.Context, filter any, opts store.FindOptions, out any) error
	Count(ctx context.Context, filter any) (int64, error)
}

// indexes is what the cache needs to keep its indexes: the url index
// inspection uses (only where the server uses it) and the TTL index
// (MongoDB; store.ErrNoTTLIndexes elsewhere, where Admin sweeps).
type indexes interface {
	EnsureIndex(ctx context.Context, name string, keys bson.D) error
	DropIndex(ctx context.Context, name string) error
	EnsureTTL(ctx context.Context, name, field string, after time.Duration) error
	TTL(ctx context.Context, name string) (time.Duration, bool, error)
}

// collection is one of the cache's collections, as Admin uses it.
type collection interface {
	entries
	scans
	indexes
}

var (
	_ entries    = (*store.Collection)(nil)
	_ collection = (*store.Collection)(nil)
)

// collections holds the transport's collections.
type collections struct {
	responses     entries
	redirects     entries
	revalidations entries
	variants      entries
	pages         entries // summaries for people (pages.go)

	// afterEntry, if set (tests), runs when save has written a replaced
	// response and not yet its Page; an error stops save there, as a
	// process stopped at that point would.
	afterEntry func(key string) error

	// writeMu lets one response or revalidation write at a time reach the
	// server when it goes through the wire. SQLite serializes writers
	// anyway, and a writer that finds the database locked sleeps in
	// SQLite's busy handler (1, 2, 5, 10... ms) instead of waking when the
	// lock is free: waiting here is cheaper. Direct writes queue on their
	// own connection and encode outside any lock.
	writeMu sync.Mutex
}

// ensureIndexes creates the url indexes inspection commands use where the
// server can use them, and drops them where it cannot (store.Collection's
// EnsureIndex decides): there they only slow every insert down. It is
// idempotent.
func ensureIndexes(ctx context.Context, st *store.Store, db string, names collectionNames) error {
	if err := st.EnsureCollections(ctx, db, names.responses, names.redirects, names.revalidations, names.variants, names.pages); err != nil {
		return err
	}
	if err := ensurePageIndexes(ctx, st.Collection(db, names.pages)); err != nil {
		return err
	}
	for _, name := range []string{names.responses, names.redirects} {
		if err := st.Collection(db, name).EnsureIndex(ctx, "url", bson.D{{Key: "url", Value: 1}}); err != nil {
			return err
		}
	}
	return nil
}

// collectionNames are the names of a Transport's collections.
type collectionNames struct{ responses, redirects, revalidations, variants, pages string }

// loaded is the outcome of looking a key up.
type loaded struct {
	entry *Entry
	rev   *Revalidation
	// variants is the key's Variants document (looked up only when asked).
	variants *Variants
	// corrupt is set when the entry exists but does not decode.
	corrupt error
}

// decodeFound decodes raw, the outcome getErr of a Get, into v; found is
// false when there is no such document. A document that does not decode
// is reported as decodeErr, not as err.
func decodeFound(raw bson.Raw, getErr error, v any) (found bool, decodeErr, err error) {
	switch {
	case errors.Is(getErr, store.ErrNotFound):
		return false, nil, nil
	case getErr != nil:
		return false, nil, getErr
	}
	return true, bson.Unmarshal(raw, v), nil
}

// findByID decodes the document with _id key from coll into v, as
// decodeFound.
func (c *collections) findByID(ctx context.Context, coll entries, key string, v any) (found bool, decodeErr, err error) {
	raw, err := coll.Get(ctx, key)
	return decodeFound(raw, err, v)
}

// getAll reads the documents with _id key of colls at once
// (store.GetAll).
func getAll(ctx context.Context, key string, colls ...entries) []store.Lookup {
	ls := make([]store.Lookup, len(colls))
	for i, coll := range colls {
		ls[i] = store.Lookup{Coll: coll, ID: key}
	}
	store.GetAll(ctx, ls)
	return ls
}

// load finds the response, its revalidation and, when withVariants is
// set, the key's Variants by _id, at once (getAll): a hit costs about one
// find. err is a store error (the caller degrades to the network); a
// response that does not decode is reported in loaded.corrupt instead, and
// a revalidation or Variants that does not decode is ignored.
func (c *collections) load(ctx context.Context, key string, withVariants bool) (loaded, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	colls := []entries{c.responses, c.revalidations}
	if withVariants {
		colls = append(colls, c.variants)
	}
	ls := getAll(ctx, key, colls...)
	var (
		out   loaded
		entry Entry
		rev   Revalidation
		vars  Variants
	)
	found, bad, err := decodeFound(ls[0].Raw, ls[0].Err, &entry)
	revFound, revBad, revErr := decodeFound(ls[1].Raw, ls[1].Err, &rev)
	if revFound && revBad == nil {
		out.rev = &rev
	}
	var vErr error
	if withVariants {
		var vFound bool
		var vBad error
		vFound, vBad, vErr = decodeFound(ls[2].Raw, ls[2].Err, &vars)
		if vFound && vBad == nil && len(vars.Vary) > 0 {
			out.variants = &vars
		}
	}
	switch {
	case err != nil:
		return loaded{}, fmt.Errorf("find cached response %s: %w", key, err)
	case revErr != nil:
		return loaded{}, fmt.Errorf("find revalidation %s: %w", key, revErr)
	case vErr != nil:
		return loaded{}, fmt.Errorf("find variants %s: %w", key, vErr)
	case !found:
		out.rev = nil
	case bad != nil:
		out.rev = nil
		out.corrupt = fmt.Errorf("decode cached response %s: %w: %v", key, ErrCorrupt, bad)
	default:
		out.entry = &entry
	}
	return out, nil
}

// insertOne and upsert write one at a time when writes go through the
// server (see writeMu).
func (c *collections) insertOne(ctx context.Context, coll entries, v any) error {
	defer c.wireLock(coll)()
	return coll.Insert(ctx, v)
}

func (c *collections) upsert(ctx context.Context, coll entries, id string, v any) error {
	defer c.wireLock(coll)()
	return coll.Upsert(ctx, id, v)
}

// wireLock takes writeMu when coll's writes go through the server and
// returns its release.
func (c *collections) wireLock(coll entries) func() {
	if coll.Direct() {
		return func() {}
	}
	c.writeMu.Lock()
	return c.writeMu.Unlock
}

// save replaces the response stored under entry.ID and its Page, and drops
// its revalidation (a 200 makes it obsolete). isNew says the lookup found no
// entry: it is inserted, which on the embedded server costs a fraction
// of an upsert (an upsert first finds the document by scanning; an insert
// only checks the unique _id index), falling back to a replace if another
// process stored it meanwhile. hadRev false skips the delete when the
// caller knows there is no revalidation.
func (c *collections) save(ctx context.Context, entry *Entry, isNew, hadRev bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if isNew {
		err := c.insertOne(ctx, c.responses, entry)
		switch {
		case err == nil:
			return c.savePage(ctx, pageOf(entry), true)
		case !errors.Is(err, store.ErrDuplicateID):
			return fmt.Errorf("store response %s: %w", entry.ID, err)
		}
	}
	// The Page of the entry replaced goes first: it names that body's
	// hash (head.go), and must not outlive it if the process stops
	// between two writes.
	if err := c.pages.Delete(ctx, entry.ID); err != nil {
		return fmt.Errorf("delete page summary %s: %w", entry.ID, err)
	}
	if err := c.upsert(ctx, c.responses, entry.ID, entry); err != nil {
		return fmt.Errorf("store response %s: %w", entry.ID, err)
	}
	if hadRev {
		if err := c.revalidations.Delete(ctx, entry.ID); err != nil {
			return fmt.Errorf("delete revalidation %s: %w", entry.ID, err)
		}
	}
	if c.afterEntry != nil {
		if err := c.afterEntry(entry.ID); err != nil {
			return err
		}
	}
	return c.savePage(ctx, pageOf(entry), false)
}

// saveRevalidation records a 304 without touching the entry. With
// a server that has TTL indexes it also sets validated_at and expires on
// the response, so the TTL index on responses.validated_at sees the 304
// (MongoDB updates in place; the embedded server, which would rewrite the
// whole body, has no TTL indexes and relies on the sweeper reading
// revalidations).
//
// isNew says the lookup found no revalidation: it is inserted (cheaper
// than an upsert on the embedded server), replaced if one appeared since.
func (c *collections) saveRevalidation(ctx context.Context, rev *Revalidation, isNew bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	var err error
	if isNew {
		err = c.insertOne(ctx, c.revalidations, rev)
	}
	if !isNew || errors.Is(err, store.ErrDuplicateID) {
		err = c.upsert(ctx, c.revalidations, rev.ID, rev)
	}
	if err != nil {
		return fmt.Errorf("store revalidation %s: %w", rev.ID, err)
	}
	if c.responses.TTLIndexes() {
		set := bson.D{{Key: "validated_at", Value: rev.ValidatedAt}}
		update := bson.D{{Key: "$set", Value: append(set, bson.E{Key: "expires", Value: rev.Expires})}}
		if rev.Expires == nil {
			update = bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: bson.D{{Key: "expires", Value: ""}}}}
		}
		if _, err := c.responses.UpdateOne(ctx, bson.D{{Key: "_id", Value: rev.ID}}, update, false); err != nil {
			return fmt.Errorf("refresh validated_at of %s: %w", rev.ID, err)
		}
	}
	return nil
}

// save304 records a 304: its revalidation (inserted when isNew), then
// its Page. On the embedded store, where a 304 leaves the response as it
// is, the two are one write, committed together; elsewhere one after the
// other, the Page only once the revalidation is stored (a Page must not
// say more than the documents it summarizes).
func (c *collections) save304(ctx context.Context, rev *Revalidation, isNew bool, p *Page) error {
	revs, ok1 := c.revalidations.(*store.Collection)
	pages, ok2 := c.pages.(*store.Collection)
	if ok1 && ok2 && revs.Direct() && pages.Direct() && !c.responses.TTLIndexes() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		err := store.UpsertAll(ctx, store.Put{Coll: revs, ID: rev.ID, Doc: rev, New: isNew}, store.Put{Coll: pages, ID: p.ID, Doc: p})
		if err != nil {
			return fmt.Errorf("store revalidation and page summary %s: %w", rev.ID, err)
		}
		return nil
	}
	if err := c.saveRevalidation(ctx, rev, isNew); err != nil {
		return err
	}
	return c.recordPage(ctx, p)
}

// findRedirect returns the redirect recorded for a hop key, nil if none.
func (c *collections) findRedirect(ctx context.Context, key string) (*Redirect, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var r Redirect
	found, bad, err := c.findByID(ctx, c.redirects, key, &r)
	switch {
	case err != nil:
		return nil, fmt.Errorf("find redirect %s: %w", key, err)
	case !found || bad != nil:
		return nil, nil // none, or corrupt: refetch and overwrite
	case r.Status < 300 || r.Status > 399 || r.Location == "":
		return nil, nil // not replayable; refetch and overwrite
	}
	return &r, nil
}

func (c *collections) saveRedirect(ctx context.Context, r *Redirect) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := c.upsert(ctx, c.redirects, r.ID, r); err != nil {
		return fmt.Errorf("store redirect %s: %w", r.ID, err)
	}
	return nil
}

// invalidate deletes everything stored under key (RFC 9111 §4.4),
// including every variant its Variants document lists.
func (c *collections) invalidate(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for _, coll := range []entries{c.pages, c.responses, c.revalidations, c.redirects} {
		if err := coll.Delete(ctx, key); err != nil {
			return fmt.Errorf("invalidate %s in %s: %w", key, coll.Name(), err)
		}
	}
	return c.dropVariants(ctx, key, "")
}

// invalidateResponse deletes the response, revalidation and Page under key.
func (c *collections) invalidateResponse(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for _, coll := range []entries{c.pages, c.responses, c.revalidations} {
		if err := coll.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s from %s: %w", key, coll.Name(), err)
		}
	}
	return nil
}
