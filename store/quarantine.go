package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// QuarantineCollection (in the crawlcache database) keeps the stored text
// of every document that schema version 1 took out of its collection
// because FerretDB could not read it back: one such row made every find,
// count and scan of its collection fail. Each document is
// {_id: "<db>.<collection>#<rowid>", database, collection, sjson, reason,
// quarantined_at}.
const QuarantineCollection = "quarantine"

// quarantineUnreadable (schema version 1) moves out of the embedded
// store's collections the rows FerretDB cannot decode: a document with a
// field name twice, which the direct writer of earlier releases stored
// (every read of the collection then failed with "sjson.Unmarshal: …
// keys: 3, fields: 2"), and a top-level field name with a control
// character, which FerretDB itself stores unescaped. Each row is copied to
// crawlcache.quarantine, then deleted; a rerun finds the copy and deletes
// the row. It reads the files itself, so it does nothing when this process
// does not own them (MongoDB, a data directory served by another process,
// or a FerretDB build the direct path does not know).
func quarantineUnreadable(ctx context.Context, s *Store) error {
	if s.server == nil || !s.server.direct {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(s.server.dir, "*"+ferretFileExt))
	if err != nil {
		return err
	}
	for _, file := range files {
		if err := quarantineFile(ctx, s, file); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
	}
	return nil
}

// unreadableRow is a row quarantineFile moves.
type unreadableRow struct {
	coll, table string
	rowid       int64
	text        string
	reason      string
}

func quarantineFile(ctx context.Context, s *Store, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tables, err := collectionTableNames(ctx, db)
	if err != nil {
		return err
	}
	var bad []unreadableRow
	for coll, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT rowid, `+ferretDocColumn+` FROM `+quoteIdent(table))
		if err != nil {
			return fmt.Errorf("read collection %s: %w", coll, err)
		}
		for rows.Next() {
			var r unreadableRow
			if err := rows.Scan(&r.rowid, &r.text); err != nil {
				rows.Close()
				return err
			}
			if r.reason = unreadable(r.text); r.reason != "" {
				r.coll, r.table = coll, table
				bad = append(bad, r)
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	dbName := strings.TrimSuffix(filepath.Base(file), ferretFileExt)
	q := s.client.Database(metaDatabase).Collection(QuarantineCollection)
	for _, r := range bad {
		id := fmt.Sprintf("%s.%s#%d", dbName, r.coll, r.rowid)
		_, err := q.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id}, {Key: "database", Value: dbName}, {Key: "collection", Value: r.coll},
			{Key: "sjson", Value: r.text}, {Key: "reason", Value: r.reason}, {Key: "quarantined_at", Value: time.Now().UTC()},
		})
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("copy unreadable document %s to %s.%s: %w", id, metaDatabase, QuarantineCollection, err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM `+quoteIdent(r.table)+` WHERE rowid = ?`, r.rowid); err != nil {
			return fmt.Errorf("delete unreadable document %s: %w", id, err)
		}
		s.logger().Warn("store: a document FerretDB cannot read back was moved out of its collection", "id", id, "reason", r.reason, "kept_in", metaDatabase+"."+QuarantineCollection)
	}
	return nil
}

// unreadable says why FerretDB could not decode the stored text, or "".
// FerretDB decodes with encoding/json (stricter than SQLite: no raw
// control characters in strings) and then matches the schema's keys with
// the document's, as appendSJSON does.
func unreadable(text string) string {
	if !json.Valid([]byte(text)) {
		return "not valid JSON (a field name with a control character)"
	}
	raw, err := appendSJSON(nil, text)
	if err != nil {
		return err.Error()
	}
	// appendSJSON reads a name twice as written; FerretDB decodes the
	// values into a map and finds fewer fields than the schema names.
	if err := duplicateKeysDeep(raw, 0); err != nil {
		return strings.TrimPrefix(err.Error(), errSJSONEncode.Error()+": ")
	}
	return ""
}

// duplicateKeysDeep finds a field name twice in doc or in a document
// within it.
func duplicateKeysDeep(doc bson.Raw, depth int) error {
	if depth > sjsonMaxDepth {
		return fmt.Errorf("nested too deep")
	}
	elems, err := doc.Elements()
	if err != nil {
		return err
	}
	if err := checkDuplicateKeys(len(elems), func(i int) string { return elems[i].Key() }); err != nil {
		return err
	}
	for _, e := range elems {
		v := e.Value()
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			err = duplicateKeysDeep(v.Document(), depth+1)
		case bson.TypeArray:
			err = duplicateKeysDeep(bson.Raw(v.Array()), depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
