package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver FerretDB also uses
)

// FerretDB v1.24.2's SQLite backend looks documents up by _id with
//
//	WHERE _ferretdb_sjson->'$._id' = ?
//
// but indexes _id as _ferretdb_sjson->"_id". SQLite matches index
// expressions by their text, so the unique index is never used: every find,
// update and delete by _id scans the table and parses every document's JSON
// until it meets the match (a miss reads them all). Measured here: a miss
// by _id over 300 documents of 40 KB took 44–60 ms instead of ~1 ms, and a
// cold crawl of 100 pages spent most of its time in these scans.
//
// idIndexer rebuilds FerretDB's unique _id index ("<table>__id_") on the
// expression its queries use, on every collection table of every database
// file in the data directory, and keeps doing so for tables created later.
// The index keeps its name, its uniqueness (FerretDB still turns a
// constraint violation into a duplicate-key error) and what listIndexes
// says of it; only the indexed expression's text changes. Rebuilding it
// rather than adding a second index matters: SQLite evaluates every index
// expression, parsing the stored JSON, on every insert, and a second _id
// index made inserts of 44 KB documents 3–7% slower (measured here:
// 400 sequential insertOne, 3.6–3.7 ms against 3.4–3.6 ms each). Data directories from earlier versions, which carry
// the extra "<table>_crawlcache_id" index, lose it on the next start.
type idIndexer struct {
	dir  string
	mu   sync.Mutex
	dbs  map[string]*sql.DB // by database file
	done map[string]bool    // "file/table" already indexed
}

func newIDIndexer(dir string) *idIndexer {
	return &idIndexer{dir: dir, dbs: map[string]*sql.DB{}, done: map[string]bool{}}
}

// ensure indexes every table not indexed yet.
func (x *idIndexer) ensure(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(x.dir, "*"+ferretFileExt))
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(files))
	for _, file := range files {
		present[file] = true
	}
	// Forget databases FerretDB dropped (their files are gone): a handle on
	// a deleted file only answers I/O errors.
	for file, db := range x.dbs {
		if !present[file] {
			_ = db.Close()
			delete(x.dbs, file)
			for key := range x.done {
				if strings.HasPrefix(key, file+"/") {
					delete(x.done, key)
				}
			}
		}
	}
	for _, file := range files {
		db := x.dbs[file]
		if db == nil {
			// BEGIN IMMEDIATE: a rebuild takes the write lock first,
			// waiting for it in the busy handler. A deferred transaction
			// that reads the schema and then writes fails at once with
			// SQLITE_BUSY when another connection committed meanwhile.
			db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)&_txlock=immediate")
			if err != nil {
				return fmt.Errorf("open %s: %w", file, err)
			}
			db.SetMaxOpenConns(1)
			x.dbs[file] = db
		}
		tables, err := collectionTables(ctx, db)
		if err != nil {
			// Dropped between the glob and the query, or replaced: reopen
			// next time.
			_ = db.Close()
			delete(x.dbs, file)
			if _, statErr := os.Stat(file); statErr != nil {
				continue
			}
			return fmt.Errorf("list collections of %s: %w", file, err)
		}
		for _, table := range tables {
			key := file + "/" + table
			if x.done[key] {
				continue
			}
			if err := rebuildIDIndex(ctx, db, table); err != nil {
				if isNoSuchTable(err) {
					continue // dropped meanwhile
				}
				return fmt.Errorf("index _id of table %s in %s: %w", table, file, err)
			}
			x.done[key] = true
		}
		if err := ensureFrontIndexes(ctx, db, file); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	return nil
}

// rebuildIDIndex makes table's unique _id index use idIndexExpr, in one
// transaction (a concurrent insert waits; uniqueness is never off), and
// drops the extra index earlier versions added. It does nothing when the
// index is already rebuilt.
func rebuildIDIndex(ctx context.Context, db *sql.DB, table string) error {
	name := table + ferretIDIndexSuffix
	var def sql.NullString
	err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&def)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil // FerretDB has not created it yet: next round
	case err != nil:
		return err
	}
	extra := table + "_crawlcache_id"
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, extra).Scan(&n); err != nil {
		return err
	}
	if strings.Contains(def.String, idIndexExpr) && n == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		fmt.Sprintf(`DROP INDEX IF EXISTS %q`, extra),
		fmt.Sprintf(`DROP INDEX %q`, name),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (%s)`, name, table, idIndexExpr),
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func collectionTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM `+ferretMetadataTable)
	if err != nil {
		if isNoSuchTable(err) {
			return nil, nil // a database file FerretDB is still creating
		}
		return nil, err
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, rows.Err()
}

// run re-checks every interval until ctx is done, for collections created
// while the server runs.
func (x *idIndexer) run(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.ensure(ctx); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}

func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, db := range x.dbs {
		_ = db.Close()
	}
	x.dbs = map[string]*sql.DB{}
}
