package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// This file runs the front's plans (frontplan.go) on FerretDB's SQLite
// files, read-only, and keeps the indexes the plans use on FerretDB's
// tables.

// frontMaxResult bounds the bytes of documents one answer may hold in
// memory (its cursor keeps them); a larger result is left to FerretDB.
const frontMaxResult = 64 << 20

// frontFiles opens the database files the front reads, read-only.
type frontFiles struct {
	dir string

	mu     sync.Mutex
	dbs    map[string]*frontFile // by database name
	closed bool
}

type frontFile struct {
	db   *sql.DB
	info os.FileInfo
}

// open returns the handle of database name's file, reopening it when
// FerretDB replaced the file; fs.ErrNotExist when there is none.
func (ff *frontFiles) open(name string) (*sql.DB, error) {
	if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return nil, fs.ErrNotExist
	}
	file := ferretFile(ff.dir, name)
	info, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.closed {
		return nil, ErrClosed
	}
	if cur := ff.dbs[name]; cur != nil {
		if os.SameFile(cur.info, info) {
			return cur.db, nil
		}
		_ = cur.db.Close()
		delete(ff.dbs, name)
	}
	uri := "file:" + (&url.URL{Path: file}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(directMaxConns)
	ff.dbs[name] = &frontFile{db: db, info: info}
	return db, nil
}

func (ff *frontFiles) close() {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.closed = true
	for name, f := range ff.dbs {
		_ = f.db.Close()
		delete(ff.dbs, name)
	}
}

// frontQuery is what to read: a plan on a collection, with skip and limit
// (0: none), or the groups of a field's values (group set).
type frontQuery struct {
	coll        *frontCollection
	plan        *frontPlan
	skip, limit int64
	group       *frontGroup
}

// frontGroup is a $group by a front field counting documents: {_id:
// "$field", <count>: {$sum: 1}}.
type frontGroup struct {
	field frontField
	count string
}

// run reads the documents q selects, as BSON, in one read transaction:
// the table FerretDB keeps the collection in, the type check of the
// fields the plan reads, then the rows. It returns errFrontUnsupported
// when FerretDB must answer instead (no such collection or file, a capped
// collection, a field holding another type, a result too large).
func (ff *frontFiles) run(ctx context.Context, q frontQuery, count bool) (docs [][]byte, n int64, err error) {
	db, err := ff.open(q.coll.db)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, errFrontUnsupported
	}
	if err != nil {
		return nil, 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	table, err := frontTable(ctx, tx, q.coll.name)
	if err != nil {
		return nil, 0, err
	}
	if q.group != nil {
		q.plan.check(q.group.field)
	}
	for _, f := range q.plan.checked {
		if err := checkFieldTypes(ctx, tx, table, f); err != nil {
			return nil, 0, err
		}
	}
	if err := matchRegexes(ctx, tx, table, q.plan); err != nil {
		return nil, 0, err
	}
	if q.group != nil {
		docs, err := runGroup(ctx, tx, table, q)
		return docs, int64(len(docs)), err
	}
	limit := q.limit
	if limit == 0 {
		limit = -1
	}
	if count {
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+quoteIdent(table)+
			` WHERE `+q.plan.condition()+` LIMIT ? OFFSET ?)`, append(q.plan.args, limit, q.skip)...).Scan(&n)
		return nil, n, err
	}
	order := strings.Join(append(append([]string(nil), q.plan.order...), "rowid"), ", ")
	rows, err := tx.QueryContext(ctx, `SELECT CAST(`+ferretDocColumn+` AS BLOB) FROM `+quoteIdent(table)+
		` WHERE `+q.plan.condition()+` ORDER BY `+order+` LIMIT ? OFFSET ?`, append(q.plan.args, limit, q.skip)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var size int
	var text []byte
	for rows.Next() {
		if err := rows.Scan(&text); err != nil {
			return nil, 0, err
		}
		doc, err := appendSJSON(make([]byte, 0, len(text)+64), string(text))
		if err != nil {
			return nil, 0, fmt.Errorf("decode a document of %s.%s: %w", q.coll.db, q.coll.name, err)
		}
		if size += len(doc); size > frontMaxResult {
			return nil, 0, errFrontUnsupported
		}
		docs = append(docs, doc)
	}
	return docs, int64(len(docs)), rows.Err()
}

// matchRegexes narrows plan to the rows whose fields match its regular
// expressions: it reads the fields of the rows the condition selects
// (from the index when it can), matches them in Go as FerretDB does, and
// adds the rows that match to the condition.
func matchRegexes(ctx context.Context, tx *sql.Tx, table string, plan *frontPlan) error {
	if len(plan.regexes) == 0 {
		return nil
	}
	cols := make([]string, len(plan.regexes))
	for i, r := range plan.regexes {
		cols[i] = frontValueExpr(r.field.name)
	}
	rows, err := tx.QueryContext(ctx, `SELECT rowid, `+strings.Join(cols, ", ")+` FROM `+quoteIdent(table)+
		` WHERE `+plan.condition(), plan.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var matched []int64
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols)+1)
	var rowid int64
	dest[0] = &rowid
	for i := range vals {
		dest[i+1] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		ok := true
		for i, r := range plan.regexes {
			ok = ok && vals[i].Valid && r.re.MatchString(vals[i].String)
		}
		if ok {
			matched = append(matched, rowid)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	ids, err := json.Marshal(matched)
	if err != nil {
		return err
	}
	if matched == nil {
		ids = []byte("[]")
	}
	plan.where = append(plan.where, `rowid IN (SELECT value FROM json_each(?))`)
	plan.args = append(plan.args, string(ids))
	return nil
}

// runGroup counts the documents q selects by the value of its group
// field, as FerretDB's $group does: one group per value (numbers of any
// type equal in value are one group), _id the value of the group's first
// document in FerretDB's row order (null for the documents without the
// field), groups in the order of their first documents.
func runGroup(ctx context.Context, tx *sql.Tx, table string, q frontQuery) ([][]byte, error) {
	g := q.group
	// The row of min(rowid) gives the bare column (SQLite's rule for a
	// query with one min()).
	rows, err := tx.QueryContext(ctx, `SELECT min(rowid), count(*), CAST(`+ferretDocColumn+` AS BLOB) FROM `+quoteIdent(table)+
		` WHERE `+q.plan.condition()+` GROUP BY `+frontValueExpr(g.field.name)+` ORDER BY 1`, q.plan.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var docs [][]byte
	var text []byte
	var first, n int64
	for rows.Next() {
		if err := rows.Scan(&first, &n, &text); err != nil {
			return nil, err
		}
		doc, err := appendSJSON(nil, string(text))
		if err != nil {
			return nil, fmt.Errorf("decode a document of %s.%s: %w", q.coll.db, q.coll.name, err)
		}
		if n > 1<<31-1 {
			return nil, errFrontUnsupported
		}
		b := bsoncore.NewDocumentBuilder()
		if v, err := bsoncore.Document(doc).LookupErr(g.field.name); err == nil {
			b.AppendValue("_id", v)
		} else {
			b.AppendNull("_id")
		}
		docs = append(docs, b.AppendInt32(g.count, int32(n)).Build())
	}
	return docs, rows.Err()
}

// frontTable returns the table of collection name, errFrontUnsupported
// when there is none or it is capped (FerretDB orders those by record
// id).
func frontTable(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	var table, ddl string
	err := tx.QueryRowContext(ctx, `SELECT c.table_name, m.sql FROM `+ferretMetadataTable+` c`+
		` JOIN sqlite_master m ON m.type = 'table' AND m.name = c.table_name WHERE c.name = ?`, name).Scan(&table, &ddl)
	switch {
	case errors.Is(err, sql.ErrNoRows), isNoSuchTable(err):
		return "", errFrontUnsupported
	case err != nil:
		return "", err
	case strings.Contains(ddl, ferretRecordIDColumn):
		return "", errFrontUnsupported
	}
	return table, nil
}

// frontTypeRange are the smallest and largest type names (FerretDB's
// schema "t") a front field may hold: the type families are contiguous in
// name order (double < int < long; no other type sorts between them).
var frontTypeRange = map[frontKind][2]string{
	frontNumber: {"double", "long"},
	frontString: {"string", "string"},
	frontDate:   {"date", "date"},
}

// checkFieldTypes returns errFrontUnsupported unless every document of
// table that has field f holds a value of f's type family there (not an
// array, whose elements a filter also matches, nor null or another
// type): the condition on values then means what the filter means. Two
// lookups in the field's index (its first column is the type).
func checkFieldTypes(ctx context.Context, tx *sql.Tx, table string, f frontField) error {
	expr := frontTypeExpr(f.name)
	var lo, hi sql.NullString
	q := `SELECT ` + expr + ` FROM ` + quoteIdent(table) + ` WHERE ` + expr + ` IS NOT NULL ORDER BY ` + expr
	if err := tx.QueryRowContext(ctx, q+` LIMIT 1`).Scan(&lo); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil // no document has it
		}
		return err
	}
	if err := tx.QueryRowContext(ctx, q+` DESC LIMIT 1`).Scan(&hi); err != nil {
		return err
	}
	want := frontTypeRange[f.kind]
	if lo.String < want[0] || hi.String > want[1] {
		return errFrontUnsupported
	}
	return nil
}

// frontIndexName names the front's index on table for field: on the
// field's type, then its value.
func frontIndexName(table, field string) string {
	return table + "_crawlcache_front_" + field
}

// frontIndexesBefore are the suffixes of the two indexes per field an
// earlier build of the front kept (one on the type, one on the value):
// twice the work per write for the same queries. They are dropped.
var frontIndexesBefore = []string{"_value", "_type"}

// ensureFrontIndexes creates, in database file db (whose name is file's),
// the indexes of the front collections it holds that are missing: one per
// front field, on its type and value. SQLite uses them for the front's
// conditions and type checks; FerretDB does not know them (they are not
// in its metadata), and they go with the table when the collection is
// dropped. Each costs every write of the collection an index update (the
// three: about 0.05–0.1 ms more per new page summary, 0.1–0.2 ms per
// replaced one, BenchmarkPageUpsert). It does nothing for files that hold
// no front collection.
func ensureFrontIndexes(ctx context.Context, db *sql.DB, file string) error {
	name := strings.TrimSuffix(filepath.Base(file), ferretFileExt)
	var colls []*frontCollection
	for i := range frontCollections {
		if frontCollections[i].db == name {
			colls = append(colls, &frontCollections[i])
		}
	}
	if len(colls) == 0 {
		return nil
	}
	tables, err := collectionTableNames(ctx, db)
	if err != nil {
		return err
	}
	for _, c := range colls {
		table, ok := tables[c.name]
		if !ok {
			continue
		}
		if err := ensureTableIndexes(ctx, db, table, c); err != nil && !isNoSuchTable(err) {
			return fmt.Errorf("index %s.%s for queries: %w", c.db, c.name, err)
		}
	}
	return nil
}

func ensureTableIndexes(ctx context.Context, db *sql.DB, table string, c *frontCollection) error {
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?`, table)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		have[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var stmts []string
	for _, f := range c.fields {
		name := frontIndexName(table, f.name)
		for _, suffix := range frontIndexesBefore {
			if have[name+suffix] {
				stmts = append(stmts, `DROP INDEX IF EXISTS `+quoteIdent(name+suffix))
			}
		}
		if !have[name] {
			stmts = append(stmts, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (%s, %s)`,
				quoteIdent(name), quoteIdent(table), frontTypeExpr(f.name), frontValueExpr(f.name)))
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}
