package store

import (
	"context"
	"errors"
)

// Direct's writes are small and many (a page of a re-crawl writes its
// revalidation, its summary, its change record and its frontier state),
// and each paid for a transaction of its own: BEGIN, the statement
// prepared again, COMMIT with its WAL write and lock traffic, and a wait
// for the one write connection of its database file. Writes that arrive
// while a transaction runs now queue and go out together in the next one
// (group commit). Each caller still returns only once the transaction
// holding its write has committed, so a write is exactly as durable when
// its call returns as before: a frontier acknowledgement written after a
// cache entry still finds the entry committed. An idle store adds no
// delay: a write that finds no transaction running starts one at once.
//
// When any write of a group fails (a cancelled context, a table dropped
// meanwhile, a full disk), the group's transaction is rolled back and
// each of its writes runs again in a transaction of its own, so one bad
// write never fails or half-applies another.

// writeFunc is one write: statements run on tx against coll's table. It
// may run more than once (a retry, or alone after its group failed), so
// it must start from scratch each time.
type writeFunc func(tx *writeTx, table string) error

// maxGroup bounds the writes of one transaction, so other writers of the
// file (the server itself) wait for the write lock a bounded time.
const maxGroup = 128

// errTableUnknown fails a group whose write names a collection whose
// table is not known (any more): the write then runs alone, which reads
// the collection list.
var errTableUnknown = errors.New("collection table not known")

// writeReq is one queued write and where its outcome goes.
type writeReq struct {
	ctx  context.Context
	coll string
	f    writeFunc
	done chan error
}

// writeTx is the transaction a writeFunc runs in.
type writeTx struct {
	conn *rawConn
	w    *writeDB
}

// exec runs q with args bound to ?1, ?2... in the transaction and returns
// the number of rows it changed.
func (t *writeTx) exec(q string, args ...string) (int64, error) {
	return t.conn.run(q, args...)
}

// The statements Direct writes a table with. Arguments: the document's
// sjson (insert; update ?1) and the JSON of its _id (update ?2, delete).
func insertSQL(table string) string {
	return `INSERT INTO ` + quoteIdent(table) + ` (` + ferretDocColumn + `) VALUES (?)`
}

func updateSQL(table string) string {
	return `UPDATE ` + quoteIdent(table) + ` SET ` + ferretDocColumn + ` = ?1 WHERE ` + idIndexExpr + ` = ?2`
}

func deleteSQL(table string) string {
	return `DELETE FROM ` + quoteIdent(table) + ` WHERE ` + idIndexExpr + ` = ?`
}

// submit queues f on coll and waits for the transaction that runs it.
func (w *writeDB) submit(ctx context.Context, coll string, f writeFunc) error {
	r := &writeReq{ctx: ctx, coll: coll, f: f, done: make(chan error, 1)}
	w.group.Add(r)
	return <-r.done
}

// commitGroup runs batch in one transaction and answers each write; if
// anything fails, every write of the batch runs again alone.
func (w *writeDB) commitGroup(batch []*writeReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.done <- w.writeAlone(r.ctx, r.coll, r.f)
		return
	}
	if err := w.tryGroup(batch); err != nil {
		for _, r := range batch {
			r.done <- w.writeAlone(r.ctx, r.coll, r.f)
		}
		return
	}
	for _, r := range batch {
		r.done <- nil
	}
}

// tryGroup runs every write of batch in one transaction and commits it;
// on any error nothing of it is committed.
func (w *writeDB) tryGroup(batch []*writeReq) error {
	// No caller's context interrupts it: one caller giving up must not
	// roll back the others' writes (a write whose context ended fails
	// its group, then fails alone).
	return w.withConn(func(c *rawConn) error {
		return w.transaction(c, func() error {
			for _, r := range batch {
				if err := r.ctx.Err(); err != nil {
					return err
				}
				// Only a table already known: looking one up needs the
				// connection this transaction holds.
				table, ok := w.knownTable(r.coll)
				if !ok {
					return errTableUnknown
				}
				// A failed statement may have ended the transaction
				// (SQLite rolls back on some errors): stop at the first.
				if err := r.f(&writeTx{conn: c, w: w}, table); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
