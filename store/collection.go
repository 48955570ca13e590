package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The storage contract. Packages that keep documents say, in small
// interfaces of their own, what they need from a collection; *Collection
// is what the store gives them, and it implements every such interface.
// Which implementation serves a handle is decided once, when the store is
// opened:
//
//   - embedded (this process runs the embedded server): lookups, inserts,
//     replacements and deletes by _id, batches and _id-prefix scans read
//     and write FerretDB's SQLite files directly (direct.go,
//     directwrite.go), handing over to the server anything they cannot
//     do; every other operation goes through the server;
//   - wire (MongoDB, or another process's `crawlcache db serve`): every
//     operation goes through mongo-driver.
//
// The acceptance suite in store/storetest proves both (and MongoDB, when a
// test is given one) against the same expectations.

// Errors of the contract, checked with errors.Is.
var (
	// ErrNotFound is returned by Get, FindOne and FindOneAndUpdate when no
	// document matches.
	ErrNotFound = errors.New("no such document")

	// ErrDuplicateID is wrapped by Insert when a document with the same
	// _id is stored already.
	ErrDuplicateID = errors.New("a document with this _id is stored already")

	// ErrClosed is wrapped by every operation on a store that was closed.
	ErrClosed = errors.New("store closed")

	// ErrNoTTLIndexes is wrapped by EnsureTTL on a server that has no TTL
	// indexes (the embedded store): the caller deletes expired documents
	// itself (DeleteMany).
	ErrNoTTLIndexes = errors.New("the server has no TTL indexes")
)

// Collection is a handle on one collection. It is safe for concurrent use
// and cheap to keep; get one with Store.Collection. A collection that does
// not exist yet reads as empty (Get answers ErrNotFound, scans and counts
// find nothing) and is created by the first write.
type Collection struct {
	db, name string
	wire     *mongo.Collection
	direct   *Direct // non-nil: embedded store in this process
	caps     Capabilities
	upd      *sync.RWMutex // serializes updates where they are not atomic (updatelock.go); nil: they are
	notFound error         // Get's answer for a missing _id, made once: a miss costs no allocation
}

// Collection returns the handle of collection name in database db.
func (s *Store) Collection(db, name string) *Collection {
	c := &Collection{db: db, name: name, wire: s.client.Database(db).Collection(name),
		direct: s.direct, caps: s.caps}
	if !s.caps.AtomicUpdates {
		c.upd = s.updateLocks().of(db, name)
	}
	c.notFound = fmt.Errorf("get from %s: %w", c, ErrNotFound)
	return c
}

// Name is the collection's name.
func (c *Collection) Name() string { return c.name }

// Database is the name of the collection's database.
func (c *Collection) Database() string { return c.db }

// Direct reports whether the operations by _id of this handle read and
// write the embedded store's files in this process (the embedded
// implementation) rather than going through the server.
func (c *Collection) Direct() bool { return c.direct != nil }

// TTLIndexes reports whether the server deletes expired documents by a TTL
// index (MongoDB); without them, EnsureTTL answers ErrNoTTLIndexes.
func (c *Collection) TTLIndexes() bool { return c.caps.TTLIndexes }

// FilterPushdown reports whether filters other than _id equality use
// indexes (MongoDB); on the embedded server any other field in a filter,
// even beside _id, makes it read the whole collection.
func (c *Collection) FilterPushdown() bool { return c.caps.FilterPushdown }

// String is db.name, for messages.
func (c *Collection) String() string { return c.db + "." + c.name }

// wrap names the operation and the collection in err, and turns the
// driver's errors into the contract's: ErrNotFound, ErrDuplicateID,
// ErrClosed.
func (c *Collection) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("%s %s: %w", op, c, ErrNotFound)
	case errors.Is(err, mongo.ErrClientDisconnected):
		return fmt.Errorf("%s %s: %w", op, c, ErrClosed)
	case mongo.IsDuplicateKeyError(err) && !errors.Is(err, ErrDuplicateID):
		return fmt.Errorf("%s %s: %w: %w", op, c, ErrDuplicateID, err)
	}
	return fmt.Errorf("%s %s: %w", op, c, err)
}

// idFilter is the filter of one _id.
func idFilter(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// Get returns the document with string _id id, as the BSON the server
// sends. It returns an error wrapping ErrNotFound when there is none (also
// when the collection or database does not exist). Any other error is a
// failure to read; the caller may treat it as the store being unavailable.
func (c *Collection) Get(ctx context.Context, id string) (bson.Raw, error) {
	if c.direct != nil {
		raw, err := c.direct.FindRaw(ctx, c.db, c.name, id)
		switch {
		case err == nil:
			return raw, nil
		case errors.Is(err, mongo.ErrNoDocuments):
			return nil, c.notFound
		case errors.Is(err, ErrClosed):
			return nil, c.wrap("get", err)
		}
		// An unreadable row: the server has the last word.
	}
	raw, err := c.wire.FindOne(ctx, idFilter(id)).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, c.notFound
	}
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("get %q from", id), err)
	}
	return raw, nil
}

// Getter is what GetAll needs of a collection: Get.
type Getter interface {
	Get(ctx context.Context, id string) (bson.Raw, error)
}

// Lookup is one document GetAll reads: Coll.Get(ctx, ID)'s outcome goes
// to Raw and Err.
type Lookup struct {
	Coll Getter
	ID   string
	Raw  bson.Raw
	Err  error
}

// GetAll does what Get does for every lookup of ls, at once. On the
// embedded store, the lookups of one database read one snapshot in one
// read transaction, which costs little more than one lookup while the
// store is being written (directmany.go); other lookups run concurrently,
// so that their round trips overlap.
func GetAll(ctx context.Context, ls []Lookup) {
	if len(ls) == 1 {
		ls[0].Raw, ls[0].Err = ls[0].Coll.Get(ctx, ls[0].ID)
		return
	}
	done := make([]bool, len(ls))
	for i := range ls {
		c, ok := ls[i].Coll.(*Collection)
		if done[i] || !ok || c.direct == nil {
			continue
		}
		// The direct lookups of c's database, together.
		var idx []int
		var refs []directRef
		for j := i; j < len(ls); j++ {
			if o, ok := ls[j].Coll.(*Collection); ok && !done[j] && o.direct == c.direct && o.db == c.db {
				idx, refs, done[j] = append(idx, j), append(refs, directRef{o.name, ls[j].ID}), true
			}
		}
		raws, err := c.direct.findMany(ctx, c.db, refs)
		for k, j := range idx {
			switch {
			case err != nil:
				done[j] = false // an unreadable batch: each on its own below
			case raws[k] == nil:
				ls[j].Err = ls[j].Coll.(*Collection).notFound
			default:
				ls[j].Raw = raws[k]
			}
		}
	}
	var wg sync.WaitGroup
	for i := range ls {
		if !done[i] {
			wg.Go(func() { ls[i].Raw, ls[i].Err = ls[i].Coll.Get(ctx, ls[i].ID) })
		}
	}
	wg.Wait()
}

// Insert stores doc (a struct, bson.D or bson.Raw with an _id). A document
// with the same _id is an error wrapping ErrDuplicateID.
func (c *Collection) Insert(ctx context.Context, doc any) error {
	if c.direct != nil {
		raw, err := bson.Marshal(doc)
		if err != nil {
			return c.wrap("insert into", err)
		}
		err = c.direct.InsertOne(ctx, c.db, c.name, raw)
		if !errors.Is(err, ErrDirectUnsupported) {
			return c.wrap("insert into", err)
		}
	}
	_, err := c.wire.InsertOne(ctx, doc)
	return c.wrap("insert into", err)
}

// InsertMany stores docs like an unordered insertMany: a document whose _id
// is stored already is skipped and its position returned in dups; the
// others are stored. Any other failure is err (then some documents may be
// stored: inserting the same documents again is safe). On the embedded
// store the documents go in one transaction.
func (c *Collection) InsertMany(ctx context.Context, docs []any) (dups map[int]bool, err error) {
	dups = make(map[int]bool)
	if len(docs) == 0 {
		return dups, nil
	}
	if c.direct != nil {
		raws := make([]bson.Raw, len(docs))
		for i, doc := range docs {
			if raws[i], err = bson.Marshal(doc); err != nil {
				return nil, c.wrap("insert into", err)
			}
		}
		idx, err := c.direct.InsertMany(ctx, c.db, c.name, raws)
		if !errors.Is(err, ErrDirectUnsupported) {
			for _, i := range idx {
				dups[i] = true
			}
			return dups, c.wrap("insert into", err)
		}
	}
	_, err = c.wire.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return dups, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, c.wrap("insert into", err)
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return nil, c.wrap("insert into", err)
		}
		dups[we.Index] = true
	}
	return dups, nil
}

// Upsert replaces the document with _id id by doc (whose _id must be id),
// or inserts doc when there is none.
func (c *Collection) Upsert(ctx context.Context, id string, doc any) error {
	defer c.shared()()
	if c.direct != nil {
		raw, err := bson.Marshal(doc)
		if err != nil {
			return c.wrap("replace in", err)
		}
		err = c.direct.Upsert(ctx, c.db, c.name, raw)
		if !errors.Is(err, ErrDirectUnsupported) {
			return c.wrap("replace in", err)
		}
	}
	// Two upserts of a new _id can both find nothing and both insert: the
	// loser gets a duplicate-key error although its replace would now
	// succeed (FerretDB does not retry it; MongoDB does since 4.2). Retry.
	var err error
	for range 3 {
		_, err = c.wire.ReplaceOne(ctx, idFilter(id), doc, options.Replace().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	return c.wrap("replace in", err)
}

// A Put is one document for UpsertAll: Upsert's arguments, and New when
// no document with its _id is likely stored (it is then inserted first,
// which on the embedded store is one statement instead of two).
type Put struct {
	Coll *Collection
	ID   string
	Doc  any
	New  bool
}

// UpsertAll does what Upsert does for each put, in order. On the embedded
// store, when every put is in one database, they are one write, committed
// together; elsewhere one Upsert after another, and an error stops at the
// put that failed.
func UpsertAll(ctx context.Context, puts ...Put) error {
	if len(puts) == 0 {
		return nil
	}
	first := puts[0].Coll
	if first.direct != nil && len(puts) > 1 {
		colls, docs, isNew := make([]string, len(puts)), make([]bson.Raw, len(puts)), make([]bool, len(puts))
		same := true
		for i, p := range puts {
			if p.Coll.direct != first.direct || p.Coll.db != first.db {
				same = false
				break
			}
			raw, err := bson.Marshal(p.Doc)
			if err != nil {
				return p.Coll.wrap("replace in", err)
			}
			colls[i], docs[i], isNew[i] = p.Coll.name, raw, p.New
		}
		if same {
			unlock := lockShared(puts)
			err := first.direct.UpsertAll(ctx, first.db, colls, docs, isNew)
			unlock()
			if !errors.Is(err, ErrDirectUnsupported) {
				return first.wrap("replace in", err)
			}
		}
	}
	for _, p := range puts {
		if err := p.Coll.Upsert(ctx, p.ID, p.Doc); err != nil {
			return err
		}
	}
	return nil
}

// lockShared takes each put's collection for a whole-document write
// (Collection.shared), each once and in the order of their names, so
// that two writers of the same collections cannot wait for each other,
// and returns the release of them all.
func lockShared(puts []Put) func() {
	colls := make([]*Collection, 0, len(puts))
	for _, p := range puts {
		if !slices.ContainsFunc(colls, func(c *Collection) bool { return c.name == p.Coll.name }) {
			colls = append(colls, p.Coll)
		}
	}
	slices.SortFunc(colls, func(a, b *Collection) int { return strings.Compare(a.name, b.name) })
	unlocks := make([]func(), len(colls))
	for i, c := range colls {
		unlocks[i] = c.shared()
	}
	return func() {
		for _, u := range unlocks {
			u()
		}
	}
}

// Delete deletes the document with _id id. No such document (or
// collection) is not an error.
func (c *Collection) Delete(ctx context.Context, id string) error {
	if c.direct != nil {
		return c.wrap("delete from", c.direct.DeleteOne(ctx, c.db, c.name, id))
	}
	_, err := c.wire.DeleteOne(ctx, idFilter(id))
	return c.wrap("delete from", err)
}

// DeleteMany deletes every document filter matches and returns how many.
// On the embedded store a filter other than _id equality reads the whole
// collection: for sweeps and commands, never per page.
func (c *Collection) DeleteMany(ctx context.Context, filter any) (int64, error) {
	res, err := c.wire.DeleteMany(ctx, filter)
	if err != nil {
		return 0, c.wrap("delete from", err)
	}
	return res.DeletedCount, nil
}

// Drop deletes the collection and its indexes. A collection that does not
// exist is not an error.
func (c *Collection) Drop(ctx context.Context) error {
	return c.wrap("drop", c.wire.Drop(ctx))
}
