package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/store"
)

// storeTimeout bounds one store operation, so a hung server degrades to the
// network instead of hanging the crawl.
const storeTimeout = 10 * time.Second

// collections holds the transport's MongoDB collections. Every per-request
// operation is an _id lookup or write: the embedded server pushes nothing
// else down (docs/architecture.md).
type collections struct {
	responses     *mongo.Collection
	redirects     *mongo.Collection
	revalidations *mongo.Collection
	variants      *mongo.Collection
	supportsTTL   bool
	// direct reads documents from the embedded server's files when it
	// runs in this process (nil otherwise): a hit then costs a fraction
	// of a find through the server (store.Direct).
	direct *store.Direct

	// writeMu lets one response or revalidation write at a time reach the
	// server when it goes through the wire. SQLite serializes writers
	// anyway, and a writer that finds the database locked sleeps in
	// SQLite's busy handler (1, 2, 5, 10... ms) instead of waking when the
	// lock is free: waiting here is cheaper. Direct writes queue on their
	// own connection and encode outside any lock.
	writeMu sync.Mutex
}

var replaceUpsert = options.Replace().SetUpsert(true)

// ensureIndexes creates the url indexes inspection commands use when the
// server can use them (pushdown), and drops them when it cannot: then they
// only slow every insert down. It is idempotent.
func (c *collections) ensureIndexes(ctx context.Context, pushdown bool) error {
	if err := store.EnsureCollections(ctx, c.responses.Database(), c.responses.Name(), c.redirects.Name(), c.revalidations.Name(), c.variants.Name()); err != nil {
		return err
	}
	for _, coll := range []*mongo.Collection{c.responses, c.redirects} {
		if err := store.EnsureIndex(ctx, coll, "url", bson.D{{Key: "url", Value: 1}}, pushdown); err != nil {
			return err
		}
	}
	return nil
}

// loaded is the outcome of looking a key up.
type loaded struct {
	doc *Document
	rev *Revalidation
	// variants is the key's Variants document (looked up only when asked).
	variants *Variants
	// corrupt is set when the document exists but does not decode.
	corrupt error
}

// findByID decodes the document with _id key from coll into v; found is
// false when there is none. A document that does not decode is reported
// as decodeErr, not as err. It reads through c.direct when there is one;
// if that fails otherwise than by finding nothing, through the server,
// which has the last word on what is stored.
func (c *collections) findByID(ctx context.Context, coll *mongo.Collection, key string, v any) (found bool, decodeErr, err error) {
	if c.direct != nil {
		raw, err := c.direct.FindRaw(ctx, coll.Database().Name(), coll.Name(), key)
		switch {
		case err == nil:
			return true, bson.Unmarshal(raw, v), nil
		case errors.Is(err, mongo.ErrNoDocuments):
			return false, nil, nil
		}
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Raw()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil, nil
	case err != nil:
		return false, nil, err
	}
	return true, bson.Unmarshal(raw, v), nil
}

// load finds the response, its revalidation and, when withVariants is
// set, the key's Variants by _id, concurrently: the small round trips
// overlap, so a hit costs about one find. err is a store error (the caller
// degrades to the network); a response that does not decode is reported
// in loaded.corrupt instead, and a revalidation or Variants that does not
// decode is ignored.
func (c *collections) load(ctx context.Context, key string, withVariants bool) (loaded, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	var (
		out          loaded
		rev          Revalidation
		vars         Variants
		revErr, vErr error
		wg           sync.WaitGroup
	)
	wg.Go(func() {
		found, bad, err := c.findByID(ctx, c.revalidations, key, &rev)
		if revErr = err; found && bad == nil {
			out.rev = &rev
		}
	})
	if withVariants {
		wg.Go(func() {
			found, bad, err := c.findByID(ctx, c.variants, key, &vars)
			if vErr = err; found && bad == nil && len(vars.Vary) > 0 {
				out.variants = &vars
			}
		})
	}
	var doc Document
	found, bad, err := c.findByID(ctx, c.responses, key, &doc)
	wg.Wait()
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
		out.doc = &doc
	}
	return out, nil
}

// insertOne, upsert and deleteOne write through c.direct when they can
// (store.InsertOne), else through the server, one writer at a time (see
// writeMu).
func (c *collections) insertOne(ctx context.Context, coll *mongo.Collection, v any) error {
	defer c.wireLock()()
	return store.InsertOne(ctx, c.direct, coll, v)
}

func (c *collections) upsert(ctx context.Context, coll *mongo.Collection, id string, v any) error {
	defer c.wireLock()()
	return store.Upsert(ctx, c.direct, coll, id, v)
}

func (c *collections) deleteOne(ctx context.Context, coll *mongo.Collection, id string) error {
	return store.DeleteOne(ctx, c.direct, coll, id)
}

// wireLock takes writeMu when writes go through the server and returns
// its release.
func (c *collections) wireLock() func() {
	if c.direct != nil {
		return func() {}
	}
	c.writeMu.Lock()
	return c.writeMu.Unlock
}

// save replaces the response stored under doc.ID and drops its
// revalidation (a 200 makes it obsolete). isNew says the lookup found no
// document: it is inserted, which on the embedded server costs a fraction
// of an upsert (an upsert first finds the document by scanning; an insert
// only checks the unique _id index), falling back to a replace if another
// process stored it meanwhile. hadRev false skips the delete when the
// caller knows there is no revalidation.
func (c *collections) save(ctx context.Context, doc *Document, isNew, hadRev bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if isNew {
		err := c.insertOne(ctx, c.responses, doc)
		switch {
		case err == nil:
			return nil
		case !mongo.IsDuplicateKeyError(err):
			return fmt.Errorf("store response %s: %w", doc.ID, err)
		}
	}
	if err := c.upsert(ctx, c.responses, doc.ID, doc); err != nil {
		return fmt.Errorf("store response %s: %w", doc.ID, err)
	}
	if hadRev {
		if err := c.deleteOne(ctx, c.revalidations, doc.ID); err != nil {
			return fmt.Errorf("delete revalidation %s: %w", doc.ID, err)
		}
	}
	return nil
}

// saveRevalidation records a 304 without touching the body document. With
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
	if !isNew || mongo.IsDuplicateKeyError(err) {
		err = c.upsert(ctx, c.revalidations, rev.ID, rev)
	}
	if err != nil {
		return fmt.Errorf("store revalidation %s: %w", rev.ID, err)
	}
	if c.supportsTTL {
		set := bson.D{{Key: "validated_at", Value: rev.ValidatedAt}}
		update := bson.D{{Key: "$set", Value: append(set, bson.E{Key: "expires", Value: rev.Expires})}}
		if rev.Expires == nil {
			update = bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: bson.D{{Key: "expires", Value: ""}}}}
		}
		if _, err := c.responses.UpdateOne(ctx, bson.D{{Key: "_id", Value: rev.ID}}, update); err != nil {
			return fmt.Errorf("refresh validated_at of %s: %w", rev.ID, err)
		}
	}
	return nil
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
	filter := bson.D{{Key: "_id", Value: key}}
	for _, coll := range []*mongo.Collection{c.responses, c.revalidations, c.redirects} {
		if _, err := coll.DeleteOne(ctx, filter); err != nil {
			return fmt.Errorf("invalidate %s in %s: %w", key, coll.Name(), err)
		}
	}
	return c.dropVariants(ctx, key, "")
}

// invalidateResponse deletes the response and revalidation under key.
func (c *collections) invalidateResponse(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	filter := bson.D{{Key: "_id", Value: key}}
	for _, coll := range []*mongo.Collection{c.responses, c.revalidations} {
		if _, err := coll.DeleteOne(ctx, filter); err != nil {
			return fmt.Errorf("delete %s from %s: %w", key, coll.Name(), err)
		}
	}
	return nil
}
