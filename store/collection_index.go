package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// EnsureIndex creates the secondary index name on keys when the server
// pushes filters down (MongoDB), and drops it when it does not: the
// embedded server scans for every filter but _id, so there an index is
// never used and only costs a parse of the stored JSON on every insert
// (for a 44 KB page, about as much as the insert itself spends elsewhere in
// SQLite). Dropping also cleans data directories an earlier version
// indexed. It is idempotent.
func (c *Collection) EnsureIndex(ctx context.Context, name string, keys bson.D) error {
	if !c.caps.FilterPushdown {
		return c.DropIndex(ctx, name)
	}
	if _, err := c.wire.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)}); err != nil {
		return c.wrap("create index "+name+" on", err)
	}
	return nil
}

// CreateIndex creates the secondary index name on keys on any server,
// even one that never uses it (the embedded store, where it costs a parse
// of the stored JSON per insert): for tests, and to reproduce data that
// earlier releases indexed. Packages keep their indexes with EnsureIndex.
func (c *Collection) CreateIndex(ctx context.Context, name string, keys bson.D) error {
	if _, err := c.wire.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)}); err != nil {
		return c.wrap("create index "+name+" on", err)
	}
	return nil
}

// DropIndex drops index name; an index or a collection that does not
// exist is not an error.
func (c *Collection) DropIndex(ctx context.Context, name string) error {
	err := c.wire.Indexes().DropOne(ctx, name)
	if err != nil && !IsNamespaceNotFound(err) && !IsIndexNotFound(err) {
		return c.wrap("drop index "+name+" on", err)
	}
	return nil
}

// EnsureTTL makes the server delete a document once the date in field is
// older than after, with a TTL index called name (recreated when its
// expiry differs). On a server without TTL indexes (the embedded store) it
// returns an error wrapping ErrNoTTLIndexes and changes nothing: the caller
// deletes expired documents itself, with DeleteMany.
func (c *Collection) EnsureTTL(ctx context.Context, name, field string, after time.Duration) error {
	if !c.caps.TTLIndexes {
		return fmt.Errorf("create TTL index %s on %s: %w", name, c, ErrNoTTLIndexes)
	}
	secs := int32(after / time.Second)
	if cur, ok, err := c.TTL(ctx, name); err != nil {
		return err
	} else if ok && cur == time.Duration(secs)*time.Second {
		return nil
	} else if ok {
		if err := c.DropIndex(ctx, name); err != nil {
			return err
		}
	}
	_, err := c.wire.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: field, Value: 1}},
		Options: options.Index().SetName(name).SetExpireAfterSeconds(secs),
	})
	if IsNotImplemented(err) {
		return fmt.Errorf("create TTL index %s on %s: %w", name, c, ErrNoTTLIndexes)
	}
	return c.wrap("create TTL index "+name+" on", err)
}

// TTL returns the expiry of the TTL index name, and false when there is no
// such index (or collection).
func (c *Collection) TTL(ctx context.Context, name string) (time.Duration, bool, error) {
	specs, err := c.wire.Indexes().ListSpecifications(ctx)
	if IsNamespaceNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, c.wrap("list indexes of", err)
	}
	for _, s := range specs {
		if s.Name == name && s.ExpireAfterSeconds != nil {
			return time.Duration(*s.ExpireAfterSeconds) * time.Second, true, nil
		}
	}
	return 0, false, nil
}

// Indexes returns the names of the collection's indexes (none when it does
// not exist).
func (c *Collection) Indexes(ctx context.Context) ([]string, error) {
	specs, err := c.wire.Indexes().ListSpecifications(ctx)
	if IsNamespaceNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, c.wrap("list indexes of", err)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names, nil
}

// EnsureCollections creates the named collections of database db that do
// not exist yet (concurrent callers may race: an existing one is not an
// error) and, on the embedded store, indexes their _id at once, so that
// lookups in them are fast from the first request. Only creating a
// collection can fail it.
func (s *Store) EnsureCollections(ctx context.Context, db string, names ...string) error {
	d := s.client.Database(db)
	for _, name := range names {
		err := d.CreateCollection(ctx, name)
		if err != nil && !isNamespaceExists(err) {
			if errors.Is(err, mongo.ErrClientDisconnected) {
				err = ErrClosed
			}
			return fmt.Errorf("create collection %s.%s: %w", db, name, err)
		}
	}
	// Not an error: without the index lookups are slower, not wrong, and
	// the server's indexer tries again every 250 ms (and logs a failure).
	if s.ids != nil {
		_ = s.ids.ensure(ctx)
	}
	return nil
}

// DropDatabase deletes database db and every collection in it. A database
// that does not exist is not an error.
func (s *Store) DropDatabase(ctx context.Context, db string) error {
	if err := s.client.Database(db).Drop(ctx); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// DirectStats returns what the embedded implementation read and wrote
// straight in the files since the store opened, and false when the store
// uses the wire implementation.
func (s *Store) DirectStats() (DirectStats, bool) {
	if s.direct == nil {
		return DirectStats{}, false
	}
	return s.direct.Stats(), true
}
