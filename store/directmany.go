package store

import (
	"context"
	"encoding/json"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	sqlite3 "modernc.org/sqlite/lib"

	"crawlcache/internal/batch"
)

// A page of a crawl reads several small documents by _id at once (a
// response and its revalidation; a parse record and a change state), each
// a read transaction of its own. What a lookup costs is mostly fixed, not
// its size: the transaction, the stat of the file, and above all the page
// cache, which a WAL reader drops whenever another connection committed
// since its last transaction. While a crawl writes, almost every lookup
// starts with an empty cache and reads the index and table pages again,
// one pread each: a lookup of a small document costs about five times
// what it costs when nothing was written meanwhile. Lookups read together
// share one transaction on one connection, so they pay that once.

// directRef is one document of a findMany: a collection of the database
// and an _id.
type directRef struct{ coll, id string }

// findMany returns the documents refs name in database db, read in one
// read transaction (one snapshot): out[i] is refs[i]'s document, nil when
// there is none. A lookup the batch cannot answer (a collection renamed
// or dropped meanwhile) is done again alone, as FindRaw does it. An error
// is a failure to read; the caller may read the documents one by one.
//
// findMany calls that arrive while a read group of the same database is
// being read go together in the next one (readGroup): one transaction,
// one refill of the page cache, for the reads of several pages. Each
// call's reads start after it was made, so it sees every write that was
// committed before it.
func (d *Direct) findMany(ctx context.Context, db string, refs []directRef) ([]bson.Raw, error) {
	d.reads.Add(int64(len(refs)))
	req := &readReq{refs: refs, out: make([]bson.Raw, len(refs)), done: make(chan struct{})}
	d.readGroup(db).Add(req)
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, ctx.Err() // the group's answer is dropped
	}
	if req.err != nil {
		return nil, req.err
	}
	for _, i := range req.alone {
		raw, err := d.findRaw(ctx, db, refs[i].coll, refs[i].id)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case err != nil:
			return nil, err
		default:
			req.out[i] = raw
		}
	}
	return req.out, nil
}

// maxReadGroup bounds the findMany calls read in one transaction.
const maxReadGroup = 64

// readReq is one findMany waiting for its read group.
type readReq struct {
	refs  []directRef
	out   []bson.Raw
	alone []int // indexes of refs to read again alone
	err   error
	done  chan struct{}
}

// readGroup returns the read queue of database db.
func (d *Direct) readGroup(db string) *batch.Queue[*readReq] {
	d.readsMu.Lock()
	defer d.readsMu.Unlock()
	q := d.readQueues[db]
	if q == nil {
		if d.readQueues == nil {
			d.readQueues = map[string]*batch.Queue[*readReq]{}
		}
		q = &batch.Queue[*readReq]{Max: maxReadGroup, Yield: true}
		q.Flush = func(reqs []*readReq) { d.readTogether(db, reqs) }
		d.readQueues[db] = q
	}
	return q
}

// readTogether answers reqs from one read transaction of database db,
// or, if that fails, each from its own.
func (d *Direct) readTogether(db string, reqs []*readReq) {
	// Not a caller's context: one caller giving up must not fail the
	// others' reads.
	ctx := context.Background()
	if len(reqs) > 1 {
		var refs []directRef
		for _, r := range reqs {
			refs = append(refs, r.refs...)
		}
		out := make([]bson.Raw, len(refs))
		alone, err := d.findTogether(ctx, db, refs, out)
		if err == nil {
			start := 0
			for _, r := range reqs {
				copy(r.out, out[start:start+len(r.refs)])
				for _, i := range alone {
					if i >= start && i < start+len(r.refs) {
						r.alone = append(r.alone, i-start)
					}
				}
				start += len(r.refs)
				close(r.done)
			}
			return
		}
	}
	for _, r := range reqs {
		r.alone, r.err = d.findTogether(ctx, db, r.refs, r.out)
		close(r.done)
	}
}

// findTogether does findMany's lookups in one transaction and returns the
// indexes of those to do again alone.
func (d *Direct) findTogether(ctx context.Context, db string, refs []directRef, out []bson.Raw) (alone []int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ddb, err := d.database(db)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil // no such database: nothing is found
	}
	if err != nil {
		return nil, err
	}
	c, err := ddb.get(ctx)
	if err != nil {
		return nil, err
	}
	defer ddb.put(c)
	if err := c.begin(); err != nil {
		return nil, err
	}
	defer c.end()
	for i, r := range refs {
		// As findRaw: FerretDB compares the stored JSON text of _id
		// with encoding/json's.
		key, err := json.Marshal(r.id)
		if err != nil {
			return nil, err
		}
		raw, err := ddb.find(c, r.coll, string(key), false)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case errors.Is(err, errMappingChanged), err != nil && retryable(err):
			alone = append(alone, i)
		case err != nil:
			return nil, err
		case raw != nil && isStringID(raw, r.id):
			out[i] = raw
		}
	}
	return alone, nil
}

// isStringID reports whether raw's _id is the string id: the JSON text of
// an ObjectID _id is its hex string, which a find by string must not
// match.
func isStringID(raw bson.Raw, id string) bool {
	v, err := raw.LookupErr("_id")
	return err == nil && v.Type == bson.TypeString && v.StringValue() == id
}

// begin starts a read transaction on c: the lookups until end read one
// snapshot.
func (c *rawConn) begin() error {
	_, err := c.run("BEGIN")
	return err
}

// end ends the transaction begin started, if it is still open (an error
// may have ended it).
func (c *rawConn) end() {
	if sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0 {
		_, _ = c.run("COMMIT")
	}
}
