package store

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	sqlite3 "modernc.org/sqlite/lib"
)

// ScanIDPrefix calls fn with every document of collection coll of database
// db whose string _id starts with prefix, in _id order, and stops at fn's
// first error, which it returns. The embedded server scans and decodes the
// whole collection for any filter but _id equality; this reads only the
// matching rows, through the _id index (see idindex.go), so a scan of one
// run's documents costs what the run holds, not what the collection holds.
// A missing database or collection has no documents. prefix may hold only
// ASCII letters, digits and . _ - : / # (so that its JSON text is itself);
// any other prefix is an error. The rows are read in one read transaction,
// so fn sees one state of the collection; fn must not use the store.
func (d *Direct) ScanIDPrefix(ctx context.Context, db, coll, prefix string, fn func(bson.Raw) error) error {
	if err := checkIDPrefix(prefix); err != nil {
		return fmt.Errorf("scan %s.%s by _id prefix: %w", db, coll, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ddb, err := d.database(db)
	if errors.Is(err, mongo.ErrNoDocuments) || (ddb == nil && err == nil) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := ddb.get(ctx)
	if err != nil {
		return err
	}
	defer ddb.put(c)
	names, err := c.collections()
	if err != nil {
		return fmt.Errorf("list collections in %s: %w", ddb.file, err)
	}
	table, ok := names[coll]
	if !ok {
		return nil
	}
	// The JSON text of a string _id starts with a quote; every _id with the
	// prefix sorts between "prefix and the prefix with its last byte
	// raised by one.
	lo := `"` + prefix
	hi := lo[:len(lo)-1] + string(lo[len(lo)-1]+1)
	if err := c.scanRange(ctx, table, lo, hi, fn); err != nil {
		return fmt.Errorf("scan %s.%s by _id prefix %q: %w", db, coll, prefix, err)
	}
	return nil
}

// scanRange calls fn with the documents of table whose _id JSON text is in
// [lo, hi), in that order.
func (c *rawConn) scanRange(ctx context.Context, table, lo, hi string, fn func(bson.Raw) error) error {
	stmt, err := c.prepare(`SELECT CAST(` + ferretDocColumn + ` AS BLOB) FROM ` + quoteIdent(table) +
		` WHERE ` + idIndexExpr + ` >= ?1 AND ` + idIndexExpr + ` < ?2 ORDER BY ` + idIndexExpr)
	if err != nil {
		return err
	}
	defer sqlite3.Xsqlite3_finalize(c.tls, stmt)
	if err := c.bind(stmt, lo, hi); err != nil {
		return err
	}
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
		case sqlite3.SQLITE_ROW:
			p := sqlite3.Xsqlite3_column_blob(c.tls, stmt, 0)
			size := int(sqlite3.Xsqlite3_column_bytes(c.tls, stmt, 0))
			var text string
			if p != 0 && size > 0 {
				text = unsafe.String((*byte)(cptr(p)), size) // valid until the next step: decoded now
			}
			doc, err := appendSJSON(make([]byte, 0, size+64), text)
			if err != nil {
				return fmt.Errorf("decode a document of %s: %w", table, err)
			}
			if err := fn(doc); err != nil {
				return err
			}
		case sqlite3.SQLITE_DONE:
			return nil
		default:
			return c.errorf(rc, "scan")
		}
	}
}

// checkIDPrefix refuses an _id prefix whose JSON text is not itself (the
// direct scan compares JSON texts): only ASCII letters, digits and
// . _ - : / # are supported.
func checkIDPrefix(prefix string) error {
	for i := 0; i < len(prefix); i++ {
		ch := prefix[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '.' || ch == '_' || ch == '-' || ch == ':' || ch == '/' || ch == '#'
		if !ok {
			return fmt.Errorf("_id prefix %q: only letters, digits and . _ - : / # are supported", prefix)
		}
	}
	return nil
}
