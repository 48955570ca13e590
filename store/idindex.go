package store

import (
	"context"
	"database/sql"
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
// idIndexer adds the index FerretDB's queries can use, on every collection
// table of every database file in the data directory, and keeps doing so
// for tables created later. FerretDB does not know about it (listIndexes
// does not show it); SQLite maintains it on every write and drops it with
// its table.
type idIndexer struct {
	dir  string
	mu   sync.Mutex
	dbs  map[string]*sql.DB // by database file
	done map[string]bool    // "file/table" already indexed
}

const idIndexExpr = `_ferretdb_sjson->'$._id'`

func newIDIndexer(dir string) *idIndexer {
	return &idIndexer{dir: dir, dbs: map[string]*sql.DB{}, done: map[string]bool{}}
}

// ensure indexes every table not indexed yet.
func (x *idIndexer) ensure(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
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
			db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
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
			q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+"_crawlcache_id", table, idIndexExpr)
			if _, err := db.ExecContext(ctx, q); err != nil {
				if strings.Contains(err.Error(), "no such table") {
					continue // dropped meanwhile
				}
				return fmt.Errorf("index _id of table %s in %s: %w", table, file, err)
			}
			x.done[key] = true
		}
	}
	return nil
}

func collectionTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
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
