package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Everything the direct path (direct.go, directwrite.go, rawconn.go,
// idindex.go) knows of FerretDB's SQLite files is named here: the files,
// tables and columns of FerretDB v1.24.2's SQLite backend
// (internal/backends/sqlite/metadata), and the build the direct path was
// written and measured for. selfCheck compares the running build and a
// data directory with them at start-up; when anything differs, the store
// leaves FerretDB's files to FerretDB and everything goes through the
// server (slower, never wrong).

const (
	// ferretModule and ferretVersion are the FerretDB build the direct
	// path was written for. FerretDB v2 dropped SQLite: v1.24.2 is the
	// last that has it.
	ferretModule  = "github.com/FerretDB/FerretDB"
	ferretVersion = "v1.24.2"

	// ferretSQLiteVersion is the SQLite library (modernc.org/sqlite
	// v1.32, on modernc.org/libc v1.55.3, which rawconn.go drives
	// through its C API) of that build.
	ferretSQLiteVersion = "3.46.0"

	// ferretFileExt ends the name of each database's file: "<db>.sqlite".
	ferretFileExt = ".sqlite"

	// ferretMetadataTable maps each collection of a database file to its
	// table: columns name, table_name, settings.
	ferretMetadataTable = "_ferretdb_collections"

	// ferretDocColumn holds a document, in FerretDB's JSON ("sjson").
	ferretDocColumn = "_ferretdb_sjson"

	// ferretRecordIDColumn exists in the tables of capped collections only.
	ferretRecordIDColumn = "_ferretdb_record_id"

	// ferretIDIndexSuffix names a table's unique _id index: the table's
	// name, "_", then MongoDB's index name "_id_".
	ferretIDIndexSuffix = "__id_"

	// idIndexExpr is the expression by which FerretDB looks documents up
	// by _id (metadata.IDColumn), compared with the JSON text of the _id.
	idIndexExpr = ferretDocColumn + `->'$._id'`
)

// The statements by which FerretDB v1.24.2 creates its tables
// (metadata/registry.go), as SQLite keeps them in sqlite_master.
const (
	ferretMetadataDDL = `CREATE TABLE "` + ferretMetadataTable + `" (` +
		`name TEXT NOT NULL UNIQUE CHECK(name != ''), ` +
		`table_name TEXT NOT NULL UNIQUE CHECK(table_name != ''), ` +
		`settings TEXT NOT NULL CHECK(settings != '')) STRICT`
	ferretTableDDL       = `(` + ferretDocColumn + ` TEXT NOT NULL CHECK(` + ferretDocColumn + ` != '')) STRICT`
	ferretCappedTableDDL = `(` + ferretRecordIDColumn + ` INTEGER PRIMARY KEY, ` +
		ferretDocColumn + ` TEXT NOT NULL CHECK(` + ferretDocColumn + ` != '')) STRICT`
)

// ferretFile is the file of database name in dir.
func ferretFile(dir, name string) string { return filepath.Join(dir, name+ferretFileExt) }

// isNoSuchTable reports SQLite's "no such table": a table dropped since its
// name was read, or a database file FerretDB is still creating (no
// metadata table yet). SQLite gives it no code of its own (SQLITE_ERROR),
// so the message is matched, here only.
func isNoSuchTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// errFerretMismatch is wrapped by selfCheck's errors.
var errFerretMismatch = errors.New("not the FerretDB files the direct path was written for")

// ferretBuild is what selfCheck compares with the expected build.
type ferretBuild struct {
	FerretDB string // module version; "" when the binary does not say (test binaries)
	SQLite   string // sqlite_version()
}

// runningFerretBuild reads the build of this binary. Tests replace it.
var runningFerretBuild = func(ctx context.Context) (ferretBuild, error) {
	var b ferretBuild
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == ferretModule {
				b.FerretDB = m.Version
				if m.Replace != nil {
					b.FerretDB = m.Replace.Path + "@" + m.Replace.Version
				}
			}
		}
	}
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		return b, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&b.SQLite)
	return b, err
}

// selfCheck reports (wrapping errFerretMismatch) why the direct path must
// not touch the files in dir: the running FerretDB or SQLite build is not
// the one it was written for, or a database file's tables are not laid
// out as that build lays them out. It reads only.
func selfCheck(ctx context.Context, dir string) error {
	b, err := runningFerretBuild(ctx)
	if err != nil {
		return fmt.Errorf("%w: read the SQLite version: %v", errFerretMismatch, err)
	}
	if b.FerretDB != "" && b.FerretDB != ferretVersion {
		return fmt.Errorf("%w: FerretDB %s, written for %s", errFerretMismatch, b.FerretDB, ferretVersion)
	}
	if b.SQLite != ferretSQLiteVersion {
		return fmt.Errorf("%w: SQLite %s, written for %s", errFerretMismatch, b.SQLite, ferretSQLiteVersion)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"+ferretFileExt))
	if err != nil {
		return err
	}
	for _, file := range files {
		if err := checkFerretFile(ctx, file); err != nil {
			return fmt.Errorf("%w: %s: %v", errFerretMismatch, filepath.Base(file), err)
		}
	}
	return nil
}

// checkFerretFile compares the tables of one database file with FerretDB's.
func checkFerretFile(ctx context.Context, file string) error {
	if info, err := os.Stat(file); err != nil || info.Size() == 0 {
		return nil // created, not written yet: FerretDB will lay it out
	}
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var meta string
	err = db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, ferretMetadataTable).Scan(&meta)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no table %s", ferretMetadataTable)
	}
	if err != nil {
		return err
	}
	if meta != ferretMetadataDDL {
		return fmt.Errorf("table %s is %s", ferretMetadataTable, meta)
	}
	rows, err := db.QueryContext(ctx, `SELECT c.name, c.table_name, m.sql FROM "`+ferretMetadataTable+`" c`+
		` LEFT JOIN sqlite_master m ON m.type = 'table' AND m.name = c.table_name`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var coll, table string
		var ddl sql.NullString
		if err := rows.Scan(&coll, &table, &ddl); err != nil {
			return err
		}
		head := `CREATE TABLE ` + quoteIdent(table) + ` `
		if body, ok := strings.CutPrefix(ddl.String, head); !ok || body != ferretTableDDL && body != ferretCappedTableDDL {
			return fmt.Errorf("collection %s: table %s is %q", coll, table, ddl.String)
		}
	}
	return rows.Err()
}
