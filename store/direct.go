package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"modernc.org/libc"
	"modernc.org/libc/sys/types"
)

// A find by _id through the embedded server costs milliseconds for a page
// (FerretDB prepares the SQL per query, decodes its JSON into its own types
// with encoding/json, encodes BSON, then the wire round trip and the
// driver). When the server runs in this process, Direct reads the same rows
// from the same SQLite files itself and decodes FerretDB's JSON straight to
// BSON (sjson.go). Its readers open the files read-only (query_only), so
// they never write, and WAL readers never block a writer (FerretDB, or
// Direct's own writes in directwrite.go).

// directs maps the client of every open in-process embedded store to its
// reader.
var directs sync.Map // *mongo.Client → *Direct

// directMaxConns bounds the SQLite connections Direct keeps per database
// file: concurrent lookups beyond it wait for one.
const directMaxConns = 8

// errDirectClosed is returned by FindRaw after the store closed.
var errDirectClosed = errors.New("store closed")

// Direct reads documents by _id from the files of the embedded server
// running in this process. It is safe for concurrent use. Get one with
// DirectFor; it is closed with the Store.
type Direct struct {
	dir string

	mu     sync.RWMutex
	dbs    map[string]*directDB // by database name
	closed bool
}

// directDB is one database file and its collections.
type directDB struct {
	file string
	info os.FileInfo // the file the handle has open
	db   *sql.DB

	mu     sync.RWMutex
	tables map[string]*directTable // by collection name
	closed bool
}

// directTable is the lookup statement of one collection.
type directTable struct {
	table string
	stmt  *sql.Stmt
}

// DirectFor returns the direct reader of the embedded server that client is
// connected to when that server runs in this process, else nil.
func DirectFor(client *mongo.Client) *Direct {
	if client == nil {
		return nil
	}
	if d, ok := directs.Load(client); ok {
		return d.(*Direct)
	}
	return nil
}

// registerDirect makes DirectFor(client) read the server's files in dir.
func registerDirect(client *mongo.Client, dir string) {
	pinAllocatorOnce.Do(pinAllocator)
	directs.Store(client, &Direct{dir: dir, dbs: map[string]*directDB{}})
}

// unregisterDirect closes the reader of client, if any.
func unregisterDirect(client *mongo.Client) {
	if d, ok := directs.LoadAndDelete(client); ok {
		d.(*Direct).close()
		d.(*Direct).closeWriters()
	}
}

// FindRaw returns the document with string _id id in collection coll of
// database db, as BSON byte-identical in content and field order to what
// FindOne(ctx, bson.D{{"_id", id}}).Raw() returns over the wire.
// It returns mongo.ErrNoDocuments when there is none (also when the
// database or collection does not exist). Any other error (an unreadable
// file, a stored document it cannot decode) names db, coll and id; the
// caller may treat it as a corrupt entry.
func (d *Direct) FindRaw(ctx context.Context, db, coll, id string) (bson.Raw, error) {
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
		ddb, err := d.database(db)
		if ddb == nil || err != nil {
			return nil, err
		}
		t, err := ddb.table(ctx, coll, attempt > 0)
		if t == nil || err != nil {
			return nil, err
		}
		raw, err := t.find(ctx, string(key), coll)
		switch {
		case errors.Is(err, errMappingChanged):
			if retry {
				continue
			}
			return nil, mongo.ErrNoDocuments
		case err != nil:
			if retry && ctx.Err() == nil && retryable(err) {
				continue // table dropped, or handle replaced meanwhile
			}
			return nil, err
		case raw == nil:
			return nil, mongo.ErrNoDocuments
		}
		// The JSON text of an ObjectID _id is its hex string: the row
		// found may be an ObjectID, which a find by string does not match.
		v, err := bson.Raw(raw).LookupErr("_id")
		if err != nil || v.Type != bson.TypeString || v.StringValue() != id {
			return nil, mongo.ErrNoDocuments
		}
		return raw, nil
	}
}

// errMappingChanged says that a collection no longer maps to the table its
// statement reads.
var errMappingChanged = errors.New("collection moved to another table")

// find runs the lookup of the _id whose JSON text is key and returns the
// document as BSON, nil when there is none, or errMappingChanged.
func (t *directTable) find(ctx context.Context, key, coll string) (bson.Raw, error) {
	rows, err := t.stmt.QueryContext(ctx, key, coll, t.table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, errMappingChanged
	}
	// The text as a BLOB: the driver hands it over without the copies it
	// makes of TEXT, and RawBytes without another.
	var text sql.RawBytes
	if err := rows.Scan(&text); err != nil {
		return nil, err
	}
	if text == nil {
		return nil, nil
	}
	return appendSJSON(make([]byte, 0, len(text)+64), unsafe.String(unsafe.SliceData(text), len(text)))
}

// retryable reports errors after which a lookup with fresh handles and
// mapping may succeed.
func retryable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "is closed")
}

// database returns the handle of database name, opening it on first use and
// reopening it when FerretDB dropped the file (and maybe created another).
// It returns mongo.ErrNoDocuments when there is no such database.
func (d *Direct) database(name string) (*directDB, error) {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return nil, mongo.ErrNoDocuments
	}
	d.mu.RLock()
	ddb, closed := d.dbs[name], d.closed
	d.mu.RUnlock()
	if closed {
		return nil, errDirectClosed
	}
	file := filepath.Join(d.dir, name+".sqlite")
	info, err := os.Stat(file)
	if err != nil {
		if os.IsNotExist(err) {
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
	// mode=ro and query_only: FerretDB must stay the only writer.
	u := "file:" + (&url.URL{Path: file}).EscapedPath() +
		"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)" +
		// Pages through the mapping rather than a read(2) each: a
		// lookup of a 44 KB page took 30% less.
		"&_pragma=mmap_size(1073741824)"
	db, err := sql.Open("sqlite", u)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	db.SetMaxOpenConns(directMaxConns)
	db.SetMaxIdleConns(directMaxConns)
	ddb = &directDB{file: file, info: info, db: db, tables: map[string]*directTable{}}
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

// table returns the lookup statement of collection coll, or
// mongo.ErrNoDocuments when the collection does not exist. It reads FerretDB's collection list when
// coll is not known yet, or when refresh is set.
func (ddb *directDB) table(ctx context.Context, coll string, refresh bool) (*directTable, error) {
	if !refresh {
		ddb.mu.RLock()
		t, closed := ddb.tables[coll], ddb.closed
		ddb.mu.RUnlock()
		if closed {
			return nil, errDirectClosed
		}
		if t != nil {
			return t, nil
		}
	}

	ddb.mu.Lock()
	defer ddb.mu.Unlock()
	if ddb.closed {
		return nil, errDirectClosed
	}
	names, err := collectionTableNames(ctx, ddb.db)
	if err != nil {
		return nil, fmt.Errorf("list collections in %s: %w", ddb.file, err)
	}
	for name, t := range ddb.tables {
		if names[name] != t.table {
			_ = t.stmt.Close()
			delete(ddb.tables, name)
		}
	}
	table, ok := names[coll]
	if !ok {
		return nil, mongo.ErrNoDocuments
	}
	if t := ddb.tables[coll]; t != nil {
		return t, nil
	}
	stmt, err := ddb.db.PrepareContext(ctx, lookupQuery(table))
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, mongo.ErrNoDocuments // dropped since the list was read
		}
		return nil, fmt.Errorf("prepare lookup in table %s of %s: %w", table, ddb.file, err)
	}
	t := &directTable{table: table, stmt: stmt}
	ddb.tables[coll] = t
	return t, nil
}

// lookupQuery is the statement that finds a document by _id in table. Its
// condition on the document is FerretDB's own (metadata.IDColumn), which
// the _id index idIndexer maintains serves. Arguments: the JSON of the _id,
// the collection name, the table name. It answers no row when the
// collection no longer maps to table (dropped, renamed), a NULL when it
// has no such document: one read transaction sees both. (A LEFT JOIN
// rather than a scalar subquery, which copies the value once more.)
func lookupQuery(table string) string {
	return `SELECT CAST(t._ferretdb_sjson AS BLOB) FROM _ferretdb_collections c` +
		` LEFT JOIN ` + quoteIdent(table) + ` t ON t.` + idIndexExpr + ` = ?1` +
		` WHERE c.name = ?2 AND c.table_name = ?3`
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// collectionTableNames maps every collection of the database to its table.
// A database file FerretDB is still creating has none.
func collectionTableNames(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, table_name FROM _ferretdb_collections`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
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

func (ddb *directDB) close() {
	ddb.mu.Lock()
	defer ddb.mu.Unlock()
	ddb.closed = true
	for name, t := range ddb.tables {
		_ = t.stmt.Close()
		delete(ddb.tables, name)
	}
	_ = ddb.db.Close()
}

var pinAllocatorOnce sync.Once

// pinAllocator keeps SQLite's allocator from mapping and unmapping memory
// on every lookup. modernc.org/memory serves allocations of up to 256 KB
// from 1 MB pages shared by one power-of-two size class, and unmaps a page
// as soon as its last allocation is freed. Reading a 10–150 KB document
// allocates one buffer of its class and frees it: an mmap and a munmap of
// 1 MB per lookup, measured as most of its time (3–4× the rest), since
// munmap stops every thread of the process to flush its TLB. One
// allocation held in each class from 8 KB up keeps a page of it mapped for
// good (6 MB of address space, a few KB resident). FerretDB's own reads
// and writes, on the same allocator, gain as much.
func pinAllocator() {
	tls := libc.NewTLS()
	defer tls.Close()
	for class := 13; class <= 18; class++ { // sizes in (2^(class-1), 2^class]
		libc.Xmalloc(tls, types.Size_t(1<<(class-1)+64))
	}
}
