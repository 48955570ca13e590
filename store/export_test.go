package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// DirectOf is s's direct access to the embedded store's files, nil for the
// wire implementation: the tests of the direct path drive it themselves.
func DirectOf(s *Store) *Direct { return s.direct }

// IndexIDsOf rebuilds the _id index of every collection of s's embedded
// server now, as EnsureCollections does after creating collections.
func IndexIDsOf(ctx context.Context, s *Store) error {
	if s.ids == nil {
		return nil
	}
	return s.ids.ensure(ctx)
}

// ensureCollections creates the named collections of db (already there is
// not an error), as Store.EnsureCollections does, for tests that hold a
// driver database.
func ensureCollections(ctx context.Context, db *mongo.Database, names ...string) error {
	for _, name := range names {
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return err
		}
	}
	return nil
}

// Database returns the named database of s's driver client, for this
// package's tests of the wire protocol and of the server itself; other
// packages reach their documents through Collection.
func (s *Store) Database(name string) *mongo.Database { return s.client.Database(name) }

// FrontAnswered is how many commands the query front of s's embedded
// server answered itself (-1 without a front).
func FrontAnswered(s *Store) int64 {
	if s.server == nil || s.server.front == nil {
		return -1
	}
	return s.server.front.answered.Load()
}
