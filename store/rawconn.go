package store

// This file drives SQLite through the C API that modernc.org/sqlite
// transpiles to Go, for Direct's reads (direct.go).

import (
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
	list  uintptr            // the collection list statement
	buf   uintptr            // C memory for bound parameters
	cap   int
	// beginStmt and commitStmt start and end a read transaction
	// (directmany.go).
	beginStmt, commitStmt uintptr
}

// sqliteTransient tells sqlite3_bind_text to copy the value
// (SQLITE_TRANSIENT).
const sqliteTransient = ^uintptr(0)

// cptr converts an address in C memory (SQLite's, or libc's heap) to a
// pointer; the Go collector ignores such pointers.
func cptr(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

func openRawConn(uri string) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS(), stmts: map[string]uintptr{}}
	curi, err := libc.CString(uri)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, curi)
	pdb := c.tls.Alloc(8)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, curi, pdb, sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_URI, 0)
	c.db = *(*uintptr)(cptr(pdb))
	c.tls.Free(8)
	if rc != sqlite3.SQLITE_OK {
		err := c.errorf(rc, "open")
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, 10000)
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
	return fmt.Errorf("%s: %s (%d)", op, msg, rc)
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

// bind binds the texts to the parameters of stmt, from ?1 on.
func (c *rawConn) bind(stmt uintptr, texts ...string) error {
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
	if c.list == 0 {
		stmt, err := c.prepare(collectionListQuery)
		if err != nil {
			if isNoSuchTable(err) {
				return map[string]string{}, nil
			}
			return nil, err
		}
		c.list = stmt
	}
	defer sqlite3.Xsqlite3_reset(c.tls, c.list)
	names := map[string]string{}
	for {
		switch rc := sqlite3.Xsqlite3_step(c.tls, c.list); rc {
		case sqlite3.SQLITE_ROW:
			names[libc.GoString(sqlite3.Xsqlite3_column_text(c.tls, c.list, 0))] =
				libc.GoString(sqlite3.Xsqlite3_column_text(c.tls, c.list, 1))
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
	for _, stmt := range []uintptr{c.list, c.beginStmt, c.commitStmt} {
		if stmt != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, stmt)
		}
	}
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
	}
	c.tls.Close()
}
