package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestIDLookupsUseAnIndex is the regression test for FerretDB's SQLite
// backend scanning the whole table on every _id find, update and delete.
func TestIDLookupsUseAnIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	coll := s.Database("idx").Collection("docs")
	for i := range 3 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("k%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The background indexer picks new collections up; run it now rather
	// than wait for its tick.
	if err := s.server.ids.ensure(ctx); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "idx.sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'docs'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	// The exact statement FerretDB v1.24.2 runs for find/update/delete by _id.
	var id, parent, notused int
	var plan string
	q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table)
	if err := db.QueryRow(q, `"k1"`).Scan(&id, &parent, &notused, &plan); err != nil {
		t.Fatal(err)
	}
	if want := "USING INDEX " + table + "__id_"; !strings.Contains(plan, want) {
		t.Errorf("query plan for an _id lookup = %q, want it %s (FerretDB's unique index, rebuilt)", plan, want)
	}
	var def string
	if err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE name = ?`, table+"__id_").Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(def, "CREATE UNIQUE INDEX") {
		t.Errorf("rebuilt _id index = %q, want it unique", def)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "k1"}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("insert of an existing _id = %v, want a duplicate key error", err)
	}
	var got struct {
		ID string `bson:"_id"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "k2"}}).Decode(&got); err != nil || got.ID != "k2" {
		t.Errorf("find by _id with the extra index = %+v, %v", got, err)
	}
}

// TestIDIndexerForgetsDroppedDatabases: a dropped database's file is gone,
// and the indexer must not keep failing on its old handle.
func TestIDIndexerForgetsDroppedDatabases(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	db := s.Database("gone")
	if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.server.ids.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.server.ids.ensure(ctx); err != nil {
		t.Errorf("ensure after a database was dropped: %v", err)
	}
	// Recreated under the same name: indexed again.
	if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.server.ids.ensure(ctx); err != nil {
		t.Errorf("ensure after the database was recreated: %v", err)
	}
}

// TestIDIndexerDropsTheOldExtraIndex: data directories written by earlier
// versions carry a second _id index that only slows inserts down.
func TestIDIndexerDropsTheOldExtraIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	coll := s.Database("old").Collection("docs")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.server.ids.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// What an earlier version left: FerretDB's own index and the extra one.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "old.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'docs'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		fmt.Sprintf(`DROP INDEX %q`, table+"__id_"),
		fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (_ferretdb_sjson->"_id")`, table+"__id_", table),
		fmt.Sprintf(`CREATE INDEX %q ON %q (%s)`, table+"_crawlcache_id", table, idIndexExpr),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()

	openDir(t, dir)
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "old.sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		got[name] = def
	}
	if len(got) != 1 || !strings.Contains(got[table+"__id_"], idIndexExpr) {
		t.Errorf("indexes after a restart = %v, want only %s on %s", got, table+"__id_", idIndexExpr)
	}
}

// TestIDIndexerWithConcurrentWriters: rebuilding an index while other
// connections write to the same file waits for the write lock instead of
// failing with SQLITE_BUSY (it did when its transaction began deferred).
func TestIDIndexerWithConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	db := s.Database("busy")
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Collection("writes").InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("w%d", i)}}); err != nil {
				done <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("concurrent insert: %v", err)
		}
	}()
	for i := range 30 {
		if err := db.CreateCollection(ctx, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := s.server.ids.ensure(ctx); err != nil {
			t.Fatalf("index _id while another connection writes (round %d): %v", i, err)
		}
	}
}
