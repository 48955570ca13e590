package store

import (
	"context"
	"database/sql"
	"encoding/json"
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

	"crawlcache/internal/batch"
)

// A find by _id through the embedded server costs milliseconds for a page
// (FerretDB prepares the SQL per query, decodes its JSON into its own types
// with encoding/json, encodes BSON, then the wire round trip and the
// driver). When the server runs in this process, Direct reads the same rows
// from the same SQLite files itself and decodes FerretDB's JSON straight to
// BSON (sjson.go). Its readers open the files read-only (query_only), so
// they never write, and WAL readers never block a writer (FerretDB, or
// Direct's own writes in directwrite.go).

// directMaxConns bounds the SQLite connections Direct keeps per database
// file: concurrent lookups beyond it wait for one.
const directMaxConns = 8

// errDirectClosed is returned by FindRaw after the store closed.
var errDirectClosed = ErrClosed

// Direct reads and writes documents by _id in the files of the embedded
// server running in this process: the embedded implementation of
// Collection. It is safe for concurrent use, and closed with the Store.
type Direct struct {
	dir string

	mu     sync.RWMutex
	dbs    map[string]*directDB // by database name
	closed bool

	w directWriters // the write handles (directwrite.go)

	readsMu    sync.Mutex
	readQueues map[string]*batch.Queue[*readReq] // by database (directmany.go)

	reads, writes, txs atomic.Int64 // see Stats
}

// DirectStats counts what a Direct did since the store opened.
type DirectStats struct {
	Reads  int64 // lookups by _id (FindRaw calls)
	Writes int64 // writes (one per insert, batch, upsert or delete)
	// Transactions is the write transactions run: writes made at the same
	// time share one (groupcommit.go).
	Transactions int64
}

// Stats returns the counts so far. Safe for concurrent use.
func (d *Direct) Stats() DirectStats {
	return DirectStats{Reads: d.reads.Load(), Writes: d.writes.Load(), Transactions: d.txs.Load()}
}

// databaseFile returns the path of database name's file and the file's
// identity now; an error wrapping fs.ErrNotExist when there is none (or
// the name could not be a database's).
func (d *Direct) databaseFile(name string) (string, os.FileInfo, error) {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return "", nil, fmt.Errorf("database name %q: %w", name, fs.ErrNotExist)
	}
	file := ferretFile(d.dir, name)
	info, err := os.Stat(file)
	return file, info, err
}

// directDB is one database file: a pool of connections and the tables of
// its collections.
type directDB struct {
	file string
	info os.FileInfo // the file the connections have open
	uri  string

	conns chan *rawConn // idle connections; closed by close

	mu     sync.RWMutex
	tables map[string]string // by collection name
	open   int               // connections opened, at most directMaxConns
	closed bool
}

// newDirect returns the direct reader and writer of the server's files in
// dir.
func newDirect(dir string) *Direct {
	pinAllocatorOnce.Do(pinAllocator)
	return &Direct{dir: dir, dbs: map[string]*directDB{}}
}

// FindRaw returns the document with string _id id in collection coll of
// database db, as BSON byte-identical in content and field order to what
// FindOne(ctx, bson.D{{"_id", id}}).Raw() returns over the wire.
// It returns mongo.ErrNoDocuments when there is none (also when the
// database or collection does not exist). Any other error (an unreadable
// file, a stored document it cannot decode) names db, coll and id; the
// caller may treat it as a corrupt entry. ctx is checked before the lookup
// and bounds the wait for a connection; a lookup under way (tens of
// microseconds) is not interrupted. After the store closed, FindRaw
// returns an error.
func (d *Direct) FindRaw(ctx context.Context, db, coll, id string) (bson.Raw, error) {
	d.reads.Add(1)
	raw, err := d.findRaw(ctx, db, coll, id)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read %s.%s _id %q from the data directory: %w", db, coll, id, err)
	}
	return raw, err
}

func (d *Direct) findRaw(ctx context.Context, db, coll, id string) (bson.Raw, error) {
	// FerretDB compares the stored JSON text of _id with the JSON its
	// sjson encoder makes of the wanted one: encoding/json's, which
	// escapes <, > and &.
	key, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		retry := attempt < 2
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ddb, err := d.database(db)
		if ddb == nil || err != nil {
			return nil, err
		}
		c, err := ddb.get(ctx)
		if err != nil {
			if retry && errors.Is(err, errDirectClosed) {
				continue // replaced meanwhile
			}
			return nil, err
		}
		raw, err := ddb.find(c, coll, string(key), attempt > 0)
		ddb.put(c)
		switch {
		case errors.Is(err, errMappingChanged):
			if retry {
				continue
			}
			return nil, mongo.ErrNoDocuments
		case err != nil:
			if retry && retryable(err) {
				continue // table dropped meanwhile
			}
			return nil, err
		case raw == nil:
			return nil, mongo.ErrNoDocuments
		}
		if !isStringID(raw, id) {
			return nil, mongo.ErrNoDocuments
		}
		return raw, nil
	}
}

// errMappingChanged says that a collection no longer maps to the table its
// statement reads.
var errMappingChanged = errors.New("collection moved to another table")

// find looks up the _id whose JSON text is key in collection coll on c. It
// returns the document as BSON, nil when there is none, mongo.ErrNoDocuments
// when there is no such collection, or errMappingChanged. It reads
// FerretDB's collection list when coll is not known yet, or when refresh is
// set.
func (ddb *directDB) find(c *rawConn, coll, key string, refresh bool) (bson.Raw, error) {
	ddb.mu.RLock()
	table, ok := ddb.tables[coll]
	ddb.mu.RUnlock()
	if !ok || refresh {
		names, err := c.collections()
		if err != nil {
			return nil, fmt.Errorf("list collections in %s: %w", ddb.file, err)
		}
		ddb.mu.Lock()
		ddb.tables = names
		ddb.mu.Unlock()
		if table, ok = names[coll]; !ok {
			return nil, mongo.ErrNoDocuments
		}
	}
	raw, err := c.find(table, key, coll)
	if err != nil && !errors.Is(err, errMappingChanged) {
		return nil, fmt.Errorf("table %s of %s: %w", table, ddb.file, err)
	}
	return raw, err
}

// retryable reports errors after which a lookup with a fresh collection
// list may succeed: the table was dropped since the list was read.
func retryable(err error) bool {
	return isNoSuchTable(err)
}

// database returns the handle of database name, opening it on first use and
// reopening it when FerretDB dropped the file (and maybe created another).
// It returns mongo.ErrNoDocuments when there is no such database.
func (d *Direct) database(name string) (*directDB, error) {
	d.mu.RLock()
	ddb, closed := d.dbs[name], d.closed
	d.mu.RUnlock()
	if closed {
		return nil, errDirectClosed
	}
	file, info, err := d.databaseFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if ddb != nil {
				d.forget(name, ddb)
			}
			return nil, mongo.ErrNoDocuments
		}
		return nil, err
	}
	if ddb != nil && os.SameFile(ddb.info, info) {
		return ddb, nil
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errDirectClosed
	}
	if cur := d.dbs[name]; cur != nil {
		if os.SameFile(cur.info, info) {
			return cur, nil
		}
		cur.close()
		delete(d.dbs, name)
	}
	ddb = &directDB{
		file:   file,
		info:   info,
		uri:    "file:" + (&url.URL{Path: file}).EscapedPath() + "?mode=ro",
		conns:  make(chan *rawConn, directMaxConns),
		tables: map[string]string{},
	}
	d.dbs[name] = ddb
	return ddb, nil
}

// forget closes ddb if it is still the handle of name.
func (d *Direct) forget(name string, ddb *directDB) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dbs[name] == ddb {
		ddb.close()
		delete(d.dbs, name)
	}
}

// close closes every handle; FindRaw fails afterwards.
func (d *Direct) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for name, ddb := range d.dbs {
		ddb.close()
		delete(d.dbs, name)
	}
}

// lookupQuery is the statement that finds a document by _id in table. Its
// condition on the document is FerretDB's own (metadata.IDColumn), which
// the _id index idIndexer maintains serves. Arguments: the JSON of the _id,
// the collection name, the table name. It answers no row when the
// collection no longer maps to table (dropped, renamed), a NULL when it
// has no such document: one read transaction sees both. (A LEFT JOIN
// rather than a scalar subquery, which copies the value once more.)
func lookupQuery(table string) string {
	return `SELECT CAST(t.` + ferretDocColumn + ` AS BLOB) FROM ` + ferretMetadataTable + ` c` +
		` LEFT JOIN ` + quoteIdent(table) + ` t ON t.` + idIndexExpr + ` = ?1` +
		` WHERE c.name = ?2 AND c.table_name = ?3`
}

// collectionListQuery lists every collection of a database file and its
// table.
const collectionListQuery = `SELECT name, table_name FROM ` + ferretMetadataTable

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// collectionTableNames maps every collection of the database to its table.
// A database file FerretDB is still creating has none.
func collectionTableNames(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, collectionListQuery)
	if err != nil {
		if isNoSuchTable(err) {
			return map[string]string{}, nil
		}
		return nil, err
	}
	defer rows.Close()
	names := map[string]string{}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			return nil, err
		}
		names[name] = table
	}
	return names, rows.Err()
}

// get returns an idle connection, opens one while fewer than
// directMaxConns are, or waits for one.
func (ddb *directDB) get(ctx context.Context) (*rawConn, error) {
	select {
	case c, ok := <-ddb.conns:
		if !ok {
			return nil, errDirectClosed
		}
		return c, nil
	default:
	}
	ddb.mu.Lock()
	if ddb.closed {
		ddb.mu.Unlock()
		return nil, errDirectClosed
	}
	if ddb.open < directMaxConns {
		ddb.open++
		ddb.mu.Unlock()
		c, err := openRawConn(ddb.uri, false)
		if err != nil {
			ddb.mu.Lock()
			ddb.open--
			ddb.mu.Unlock()
			return nil, fmt.Errorf("open %s: %w", ddb.file, err)
		}
		return c, nil
	}
	ddb.mu.Unlock()
	select {
	case c, ok := <-ddb.conns:
		if !ok {
			return nil, errDirectClosed
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns c to the pool, or closes it when the pool is closed.
func (ddb *directDB) put(c *rawConn) {
	ddb.mu.Lock()
	defer ddb.mu.Unlock()
	if ddb.closed {
		c.close()
		return
	}
	ddb.conns <- c // never blocks: at most directMaxConns exist
}

// close closes the idle connections, and the others when they are put
// back.
func (ddb *directDB) close() {
	ddb.mu.Lock()
	defer ddb.mu.Unlock()
	if ddb.closed {
		return
	}
	ddb.closed = true
	close(ddb.conns)
	for c := range ddb.conns {
		c.close()
	}
}
