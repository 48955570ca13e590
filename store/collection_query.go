package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// FindOptions shape a FindOne or a Scan. The zero value finds every
// matching document in the server's order, whole.
type FindOptions struct {
	// Sort orders the documents (a bson.D of field: 1 or -1). If nil, the
	// server's order.
	Sort any
	// Projection chooses the fields returned. If nil, every field.
	Projection any
	// Limit stops after this many documents. If zero, no limit.
	Limit int64
	// Skip passes over this many documents first.
	Skip int64
	// BatchSize is how many documents one round trip fetches. If zero, the
	// driver's default.
	BatchSize int32
}

func (o FindOptions) find() *options.FindOptionsBuilder {
	f := options.Find()
	if o.Sort != nil {
		f.SetSort(o.Sort)
	}
	if o.Projection != nil {
		f.SetProjection(o.Projection)
	}
	if o.Limit > 0 {
		f.SetLimit(o.Limit)
	}
	if o.Skip > 0 {
		f.SetSkip(o.Skip)
	}
	if o.BatchSize > 0 {
		f.SetBatchSize(o.BatchSize)
	}
	return f
}

// FindOne returns the first document filter matches (in opts.Sort order),
// or an error wrapping ErrNotFound. On the embedded store a filter other
// than _id equality reads the whole collection: use Get per page.
func (c *Collection) FindOne(ctx context.Context, filter any, opts FindOptions) (bson.Raw, error) {
	f := options.FindOne()
	if opts.Sort != nil {
		f.SetSort(opts.Sort)
	}
	if opts.Projection != nil {
		f.SetProjection(opts.Projection)
	}
	if opts.Skip > 0 {
		f.SetSkip(opts.Skip)
	}
	raw, err := c.wire.FindOne(ctx, filter, f).Raw()
	if err != nil {
		return nil, c.wrap("find in", err)
	}
	return raw, nil
}

// Scan calls fn with every document filter matches, and stops at fn's
// first error, which it returns. A document fn gets is valid only until fn
// returns (decode it, or copy it). On the embedded store a filter other than
// _id equality reads the whole collection: for resume, commands and
// reports. A collection that does not exist has no documents.
func (c *Collection) Scan(ctx context.Context, filter any, opts FindOptions, fn func(bson.Raw) error) error {
	cur, err := c.wire.Find(ctx, filter, opts.find())
	if err != nil {
		return c.wrap("scan", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	return c.wrap("scan", cur.Err())
}

// All decodes every document filter matches into out, a pointer to a
// slice (as mongo's Cursor.All).
func (c *Collection) All(ctx context.Context, filter any, opts FindOptions, out any) error {
	cur, err := c.wire.Find(ctx, filter, opts.find())
	if err != nil {
		return c.wrap("scan", err)
	}
	return c.wrap("scan", cur.All(ctx, out))
}

// ScanIDPrefix calls fn with every document whose string _id starts with
// prefix, in _id order, and stops at fn's first error, which it returns.
// On the embedded store it reads only the matching rows, through the _id
// index, so a scan of one run's documents costs what the run holds. prefix
// may hold only ASCII letters, digits and . _ - : / # (any other is an
// error on every implementation, so that code tested on one works on the
// other). A collection that does not exist has no documents. fn must not
// write to the store (on the embedded store the rows are read in one read
// transaction).
func (c *Collection) ScanIDPrefix(ctx context.Context, prefix string, fn func(bson.Raw) error) error {
	if err := checkIDPrefix(prefix); err != nil {
		return fmt.Errorf("scan %s by _id prefix: %w", c, err)
	}
	if c.direct != nil {
		err := c.direct.ScanIDPrefix(ctx, c.db, c.name, prefix, fn)
		if err != nil && errors.Is(err, errDirectClosed) {
			return c.wrap("scan", err)
		}
		return err
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: prefix}}}}
	if prefix != "" {
		hi := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
		if prefix[len(prefix)-1] == 0xff {
			hi = ""
		}
		if hi != "" {
			filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: prefix}, {Key: "$lt", Value: hi}}}}
		}
	}
	return c.Scan(ctx, filter, FindOptions{Sort: bson.D{{Key: "_id", Value: 1}}}, fn)
}

// Count returns how many documents filter matches (bson.D{} for all). On
// the embedded store a filter other than _id equality reads the whole
// collection. A collection that does not exist has none.
func (c *Collection) Count(ctx context.Context, filter any) (int64, error) {
	n, err := c.wire.CountDocuments(ctx, filter)
	return n, c.wrap("count", err)
}

// UpdateResult says what an update did.
type UpdateResult struct {
	Matched  int64 // documents the filter matched
	Modified int64 // documents changed
	Upserted bool  // a document was inserted (upsert)
}

// UpdateOne applies update (a document of $set, $inc, $unset, …
// operators) to the first document filter matches; with upsert, inserts
// one built from filter and update when none does. On the embedded store
// an update rewrites the whole document: keep state that changes often in
// small documents of its own.
func (c *Collection) UpdateOne(ctx context.Context, filter, update any, upsert bool) (UpdateResult, error) {
	defer c.exclusive()()
	res, err := c.wire.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(upsert))
	if err != nil {
		return UpdateResult{}, c.wrap("update in", err)
	}
	return UpdateResult{Matched: res.MatchedCount, Modified: res.ModifiedCount, Upserted: res.UpsertedCount > 0}, nil
}

// UpdateMany applies update to every document filter matches.
func (c *Collection) UpdateMany(ctx context.Context, filter, update any) (UpdateResult, error) {
	defer c.exclusive()()
	res, err := c.wire.UpdateMany(ctx, filter, update)
	if err != nil {
		return UpdateResult{}, c.wrap("update in", err)
	}
	return UpdateResult{Matched: res.MatchedCount, Modified: res.ModifiedCount}, nil
}

// FindAndUpdate shapes a FindOneAndUpdate.
type FindAndUpdate struct {
	// Sort picks which matching document is updated first.
	Sort any
	// Upsert inserts a document built from the filter and the update when
	// none matches.
	Upsert bool
	// ReturnNew returns the document as updated, instead of as it was.
	ReturnNew bool
	// Projection chooses the fields returned.
	Projection any
}

// FindOneAndUpdate applies update to the first document filter matches
// (in opts.Sort order) and returns it, as it was or (ReturnNew) as it is;
// an error wrapping ErrNotFound when none matched and nothing was
// upserted. On MongoDB the find and the update are one atomic step, which
// is what leases and claims rely on. FerretDB's are not: on the embedded
// store, the updates of a collection by this process and by the clients
// of its server are serialized (updatelock.go), and an update rewrites
// the whole document.
func (c *Collection) FindOneAndUpdate(ctx context.Context, filter, update any, opts FindAndUpdate) (bson.Raw, error) {
	defer c.exclusive()()
	o := options.FindOneAndUpdate().SetUpsert(opts.Upsert)
	if opts.Sort != nil {
		o.SetSort(opts.Sort)
	}
	if opts.Projection != nil {
		o.SetProjection(opts.Projection)
	}
	if opts.ReturnNew {
		o.SetReturnDocument(options.After)
	}
	raw, err := c.wire.FindOneAndUpdate(ctx, filter, update, o).Raw()
	if err != nil {
		return nil, c.wrap("find and update in", err)
	}
	return raw, nil
}

// Inc adds inc's numeric fields (a struct or bson.D of field: delta) to
// the document with _id id, sets set's fields (nil: none), creating the
// document when there is none, and returns the document as it is after.
// Concurrent Incs of one document never lose an increment on MongoDB
// ($inc is atomic there) nor on the embedded store, whose server applies
// an update by reading and then rewriting the document: the updates of a
// collection are serialized there, in this process and, for the clients
// of another process through `db serve`, by that server's query front
// (updatelock.go). On a FerretDB server that crawlcache does not run,
// only the updates of one process are serialized.
func (c *Collection) Inc(ctx context.Context, id string, inc, set any) (bson.Raw, error) {
	update := bson.D{{Key: "$inc", Value: inc}}
	if set != nil {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	opts := FindAndUpdate{Upsert: true, ReturnNew: true}
	raw, err := c.FindOneAndUpdate(ctx, idFilter(id), update, opts)
	if errors.Is(err, ErrDuplicateID) {
		// Two upserts of a new document: one inserted it, the other
		// now finds it.
		raw, err = c.FindOneAndUpdate(ctx, idFilter(id), update, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("increment %q: %w", id, err)
	}
	return raw, nil
}
