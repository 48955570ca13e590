package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRawWriteErrors: the errors of Direct's write connection are the
// ones its callers tell apart: a duplicate _id (isUnique, which turns
// into a duplicate-key error), a full disk (IsFull, which stops a run
// with its message), a dropped table (isNoSuchTable, which makes a write
// look its collection up again), and a database file that is not
// there (never created: FerretDB creates them); a statement that failed runs again once
// the cause is gone, and a failed transaction leaves nothing.
func TestRawWriteErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "w.sqlite")
	if _, err := openRawConn("file:"+file, true); err == nil {
		t.Fatal("a write connection opened a file that is not there")
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil { // an empty database
		t.Fatal(err)
	}
	c, err := openRawConn("file:"+file, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, err := c.run(`CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run(`CREATE UNIQUE INDEX t_v ON t (v)`); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO t (v) VALUES (?1)`
	if n, err := c.run(insert, "a"); err != nil || n != 1 {
		t.Fatalf("insert: %d rows, %v", n, err)
	}
	_, err = c.run(insert, "a")
	if !isUnique(err) || IsFull(err) {
		t.Errorf("second insert of the same value: isUnique = %v, IsFull = %v (%v)", isUnique(err), IsFull(err), err)
	}
	if n, err := c.run(`UPDATE t SET v = ?1 WHERE v = ?2`, "b", "none"); err != nil || n != 0 {
		t.Errorf("update of no row: %d rows, %v", n, err)
	}

	// A transaction whose function fails leaves nothing.
	errFailing := errors.New("failing")
	err = c.transaction(func() error {
		if _, err := c.run(insert, "in a failed transaction"); err != nil {
			return err
		}
		return errFailing
	})
	if !errors.Is(err, errFailing) {
		t.Errorf("failed transaction: %v", err)
	}
	if n, err := c.queryInt(`SELECT count(*) FROM t`); err != nil || n != 1 {
		t.Errorf("after a failed transaction: %d rows, %v; want 1", n, err)
	}

	// A full disk: the database may not grow past its pages now.
	pages, err := c.queryInt(`PRAGMA page_count`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.queryInt(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	var fullErr error
	for i := range 100 {
		if _, fullErr = c.run(insert, strings.Repeat("x", 3000)+fmt.Sprint(i)); fullErr != nil {
			break
		}
	}
	if !IsFull(fullErr) || isUnique(fullErr) {
		t.Errorf("insert into a full database: IsFull = %v, isUnique = %v (%v)", IsFull(fullErr), isUnique(fullErr), fullErr)
	}
	if !IsFull(fmt.Errorf("insert into crawlcache.frontier_log: %w", fullErr)) {
		t.Errorf("IsFull does not see through wrapping: %v", fullErr)
	}
	// Room again: the same statement runs.
	if _, err := c.queryInt(`PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run(insert, strings.Repeat("x", 3000)); err != nil {
		t.Errorf("insert once there is room: %v", err)
	}

	// A text larger than the buffer a connection keeps is bound whole,
	// and the buffer is let go afterwards.
	big := strings.Repeat("y", 2*maxKeptBind)
	if _, err := c.run(insert, big); err != nil {
		t.Fatalf("insert of %d bytes: %v", len(big), err)
	}
	if n, err := c.queryInt(`SELECT length(v) FROM t WHERE v = ?1`, big); err != nil || n != int64(len(big)) {
		t.Errorf("stored %d bytes (%v); want %d", n, err, len(big))
	}
	if c.cap > maxKeptBind {
		t.Errorf("the connection keeps a bind buffer of %d bytes; want at most %d", c.cap, maxKeptBind)
	}

	// A dropped table: the statement fails as "no such table", then
	// runs again once the table is there.
	if _, err := c.run(`DROP TABLE t`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run(insert, "c"); !isNoSuchTable(err) {
		t.Errorf("insert into a dropped table: %v", err)
	}
	if _, err := c.run(`CREATE TABLE t (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	if n, err := c.run(insert, "c"); err != nil || n != 1 {
		t.Errorf("insert into the table made again: %d rows, %v", n, err)
	}
}
