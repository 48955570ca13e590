package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	sqlite3 "modernc.org/sqlite/lib"

	"crawlcache/internal/batch"
)

// An insert through the embedded server spends as much time in FerretDB
// (the wire, BSON to its types, its JSON encoder) as in SQLite, and runs
// its SQL under SQLite's single write lock, where a waiting writer sleeps
// in SQLite's busy handler rather than waking when the lock is free. When
// the server runs in this process, Direct also writes the hot documents
// (cached responses, frontier entries and log) into the same tables
// itself: the document is encoded in FerretDB's format by the caller's
// goroutine (sjsonenc.go), and only the SQL runs under the lock, queued in
// Go on one connection per database file. FerretDB reads these rows like
// its own; it keeps no state about a collection's rows that such a write
// would make stale.

// ErrDirectUnsupported is returned (wrapped) by Direct's writes when they
// cannot write a document themselves: its collection does not exist yet
// (the server creates it), it has a value the encoder does not handle, a
// non-string _id, it is over 16 MiB, or it holds anything the server might
// refuse (validate.go). The caller writes through the server, which
// creates, stores or refuses it with its own error.
var ErrDirectUnsupported = errors.New("not written directly")

// maxDirectDoc is the largest document written directly: MongoDB's limit.
const maxDirectDoc = 16 << 20

// directWriters are the write handles of one Direct, by database name.
type directWriters struct {
	mu     sync.Mutex
	dbs    map[string]*writeDB
	closed bool
}

// close closes every write handle; writes fail afterwards.
func (w *directWriters) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for name, wdb := range w.dbs {
		wdb.close()
		delete(w.dbs, name)
	}
}

// writeDB is the write handle of one database file: one connection, so
// this process's writers queue in Go. The connection is driven through
// SQLite's C API (rawconn.go), its statements prepared once.
type writeDB struct {
	file string
	info os.FileInfo

	txs *atomic.Int64 // the Direct's count of transactions

	connMu sync.Mutex    // held for a transaction or a collection lookup
	conn   *rawConn      // nil once closed
	ckpt   *checkpointer // checkpoints the file's log off the write path

	mu     sync.Mutex        // guards tables
	tables map[string]string // collection → table

	group batch.Queue[*writeReq] // writes waiting for the next transaction (groupcommit.go)
}

// withConn runs f on w's connection, alone; errDirectClosed once w is
// closed.
func (w *writeDB) withConn(f func(c *rawConn) error) error {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.conn == nil {
		return errDirectClosed
	}
	return f(w.conn)
}

// close closes w's connection once the transaction on it, if any, ended.
func (w *writeDB) close() {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.conn != nil {
		w.conn.close()
		w.conn = nil
		w.ckpt.stop()
	}
}

// transaction runs f in a write transaction on c, w's connection, and
// then lets the checkpointer see the log's length.
func (w *writeDB) transaction(c *rawConn, f func() error) error {
	w.txs.Add(1)
	err := c.transaction(f)
	w.ckpt.afterCommit(c)
	return err
}

// writeDB returns the write handle of database name, or
// ErrDirectUnsupported when its file does not exist yet.
func (d *Direct) writeDB(name string) (*writeDB, error) {
	file, info, err := d.databaseFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: database %s does not exist yet", ErrDirectUnsupported, name)
		}
		return nil, err
	}
	w := &d.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errDirectClosed
	}
	if cur := w.dbs[name]; cur != nil {
		if os.SameFile(cur.info, info) {
			return cur, nil
		}
		cur.close() // dropped and created again
		delete(w.dbs, name)
	}
	if w.dbs == nil {
		w.dbs = map[string]*writeDB{}
	}
	uri := "file:" + (&url.URL{Path: file}).EscapedPath()
	conn, err := openRawConn(uri, true)
	if err == nil {
		if err = conn.hookWAL(); err != nil {
			conn.close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	wdb := &writeDB{file: file, info: info, conn: conn, ckpt: startCheckpointer(uri), txs: &d.txs, tables: map[string]string{}}
	// Yield: the goroutines that are ready queue their writes for this
	// transaction under load; on an idle store nothing else is ready.
	wdb.group.Max, wdb.group.Flush, wdb.group.Yield = maxGroup, wdb.commitGroup, true
	w.dbs[name] = wdb
	return wdb, nil
}

// table returns coll's table, reading FerretDB's list when coll is not
// known or refresh is set; ErrDirectUnsupported when coll does not exist or
// is capped (its table has another layout). It waits for the transaction
// running on w's connection, if any.
func (w *writeDB) table(ctx context.Context, coll string, refresh bool) (string, error) {
	if !refresh {
		if t, ok := w.knownTable(coll); ok {
			return t, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var t string
	err := w.withConn(func(c *rawConn) error {
		names, err := c.collections()
		if err != nil {
			return fmt.Errorf("list collections in %s: %w", w.file, err)
		}
		var ok bool
		if t, ok = names[coll]; !ok {
			return fmt.Errorf("%w: collection %s does not exist yet", ErrDirectUnsupported, coll)
		}
		capped, err := c.queryInt(`SELECT count(*) FROM pragma_table_info(?1) WHERE name = '`+ferretRecordIDColumn+`'`, t)
		if err != nil {
			return fmt.Errorf("read the columns of %s in %s: %w", t, w.file, err)
		}
		if capped > 0 {
			return fmt.Errorf("%w: collection %s is capped", ErrDirectUnsupported, coll)
		}
		// The server creates a collection's table, lists it, and only
		// then creates its unique _id index, outside its lock's view of
		// this connection: an insert between the two would make
		// duplicate _ids (two winners of a claim). Until the index is
		// there, the server writes.
		unique, err := c.queryInt(`SELECT count(*) FROM pragma_index_list(?1) WHERE "unique" = 1`, t)
		if err != nil {
			return fmt.Errorf("read the indexes of %s in %s: %w", t, w.file, err)
		}
		if unique == 0 {
			return fmt.Errorf("%w: collection %s has no unique _id index yet", ErrDirectUnsupported, coll)
		}
		return nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		delete(w.tables, coll)
		return "", err
	}
	w.tables[coll] = t
	return t, nil
}

// knownTable returns coll's table if it is known.
func (w *writeDB) knownTable(coll string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.tables[coll]
	return t, ok
}

// encoded is one document ready to write.
type encoded struct {
	id   string // the JSON of its _id, as FerretDB compares it
	text string // its sjson
}

func encodeForWrite(doc bson.Raw) (encoded, error) {
	// First: a document refused here must not reach the server because
	// of another reason to hand it over.
	fields, err := fieldsOf(doc)
	if err == nil {
		err = checkTopKeys(fields)
	}
	if err != nil {
		if errors.Is(err, ErrUnreadableDocument) {
			return encoded{}, err
		}
		return encoded{}, fmt.Errorf("%w: %v", ErrDirectUnsupported, err)
	}
	if len(doc) > maxDirectDoc {
		return encoded{}, fmt.Errorf("%w: document of %d bytes", ErrDirectUnsupported, len(doc))
	}
	if len(fields) == 0 || fields[0].key != "_id" || fields[0].val.Type != bson.TypeString {
		return encoded{}, fmt.Errorf("%w: no string _id", ErrDirectUnsupported)
	}
	id := fields[0].val
	text, err := encodeSJSONFields(doc, fields)
	if err != nil {
		return encoded{}, fmt.Errorf("%w: %v", ErrDirectUnsupported, err)
	}
	return encoded{id: string(appendJSONString(nil, id.StringValue(), true)), text: string(text)}, nil
}

// isUnique reports a violation of the unique _id index.
func isUnique(err error) bool {
	code, ok := sqliteCode(err)
	return ok && code == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// write runs f in a write transaction on coll's table (and the tables of
// the collections more, which f looks up itself) and returns once
// that transaction committed (or failed). Writes that queue while another
// transaction runs share the next one (groupcommit.go).
func (d *Direct) write(ctx context.Context, db, coll string, f writeFunc, more ...string) error {
	wdb, err := d.writeDB(db)
	if err != nil {
		return err
	}
	if _, err := wdb.table(ctx, coll, false); err != nil {
		return err
	}
	for _, c := range more {
		if _, err := wdb.table(ctx, c, false); err != nil {
			return err
		}
	}
	d.writes.Add(1)
	return wdb.submit(ctx, coll, f)
}

// writeAlone runs one write in a transaction of its own, retrying once
// with a fresh collection list when the table is gone (dropped meanwhile).
func (w *writeDB) writeAlone(ctx context.Context, coll string, f writeFunc) error {
	for attempt := 0; ; attempt++ {
		table, err := w.table(ctx, coll, attempt > 0)
		if err != nil {
			return err
		}
		err = w.withConn(func(c *rawConn) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			stop := c.interruptOnDone(ctx)
			err := w.transaction(c, func() error {
				return f(&writeTx{conn: c, w: w}, table)
			})
			if stop() && err != nil {
				return ctx.Err() // interrupted, as database/sql reports it
			}
			return err
		})
		if err != nil && attempt == 0 && isNoSuchTable(err) {
			continue
		}
		return err
	}
}

// InsertMany inserts docs into coll of db in one transaction, like an
// unordered insertMany: a document whose _id exists is skipped and its
// index listed in dups; the others are stored. It returns an error
// wrapping ErrDirectUnsupported, before writing anything, when any
// document cannot be written directly, and ErrUnreadableDocument when any
// is one the server could not read back.
func (d *Direct) InsertMany(ctx context.Context, db, coll string, docs []bson.Raw) (dups []int, err error) {
	enc := make([]encoded, len(docs))
	for i, doc := range docs {
		if enc[i], err = encodeForWrite(doc); err != nil {
			return nil, err
		}
	}
	err = d.write(ctx, db, coll, func(tx *writeTx, table string) error {
		dups = dups[:0]
		q := insertSQL(table)
		for i, e := range enc {
			if _, err := tx.exec(q, e.text); err != nil {
				if isUnique(err) {
					dups = append(dups, i)
					continue
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("insert into %s.%s: %w", db, coll, err)
	}
	return dups, nil
}

// InsertOne inserts doc into coll of db. A document with the same _id
// makes it return a duplicate-key error (mongo.IsDuplicateKeyError).
func (d *Direct) InsertOne(ctx context.Context, db, coll string, doc bson.Raw) error {
	dups, err := d.InsertMany(ctx, db, coll, []bson.Raw{doc})
	if err != nil {
		return err
	}
	if len(dups) > 0 {
		return duplicateKey(db, coll, doc)
	}
	return nil
}

func duplicateKey(db, coll string, doc bson.Raw) error {
	id, _ := doc.LookupErr("_id")
	return mongo.WriteException{WriteErrors: []mongo.WriteError{{
		Code:    11000,
		Message: fmt.Sprintf("E11000 duplicate key error collection: %s.%s index: _id_ dup key: { _id: %s }", db, coll, id),
	}}}
}

// Upsert replaces the document with doc's _id in coll of db, or inserts
// doc when there is none (replaceOne with upsert).
func (d *Direct) Upsert(ctx context.Context, db, coll string, doc bson.Raw) error {
	e, err := encodeForWrite(doc)
	if err != nil {
		return err
	}
	err = d.write(ctx, db, coll, func(tx *writeTx, table string) error {
		return upsertIn(tx, table, e, false)
	})
	if err != nil {
		return fmt.Errorf("replace in %s.%s: %w", db, coll, err)
	}
	return nil
}

// upsertIn replaces or inserts e in table: an insert first when isNew
// (one statement when no document has its _id; a failed insert leaves
// the transaction as it was), else a replace first.
func upsertIn(tx *writeTx, table string, e encoded, isNew bool) error {
	if isNew {
		_, err := tx.exec(insertSQL(table), e.text)
		if !isUnique(err) {
			return err
		}
	}
	if n, err := tx.exec(updateSQL(table), e.text, e.id); err != nil || n > 0 {
		return err
	}
	_, err := tx.exec(insertSQL(table), e.text)
	return err
}

// UpsertAll does what Upsert does for docs[i] in colls[i] of db, in
// order, as one write: the documents are committed together, in one
// transaction; isNew[i] says docs[i] is likely new (inserted first). It
// returns an error wrapping ErrDirectUnsupported, before writing
// anything, when any document cannot be written directly.
func (d *Direct) UpsertAll(ctx context.Context, db string, colls []string, docs []bson.Raw, isNew []bool) error {
	enc := make([]encoded, len(docs))
	for i, doc := range docs {
		var err error
		if enc[i], err = encodeForWrite(doc); err != nil {
			return err
		}
	}
	err := d.write(ctx, db, colls[0], func(tx *writeTx, table string) error {
		for i, e := range enc {
			if i > 0 {
				var ok bool
				if table, ok = tx.w.knownTable(colls[i]); !ok {
					return errTableUnknown
				}
			}
			if err := upsertIn(tx, table, e, isNew[i]); err != nil {
				return err
			}
		}
		return nil
	}, colls[1:]...)
	if err != nil {
		return fmt.Errorf("replace in %s.%s: %w", db, strings.Join(colls, ", "), err)
	}
	return nil
}

// DeleteOne deletes the document with string _id id from coll of db, if
// there is one.
func (d *Direct) DeleteOne(ctx context.Context, db, coll, id string) error {
	key := string(appendJSONString(nil, id, true))
	err := d.write(ctx, db, coll, func(tx *writeTx, table string) error {
		_, err := tx.exec(deleteSQL(table), key)
		return err
	})
	if errors.Is(err, ErrDirectUnsupported) {
		return nil // no such collection: nothing to delete
	}
	if err != nil {
		return fmt.Errorf("delete from %s.%s: %w", db, coll, err)
	}
	return nil
}
