package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The store carries a schema version: one document in crawlcache.meta,
//
//	{_id: "schema", version: 1, updated_at: <date>, history: [{version, name, at}]}
//
// Open compares it with the highest Migration this binary knows (the
// built-in ones below and Options.Migrations): an older store is upgraded
// in place by the missing steps, in order; a newer one is refused with
// ErrSchemaTooNew before anything is written. A store without the document
// (written before versioning, or new) is at version 0.

// Migration is one step that upgrades the stored data to Version.
//
// Run must be idempotent: it may run again after a crash before its version
// was recorded, or (when a step outlives the lease, 5 minutes) beside
// another process running it. It must work on every store the binary opens
// (embedded or MongoDB), doing nothing where there is nothing to do, and
// on an empty store. Steps run one process at a time: the data directory's
// owner for the embedded store, one of the workers for MongoDB (a lease in
// crawlcache.meta); the others wait until the version is recorded.
//
// To change a stored document or the cache key: add a step with the next
// free Version to the list of the package that owns the data, pass that
// list in Options.Migrations wherever the store is opened for that package
// (the list of versions in use is in the store's docs page), and test the
// step on the release fixture (storetest.OpenFixture).
type Migration struct {
	// Version is the schema version the step brings the store to: unique,
	// above 0. Steps run in ascending Version.
	Version int

	// Name says what the step does, in the log and in the history kept in
	// the schema document.
	Name string

	// Run applies the step to s. s is open, but s.Close must not be
	// called.
	Run func(ctx context.Context, s *Store) error
}

// ErrSchemaTooNew is wrapped by Open when the store was written by a newer
// crawlcache (its schema version is above every Migration this binary
// knows). No document was changed.
var ErrSchemaTooNew = errors.New("store written by a newer crawlcache")

const (
	metaDatabase   = "crawlcache"
	metaCollection = "meta"
	schemaDocID    = "schema"
	schemaLockID   = "schema-lock"
)

// schemaLease is how long a process may hold the migration lease before
// another may take it over (renewed before each step).
var schemaLease = 5 * time.Minute

// builtinMigrations are the store's own steps.
var builtinMigrations = []Migration{
	{Version: 1, Name: "quarantine documents FerretDB cannot read back", Run: quarantineUnreadable},
}

// schemaDoc is the schema document.
type schemaDoc struct {
	ID        string        `bson:"_id"`
	Version   int           `bson:"version"`
	UpdatedAt time.Time     `bson:"updated_at"`
	History   []schemaEntry `bson:"history"`
}

type schemaEntry struct {
	Version int       `bson:"version"`
	Name    string    `bson:"name"`
	At      time.Time `bson:"at"`
}

// knownMigrations merges the built-in steps with extra, in Version order,
// refusing a Version used twice or below 1.
func knownMigrations(extra []Migration) ([]Migration, error) {
	all := append(slices.Clone(builtinMigrations), extra...)
	slices.SortStableFunc(all, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range all {
		if m.Version < 1 || m.Run == nil {
			return nil, fmt.Errorf("migration %q: version %d, want one above 0 and a Run function", m.Name, m.Version)
		}
		if i > 0 && all[i-1].Version == m.Version {
			return nil, fmt.Errorf("migration version %d is used twice (%q and %q): give the newer one the next free version", m.Version, all[i-1].Name, m.Name)
		}
	}
	return all, nil
}

// SchemaVersion returns the schema version recorded in the store, 0 when
// there is none.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var doc schemaDoc
	err := s.meta().FindOne(ctx, bson.D{{Key: "_id", Value: schemaDocID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the schema version (%s.%s, _id %q): %w; if the document was edited by hand, delete it: the next start reruns every step, which is safe", metaDatabase, metaCollection, schemaDocID, err)
	}
	return doc.Version, nil
}

func (s *Store) logger() *slog.Logger {
	if s.log == nil {
		return slog.Default()
	}
	return s.log
}

func (s *Store) meta() *mongo.Collection {
	return s.client.Database(metaDatabase).Collection(metaCollection)
}

// where names the store in messages.
func (s *Store) where() string {
	if s.DataDir != "" {
		return "data directory " + s.DataDir
	}
	return "store " + redactURI(s.URI)
}

// migrate refuses a store newer than steps and brings an older one up to
// the last of steps. A read-only store is only checked. started is when
// Open began: a process that owns the embedded store clears a lease taken
// before, which only a process killed while migrating can have left.
func (s *Store) migrate(ctx context.Context, steps []Migration, started time.Time) error {
	target := 0
	if len(steps) > 0 {
		target = steps[len(steps)-1].Version
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("pid %d on %s (%s)", os.Getpid(), host, bson.NewObjectID().Hex())
	for {
		cur, err := s.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if cur > target {
			return fmt.Errorf("%s holds schema version %d, this crawlcache knows versions up to %d: %w; use that crawlcache or a newer one (no document was changed)", s.where(), cur, target, ErrSchemaTooNew)
		}
		if cur == target || s.ReadOnly {
			return nil
		}
		if s.server != nil {
			if err := s.clearStaleSchemaLease(ctx, started); err != nil {
				return err
			}
		}
		got, err := s.takeSchemaLease(ctx, holder)
		if err != nil {
			return err
		}
		if got {
			err := s.runMigrations(ctx, steps, holder)
			if rerr := s.releaseSchemaLease(holder); err == nil {
				err = rerr
			}
			return err
		}
		// Another process migrates: wait for it (or for its lease to lapse).
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for another crawlcache to upgrade the %s: %w", s.where(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runMigrations runs the steps above the recorded version, recording each.
func (s *Store) runMigrations(ctx context.Context, steps []Migration, holder string) error {
	var doc schemaDoc
	err := s.meta().FindOne(ctx, bson.D{{Key: "_id", Value: schemaDocID}}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("read the schema version: %w", err)
	}
	doc.ID = schemaDocID
	for _, m := range steps {
		if m.Version <= doc.Version {
			continue
		}
		if err := s.renewSchemaLease(ctx, holder); err != nil {
			return err
		}
		start := time.Now()
		s.logger().Info("upgrading the store", "where", s.where(), "from", doc.Version, "to", m.Version, "step", m.Name)
		if err := m.Run(ctx, s); err != nil {
			return fmt.Errorf("upgrade the %s to schema version %d (%s): %w; it stays at version %d, and the next start retries", s.where(), m.Version, m.Name, err, doc.Version)
		}
		doc.Version = m.Version
		doc.UpdatedAt = time.Now().UTC()
		doc.History = append(doc.History, schemaEntry{Version: m.Version, Name: m.Name, At: doc.UpdatedAt})
		if _, err := s.meta().ReplaceOne(ctx, bson.D{{Key: "_id", Value: schemaDocID}}, doc, options.Replace().SetUpsert(true)); err != nil {
			return fmt.Errorf("record schema version %d: %w", m.Version, err)
		}
		s.logger().Info("store upgraded", "where", s.where(), "version", m.Version, "step", m.Name, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// takeSchemaLease takes the migration lease, or a lapsed one; false when
// another process holds it.
func (s *Store) takeSchemaLease(ctx context.Context, holder string) (bool, error) {
	now := time.Now().UTC()
	lease := bson.D{{Key: "_id", Value: schemaLockID}, {Key: "holder", Value: holder}, {Key: "expires_at", Value: now.Add(schemaLease)}}
	_, err := s.meta().InsertOne(ctx, lease)
	if err == nil {
		return true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, fmt.Errorf("take the schema migration lease in %s.%s: %w", metaDatabase, metaCollection, err)
	}
	res, err := s.meta().UpdateOne(ctx,
		bson.D{{Key: "_id", Value: schemaLockID}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: now}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "holder", Value: holder}, {Key: "expires_at", Value: now.Add(schemaLease)}}}})
	if err != nil {
		return false, fmt.Errorf("take over a lapsed schema migration lease: %w", err)
	}
	return res.ModifiedCount == 1, nil
}

// clearStaleSchemaLease deletes a lease taken before started (its expiry
// is earlier than one taken since). Only the owner of the embedded store
// may: no other process reached its server before it started.
func (s *Store) clearStaleSchemaLease(ctx context.Context, started time.Time) error {
	_, err := s.meta().DeleteOne(ctx, bson.D{{Key: "_id", Value: schemaLockID},
		{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: started.UTC().Add(schemaLease)}}}})
	if err != nil {
		return fmt.Errorf("clear the schema migration lease of a process that stopped while upgrading: %w", err)
	}
	return nil
}

func (s *Store) renewSchemaLease(ctx context.Context, holder string) error {
	_, err := s.meta().UpdateOne(ctx,
		bson.D{{Key: "_id", Value: schemaLockID}, {Key: "holder", Value: holder}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: time.Now().UTC().Add(schemaLease)}}}})
	if err != nil {
		return fmt.Errorf("renew the schema migration lease: %w", err)
	}
	return nil
}

// releaseSchemaLease deletes the lease if this process still holds it; it
// runs even when ctx is done.
func (s *Store) releaseSchemaLease(holder string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.meta().DeleteOne(ctx, bson.D{{Key: "_id", Value: schemaLockID}, {Key: "holder", Value: holder}})
	if err != nil {
		return fmt.Errorf("release the schema migration lease: %w", err)
	}
	return nil
}

// Upgrade brings the data directory srv serves to this binary's schema
// version, the store's own steps then migrations, as Open does for the
// stores it opens: for a process that serves a data directory without
// opening a Store on it (db serve), once, right after StartServer. logger
// receives a line per step; nil means slog.Default(). It returns an error
// wrapping ErrSchemaTooNew when a newer crawlcache wrote the directory.
func (srv *Server) Upgrade(ctx context.Context, migrations []Migration, logger *slog.Logger) error {
	steps, err := knownMigrations(migrations)
	if err != nil {
		return err
	}
	started := time.Now()
	client, err := connect(ctx, srv.clientURI(), 10*time.Second, nil)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background())
	s := &Store{client: client, URI: srv.URI(), Embedded: true, DataDir: srv.dir, ReadOnly: srv.readOnly, server: srv, log: logger}
	return s.migrate(ctx, steps, started)
}
