package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Recovery is what Recover copied and lost.
type Recovery struct {
	// Out is the new data directory.
	Out string
	// Collections are the collections found, in file order.
	Collections []CollectionRecovery
	// Unreadable are the database files (or their collection lists) that
	// could not be read at all, with why.
	Unreadable []string
}

// Lost reports whether anything could not be copied.
func (r *Recovery) Lost() bool {
	if len(r.Unreadable) > 0 {
		return true
	}
	for _, c := range r.Collections {
		if len(c.Lost) > 0 || c.LostTail || c.Err != "" || c.LostRows() > 0 {
			return true
		}
	}
	return false
}

// CollectionRecovery is one collection's part of a Recovery.
type CollectionRecovery struct {
	Database, Collection string
	// Copied is the number of documents copied.
	Copied int64
	// Rows is the number of documents the table held, from SQLite's count
	// (it reads the _id index, which often survives damage to the table);
	// -1 when that count failed too.
	Rows int64
	// Lost are the SQLite row ranges that could not be read: each row is
	// one document, and rowids are mostly consecutive, so a range of n
	// rowids is at most n documents.
	Lost []RowRange
	// LostTail is true when nothing after the last range could be read:
	// the collection's remaining rows are lost, how many is unknown.
	LostTail bool
	// Err, if not empty, stopped the copy of the collection.
	Err string
}

// LostRows is the number of documents lost: Rows - Copied when the count
// worked, else an upper bound, the rowids in Lost (-1 when LostTail).
func (c CollectionRecovery) LostRows() int64 {
	if c.Rows >= 0 {
		return c.Rows - c.Copied
	}
	if c.LostTail {
		return -1
	}
	var n int64
	for _, r := range c.Lost {
		n += r.To - r.From + 1
	}
	return n
}

// RowRange is the SQLite rowids From through To.
type RowRange struct{ From, To int64 }

// recoverBatch is how many documents one insertMany into the new
// directory carries.
const recoverBatch = 200

// Recover copies every document that can still be read from the data
// directory dir (damaged, typically) into a new data directory out, and
// says what it could not read. It reads dir's SQLite files row by row
// without changing them, skipping past damaged pages, and writes through a
// new embedded server on out, so that out is a data directory like any
// other; crawlcache recreates its own indexes there on first use. out must
// not exist or be empty. It returns a *BusyError when a process serves
// dir.
func Recover(ctx context.Context, dir, out string, logger *slog.Logger) (*Recovery, error) {
	if logger == nil {
		logger = slog.Default()
	}
	files, err := DataFiles(dir)
	if err != nil {
		return nil, err
	}
	absDir, err1 := filepath.Abs(dir)
	absOut, err2 := filepath.Abs(out)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(absDir, absOut); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return nil, fmt.Errorf("recover into %s: it is inside the damaged data directory %s, which recover never changes; name a directory outside it", out, dir)
	}
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("recover into %s: the directory is not empty; name a new one", out)
	}
	lock, err := lockDir(dir, false)
	if err != nil {
		return nil, err
	}
	defer unlock(lock)
	dst, err := Open(ctx, Options{DataDir: out, Logger: logger, Command: "db recover"})
	if err != nil {
		return nil, fmt.Errorf("recover into %s: %w", out, err)
	}
	defer dst.Close(context.WithoutCancel(ctx))
	rec := &Recovery{Out: out}
	for _, f := range files {
		if err := recoverFile(ctx, f, dst.client.Database(f.Database), rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// recoverFile copies the collections of one database file. It returns an
// error only when writing to the new directory fails.
func recoverFile(ctx context.Context, f DataFile, to *mongo.Database, rec *Recovery) error {
	db, closeDB, err := openSnapshot(f)
	if err != nil {
		rec.Unreadable = append(rec.Unreadable, fmt.Sprintf("%s: %v", f.Name, err))
		return nil
	}
	defer closeDB()
	tables, err := recoverTables(ctx, db)
	if err != nil {
		rec.Unreadable = append(rec.Unreadable, fmt.Sprintf("%s: %v", f.Name, err))
		return nil
	}
	for _, t := range tables {
		cr := CollectionRecovery{Database: f.Database, Collection: t.coll, Rows: -1}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(t.table)).Scan(&cr.Rows); err != nil {
			cr.Rows = -1
		}
		err := copyRows(ctx, db, t.table, to.Collection(t.coll), &cr)
		rec.Collections = append(rec.Collections, cr)
		if err != nil {
			return err
		}
	}
	return nil
}

type collTable struct{ coll, table string }

// recoverTables lists a file's collections and their tables from
// FerretDB's catalogue, or, when that is damaged, every table that is not
// FerretDB's or SQLite's own, named after the table (FerretDB lower-cases
// and shortens some names: a collection may then come back renamed).
func recoverTables(ctx context.Context, db *sql.DB) ([]collTable, error) {
	var out []collTable
	// No ORDER BY: it would read the name index, one more page that can
	// be damaged.
	rows, err := db.QueryContext(ctx, collectionListQuery)
	if err == nil {
		for rows.Next() {
			var t collTable
			if err = rows.Scan(&t.coll, &t.table); err != nil {
				break
			}
			out = append(out, t)
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
		if err == nil {
			sort.Slice(out, func(i, j int) bool { return out[i].coll < out[j].coll })
			return out, nil
		}
	}
	out = nil
	rows, lerr := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\_ferretdb\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if lerr != nil {
		return nil, fmt.Errorf("list collections: %v; list tables: %v", err, lerr)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables: %v", err)
		}
		// FerretDB names a table after its collection plus "_" and 8 hex
		// digits of a hash.
		coll := name
		if i := strings.LastIndexByte(name, '_'); i > 0 && len(name)-i == 9 {
			coll = name[:i]
		}
		out = append(out, collTable{coll: coll, table: name})
	}
	return out, rows.Err()
}

// copyRows copies the documents of table in rowid order into coll,
// batch by batch; an unreadable stretch of rows is skipped (see skip) and
// recorded in cr.Lost. It returns an error only when coll refuses a write.
func copyRows(ctx context.Context, db *sql.DB, table string, coll *mongo.Collection, cr *CollectionRecovery) error {
	q := `SELECT rowid, CAST(` + ferretDocColumn + ` AS BLOB) FROM ` + quoteIdent(table) + ` WHERE rowid > ? ORDER BY rowid LIMIT ?`
	var batch []any
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
		if err != nil && !onlyDuplicateKeys(err) {
			return fmt.Errorf("recover %s.%s: write: %w", cr.Database, cr.Collection, err)
		}
		cr.Copied += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	last := int64(0)
	for {
		n, bad, err := readRows(ctx, db, q, last, recoverBatch, func(rowid int64, doc bson.Raw) {
			batch = append(batch, doc)
			last = rowid
		})
		if ferr := flush(); ferr != nil {
			return ferr
		}
		switch {
		case err != nil && !IsCorrupt(err):
			cr.Err = err.Error()
			return nil
		case err != nil:
			next, ok := skip(ctx, db, q, last)
			if !ok {
				cr.LostTail = true
				return nil
			}
			cr.Lost = append(cr.Lost, RowRange{last + 1, next})
			last = next
		case bad >= 0: // one row whose document did not decode
			cr.Lost = append(cr.Lost, RowRange{bad, bad})
			last = bad
		case n < recoverBatch:
			return nil
		}
	}
}

// readRows runs q from rowid last, calls fn for each row whose document
// decodes, and returns the rows it read, the rowid of a row whose document
// did not decode (it stops there; -1 if none), and the error that stopped
// the read.
func readRows(ctx context.Context, db *sql.DB, q string, last int64, limit int, fn func(int64, bson.Raw)) (n int, bad int64, err error) {
	rows, err := db.QueryContext(ctx, q, last, limit)
	if err != nil {
		return 0, -1, err
	}
	defer rows.Close()
	for rows.Next() {
		var rowid int64
		var text []byte
		if err := rows.Scan(&rowid, &text); err != nil {
			return n, -1, err
		}
		doc, err := appendSJSON(nil, string(text))
		if err != nil {
			return n, rowid, nil
		}
		fn(rowid, doc)
		n++
	}
	return n, -1, rows.Err()
}

// skip returns the smallest rowid g > last from which rows can be read
// again (the first row after g reads), found by doubling then bisecting:
// the rows in (last, g] are lost. It returns false when nothing after last
// can be read (the damage is on the way to every later row).
func skip(ctx context.Context, db *sql.DB, q string, last int64) (int64, bool) {
	readsFrom := func(g int64) bool {
		_, bad, err := readRows(ctx, db, q, g, 1, func(int64, bson.Raw) {})
		return err == nil && bad < 0
	}
	lo, step := last, int64(1)
	hi := last + step
	for !readsFrom(hi) {
		lo = hi
		if step > 1<<40 {
			return 0, false
		}
		step *= 2
		hi = last + step
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if readsFrom(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

// onlyDuplicateKeys reports whether err is a bulk write error made only of
// duplicate keys (a document already copied).
func onlyDuplicateKeys(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// String is a report of the recovery for people.
func (r *Recovery) String() string {
	var b strings.Builder
	for _, c := range r.Collections {
		fmt.Fprintf(&b, "%s.%s: %d documents copied", c.Database, c.Collection, c.Copied)
		if c.Rows >= 0 {
			fmt.Fprintf(&b, " of %d", c.Rows)
		}
		var where []string
		for _, l := range c.Lost {
			where = append(where, fmt.Sprintf("rows %d-%d", l.From, l.To))
		}
		if c.LostTail {
			where = append(where, "every row after the last copied")
		}
		switch n := c.LostRows(); {
		case len(where) == 0 && n <= 0:
		case n >= 0:
			fmt.Fprintf(&b, ", %d LOST (unreadable: %s)", n, strings.Join(where, ", "))
		default:
			fmt.Fprintf(&b, ", LOST: an unknown number (unreadable: %s)", strings.Join(where, ", "))
		}
		if c.Err != "" {
			fmt.Fprintf(&b, ", copy stopped: %s", c.Err)
		}
		b.WriteString("\n")
	}
	for _, u := range r.Unreadable {
		fmt.Fprintf(&b, "unreadable: %s\n", u)
	}
	return b.String()
}
