package store

// This file drives SQLite through the C API that modernc.org/sqlite
// transpiles to Go, for Direct's reads (direct.go).

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

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

// rawConn is one read-only SQLite connection driven through the C API
// that modernc.org/sqlite transpiles to Go, rather than database/sql: its
// driver prepares a statement again on every query and copies every value
// into a new Go slice, which cost a lookup of a 44 KB page 40% more
// (BenchmarkFindByID). A rawConn keeps its statements prepared and the
// decoder reads the stored text where SQLite holds it. It must be used by
// one goroutine at a time.
type rawConn struct {
	tls   *libc.TLS
	db    uintptr            // sqlite3*
	stmts map[string]uintptr // lookup statement (sqlite3_stmt*) by table
	buf   uintptr            // C memory for bound parameters
	cap   int
	// byText are the other statements, by SQL text (prepared): the
	// collection list, transactions, and a write connection's writes.
	byText map[string]uintptr
	walLen uintptr // C int: the log's length after the last commit (checkpoint.go); 0 if not kept
}

// sqliteError is an error SQLite reported through the C API; Code is its
// result code, extended on a write connection (SQLITE_CONSTRAINT_UNIQUE,
// say), as modernc.org/sqlite's errors give it.
type sqliteError struct {
	op, msg string
	code    int
}

func (e *sqliteError) Error() string { return fmt.Sprintf("%s: %s (%d)", e.op, e.msg, e.code) }

// Code returns SQLite's result code.
func (e *sqliteError) Code() int { return e.code }

// sqliteTransient tells sqlite3_bind_text to copy the value
// (SQLITE_TRANSIENT).
const sqliteTransient = ^uintptr(0)

// cptr converts an address in C memory (SQLite's, or libc's heap) to a
// pointer; the Go collector ignores such pointers.
func cptr(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

// openRawConn opens the database file uri names: read-only for Direct's
// reads, or, with write set, read-write for its writes (directwrite.go),
// the file being there already.
func openRawConn(uri string, write bool) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS(), stmts: map[string]uintptr{}, byText: map[string]uintptr{}}
	flags := int32(sqlite3.SQLITE_OPEN_READONLY | sqlite3.SQLITE_OPEN_URI)
	if write {
		flags = sqlite3.SQLITE_OPEN_READWRITE | sqlite3.SQLITE_OPEN_URI
	}
	curi, err := libc.CString(uri)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, curi)
	pdb := c.tls.Alloc(8)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, curi, pdb, flags, 0)
	c.db = *(*uintptr)(cptr(pdb))
	c.tls.Free(8)
	if rc != sqlite3.SQLITE_OK {
		err := c.errorf(rc, "open")
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, 10000)
	if write {
		// The server's own settings (server.go); no mmap, as below.
		sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
		if err := c.exec("PRAGMA synchronous=" + sqliteSyncMode() + "; PRAGMA mmap_size=0"); err != nil {
			c.close()
			return nil, err
		}
		return c, nil
	}
	// query_only: this connection never writes. No mmap: it made a lookup
	// of a 44 KB page 30% cheaper when the file does not change, but
	// while a crawl writes, the file grows between two lookups and SQLite
	// unmaps and maps it again at every read transaction: measured in
	// make bench's cold crawl of 1000 pages, munmap took 10% of the
	// process's CPU and the crawl's CPU per page fell from 4.1 to 3.4 ms
	// without it.
	if err := c.exec("PRAGMA query_only=1; PRAGMA mmap_size=0"); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *rawConn) errorf(rc int32, op string) error {
	msg := "unknown error"
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
	}
	return &sqliteError{op: op, msg: msg, code: int(rc)}
}

func (c *rawConn) exec(q string) error {
	cq, err := libc.CString(q)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, cq)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, cq, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.errorf(rc, q)
	}
	return nil
}

func (c *rawConn) prepare(q string) (uintptr, error) {
	cq, err := libc.CString(q)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, cq)
	pp := c.tls.Alloc(8)
	defer c.tls.Free(8)
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, cq, -1, pp, 0); rc != sqlite3.SQLITE_OK {
		return 0, c.errorf(rc, "prepare")
	}
	return *(*uintptr)(cptr(pp)), nil
}

// maxKeptBind bounds the C buffer a connection keeps for bound texts
// between two statements: a write connection binds whole documents (up to
// 16 MiB), which SQLite copies (SQLITE_TRANSIENT), so a larger buffer is
// freed once bound rather than held for the life of the connection.
const maxKeptBind = 1 << 20

// bind binds the texts to the parameters of stmt, from ?1 on.
func (c *rawConn) bind(stmt uintptr, texts ...string) error {
	defer func() {
		if c.cap > maxKeptBind {
			libc.Xfree(c.tls, c.buf)
			c.buf, c.cap = 0, 0
		}
	}()
	for i, s := range texts {
		if len(s) > c.cap {
			p := libc.Xrealloc(c.tls, c.buf, types.Size_t(len(s)))
			if p == 0 {
				return fmt.Errorf("bind: out of memory")
			}
			c.buf, c.cap = p, len(s)
		}
		if len(s) > 0 {
			copy(unsafe.Slice((*byte)(cptr(c.buf)), len(s)), s)
		}
		if rc := sqlite3.Xsqlite3_bind_text(c.tls, stmt, int32(i+1), c.buf, int32(len(s)), sqliteTransient); rc != sqlite3.SQLITE_OK {
			return c.errorf(rc, "bind")
		}
	}
	return nil
}

// find runs the lookup of the _id whose JSON text is key in table, which
// collection coll maps to. It returns the document as BSON, nil when there
// is none, or errMappingChanged.
func (c *rawConn) find(table, key, coll string) (bson.Raw, error) {
	stmt := c.stmts[table]
	if stmt == 0 {
		var err error
		if stmt, err = c.prepare(lookupQuery(table)); err != nil {
			return nil, err
		}
		c.stmts[table] = stmt
	}
	defer func() {
		if stmt != 0 {
			sqlite3.Xsqlite3_reset(c.tls, stmt)
		}
	}()
	if err := c.bind(stmt, key, coll, table); err != nil {
		return nil, err
	}
	switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
	case sqlite3.SQLITE_ROW:
		if sqlite3.Xsqlite3_column_type(c.tls, stmt, 0) == sqlite3.SQLITE_NULL {
			return nil, nil
		}
		p := sqlite3.Xsqlite3_column_blob(c.tls, stmt, 0)
		n := int(sqlite3.Xsqlite3_column_bytes(c.tls, stmt, 0))
		var text string
		if p != 0 && n > 0 {
			// Valid until the reset: decoded before it, never kept.
			text = unsafe.String((*byte)(cptr(p)), n)
		}
		return appendSJSON(make([]byte, 0, n+64), text)
	case sqlite3.SQLITE_DONE:
		return nil, errMappingChanged
	default:
		err := c.errorf(rc, "find")
		// A statement whose table is gone fails for good: prepare anew.
		sqlite3.Xsqlite3_reset(c.tls, stmt)
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
		delete(c.stmts, table)
		stmt = 0
		return nil, err
	}
}

// collections maps every collection of the database to its table. A
// database file FerretDB is still creating has none.
func (c *rawConn) collections() (map[string]string, error) {
	list, err := c.prepared(collectionListQuery)
	if err != nil {
		if isNoSuchTable(err) {
			return map[string]string{}, nil
		}
		return nil, err
	}
	defer sqlite3.Xsqlite3_reset(c.tls, list)
	names := map[string]string{}
	for {
		switch rc := sqlite3.Xsqlite3_step(c.tls, list); rc {
		case sqlite3.SQLITE_ROW:
			names[libc.GoString(sqlite3.Xsqlite3_column_text(c.tls, list, 0))] =
				libc.GoString(sqlite3.Xsqlite3_column_text(c.tls, list, 1))
		case sqlite3.SQLITE_DONE:
			return names, nil
		default:
			return nil, c.errorf(rc, "list collections")
		}
	}
}

func (c *rawConn) close() {
	for _, stmt := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
	}
	for _, stmt := range c.byText {
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
	}
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
	}
	if c.walLen != 0 {
		libc.Xfree(c.tls, c.walLen)
	}
	c.tls.Close()
}

// prepared returns q prepared, preparing it on first use: modernc.org/
// sqlite's driver prepares a statement again on every execution, which
// was a tenth of the CPU of a re-crawl answered by 304s.
func (c *rawConn) prepared(q string) (uintptr, error) {
	if stmt := c.byText[q]; stmt != 0 {
		return stmt, nil
	}
	stmt, err := c.prepare(q)
	if err != nil {
		return 0, err
	}
	c.byText[q] = stmt
	return stmt, nil
}

// forget finalizes q's statement after it failed in a way that may last
// (a table dropped since it was prepared): the next run prepares it anew.
func (c *rawConn) forget(q string) {
	if stmt := c.byText[q]; stmt != 0 {
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
		delete(c.byText, q)
	}
}

// stepOnce prepares q (once), binds the texts to ?1, ?2... and steps it
// once. It returns the statement, which the caller resets (or hands to
// failed), and SQLite's result code.
func (c *rawConn) stepOnce(q string, texts ...string) (stmt uintptr, rc int32, err error) {
	if stmt, err = c.prepared(q); err != nil {
		return 0, 0, err
	}
	if err := c.bind(stmt, texts...); err != nil {
		sqlite3.Xsqlite3_reset(c.tls, stmt)
		return 0, 0, err
	}
	return stmt, sqlite3.Xsqlite3_step(c.tls, stmt), nil
}

// failed returns the error of q's step that answered rc, resets its
// statement, and forgets it unless a constraint failed (a duplicate _id:
// the statement is fine).
func (c *rawConn) failed(stmt uintptr, q string, rc int32) error {
	err := c.errorf(rc, q)
	sqlite3.Xsqlite3_reset(c.tls, stmt)
	if rc&0xff != sqlite3.SQLITE_CONSTRAINT {
		c.forget(q)
	}
	return err
}

// run runs q, a statement without results, with the texts bound to ?1,
// ?2...; it returns the number of rows it changed.
func (c *rawConn) run(q string, texts ...string) (int64, error) {
	stmt, rc, err := c.stepOnce(q, texts...)
	if err != nil {
		return 0, err
	}
	if rc != sqlite3.SQLITE_DONE {
		return 0, c.failed(stmt, q, rc)
	}
	sqlite3.Xsqlite3_reset(c.tls, stmt)
	return int64(sqlite3.Xsqlite3_changes(c.tls, c.db)), nil
}

// queryInt runs q, a query of one integer, with the texts bound to ?1,
// ?2...
func (c *rawConn) queryInt(q string, texts ...string) (int64, error) {
	stmt, rc, err := c.stepOnce(q, texts...)
	if err != nil {
		return 0, err
	}
	switch rc {
	case sqlite3.SQLITE_ROW:
		n := sqlite3.Xsqlite3_column_int64(c.tls, stmt, 0)
		sqlite3.Xsqlite3_reset(c.tls, stmt)
		return n, nil
	case sqlite3.SQLITE_DONE:
		sqlite3.Xsqlite3_reset(c.tls, stmt)
		return 0, fmt.Errorf("%s: no row", q)
	default:
		return 0, c.failed(stmt, q, rc)
	}
}

// transaction runs f in a write transaction on c, which takes the write
// lock before anything is read (BEGIN IMMEDIATE), and commits it when f
// returns nil; otherwise, or when the commit fails, nothing of it stays.
func (c *rawConn) transaction(f func() error) error {
	if _, err := c.run("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err := f()
	if err == nil {
		_, err = c.run("COMMIT")
	}
	if sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0 {
		_, _ = c.run("ROLLBACK")
	}
	return err
}

// interruptOnDone interrupts c's statement under way when ctx ends,
// until the returned stop is called. stop waits for an interrupt that
// already began, so that none lands on a later statement, and reports
// whether there was one: the statement's error is then ctx's.
func (c *rawConn) interruptOnDone(ctx context.Context) (stop func() (interrupted bool)) {
	if ctx.Done() == nil {
		return func() bool { return false }
	}
	fired := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		sqlite3.Xsqlite3_interrupt(c.tls, c.db)
		close(fired)
	})
	return func() bool {
		if cancel() {
			return false
		}
		<-fired
		return true
	}
}
