package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// EnsureIndex creates the secondary index name on keys in coll when the
// server pushes filters down (Capabilities.FilterPushdown), and drops it
// when it does not: the embedded server scans for every filter but _id, so
// there an index is never used and only costs a parse of the stored JSON
// on every insert (for a 44 KB page, about as much as the insert itself
// spends elsewhere in SQLite). Dropping also cleans data directories an
// earlier version indexed. It is idempotent.
//
// Deprecated: use (*Collection).EnsureIndex.
func EnsureIndex(ctx context.Context, coll *mongo.Collection, name string, keys bson.D, pushdown bool) error {
	if !pushdown {
		return DropIndex(ctx, coll, name)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)}); err != nil {
		return fmt.Errorf("create index %s on %s: %w", name, coll.Name(), err)
	}
	return nil
}

// DropIndex drops index name of coll; an index or a collection that does
// not exist is not an error.
//
// Deprecated: use (*Collection).DropIndex.
func DropIndex(ctx context.Context, coll *mongo.Collection, name string) error {
	err := coll.Indexes().DropOne(ctx, name)
	if err != nil && !IsNamespaceNotFound(err) && !IsIndexNotFound(err) {
		return fmt.Errorf("drop index %s on %s: %w", name, coll.Name(), err)
	}
	return nil
}

// EnsureCollections creates the named collections of db that do not exist
// yet (concurrent callers may race: an existing one is not an error) and,
// on an in-process embedded server, indexes their _id at once (IndexIDs):
// lookups in them are fast from the first request. Only creating a
// collection can fail it.
//
// Deprecated: use (*Store).EnsureCollections.
func EnsureCollections(ctx context.Context, db *mongo.Database, names ...string) error {
	for _, name := range names {
		err := db.CreateCollection(ctx, name)
		var se mongo.ServerError
		if err != nil && !(errors.As(err, &se) && se.HasErrorCode(48)) { // NamespaceExists
			return fmt.Errorf("create collection %s.%s: %w", db.Name(), name, err)
		}
	}
	// Not an error: without the index lookups are slower, not wrong, and
	// the server's indexer tries again every 250 ms (and logs a failure).
	_ = IndexIDs(ctx, db.Client())
	return nil
}
