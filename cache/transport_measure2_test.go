//go:build measure

package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	_ "modernc.org/sqlite"

	"crawlcache/store/storetest"
)

// TestMeasureFindScaling: does a find by _id get slower as the collection
// grows? go test -tags measure -run TestMeasureFindScaling -v ./cache/
func TestMeasureFindScaling(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll := s.Database("m").Collection("responses")
	body := benchPage()
	total := 0
	for _, n := range []int{10, 100, 300, 600} {
		var docs []any
		for ; total < n; total++ {
			docs = append(docs, bson.M{"_id": fmt.Sprintf("%032x", total), "body": body, "status": 200})
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		const k = 20
		st := time.Now()
		for i := 0; i < k; i++ {
			_, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%032x", i*7%n)}}).Raw()
		}
		hit := time.Since(st) / k
		st = time.Now()
		for i := 0; i < k; i++ {
			_, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("missing%d", i)}}).Raw()
		}
		miss := time.Since(st) / k
		var explain bson.M
		_ = s.Database("m").RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "responses"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: "x"}}}}}}).Decode(&explain)
		t.Logf("docs %4d: find existing %v, find missing %v; explain %v", n, hit, miss, explain["queryPlanner"])
	}
}

// TestMeasureIDIndexFix: the SQLite handler's _id lookup is
// `_ferretdb_sjson->'$._id' = ?`, but its unique _id index is on
// `_ferretdb_sjson->"_id"`, so every find scans. Does an index on the
// exact expression fix it?
func TestMeasureIDIndexFix(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll := s.Database("m").Collection("responses")
	body := benchPage()
	var docs []any
	for i := 0; i < 300; i++ {
		docs = append(docs, bson.M{"_id": fmt.Sprintf("%032x", i), "body": body, "status": 200})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	measure := func(label string) {
		const k = 20
		st := time.Now()
		for i := 0; i < k; i++ {
			_, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("%032x", i*13%300)}}).Raw()
		}
		hit := time.Since(st) / k
		st = time.Now()
		for i := 0; i < k; i++ {
			_, _ = coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("missing%d", i)}}).Raw()
		}
		t.Logf("%s: find existing %v, missing %v", label, hit, time.Since(st)/k)
	}
	measure("300 docs, no fix")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, "m.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'responses'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, table+"_id_path", table)); err != nil {
		t.Fatal(err)
	}
	var plan string
	var a, b2, c int
	_ = db.QueryRow(fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"x"`).Scan(&a, &b2, &c, &plan)
	t.Logf("plan with index: %s", plan)
	measure("300 docs, index on ->'$._id'")
}

// TestMeasureConcurrentLoad compares finding the response and its
// revalidation concurrently (what load does) with one after the other,
// alternating A/B to spread the noise of a shared machine.
func TestMeasureConcurrentLoad(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	db := s.Database("m")
	resp, revs := db.Collection("responses"), db.Collection("revalidations")
	body := benchPage()
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("%032x", i)
		if _, err := resp.InsertOne(ctx, bson.M{"_id": id, "body": body}); err != nil {
			t.Fatal(err)
		}
		if _, err := revs.InsertOne(ctx, bson.M{"_id": id, "validated_at": time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	find := func(c interface {
		FindOne(context.Context, any, ...options.Lister[options.FindOneOptions]) *mongo.SingleResult
	}, id string) {
		_, _ = c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	}
	var conc, seq time.Duration
	for round := 0; round < 10; round++ {
		for i := 0; i < 20; i++ {
			id := fmt.Sprintf("%032x", i)
			st := time.Now()
			done := make(chan struct{})
			go func() { find(revs, id); close(done) }()
			find(resp, id)
			<-done
			conc += time.Since(st)
			st = time.Now()
			find(resp, id)
			find(revs, id)
			seq += time.Since(st)
		}
	}
	t.Logf("concurrent %v/op, sequential %v/op", conc/200, seq/200)
}

// TestMeasureBodyForm: is a 50 KB HTML body cheaper to find on the
// embedded server as a string or as binary?
func TestMeasureBodyForm(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	db := s.Database("m")
	body := benchPage()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(body))
	zw.Close()
	forms := map[string]any{"string": body, "binary": bson.Binary{Data: []byte(body)}, "gzip": bson.Binary{Data: gz.Bytes()}}
	for name, v := range forms {
		if _, err := db.Collection(name).InsertOne(ctx, bson.M{"_id": "k", "body": v}); err != nil {
			t.Fatal(err)
		}
	}
	res := map[string]time.Duration{}
	for round := 0; round < 30; round++ {
		for name := range forms {
			st := time.Now()
			_, _ = db.Collection(name).FindOne(ctx, bson.D{{Key: "_id", Value: "k"}}).Raw()
			res[name] += time.Since(st)
		}
	}
	t.Logf("find 50 KB body as string %v/op, as binary %v/op, gzip-compressed binary (%d bytes) %v/op",
		res["string"]/30, res["binary"]/30, gz.Len(), res["gzip"]/30)
}

// TestMeasureRevalidationSteps times the store steps of a revalidation.
func TestMeasureRevalidationSteps(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	tr, err := New(ctx, s.Database("m"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	body := benchPage()
	const n = 30
	var save, missLoad time.Duration
	for i := 0; i < n; i++ {
		st := time.Now()
		if _, err := tr.coll.load(ctx, fmt.Sprint("k", i), true); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.coll.findRedirect(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
		missLoad += time.Since(st)
		st = time.Now()
		now := time.Now()
		doc := &Document{ID: fmt.Sprint("k", i), URL: "https://e/", Method: "GET", Status: 200, Headers: bson.M{"Content-Type": "text/html"}, Body: body, Size: int64(len(body)), CreatedAt: now, ValidatedAt: now}
		if err := tr.coll.save(ctx, doc, true, false); err != nil {
			t.Fatal(err)
		}
		save += time.Since(st)
	}
	t.Logf("miss lookups (response, revalidation, redirect) %v, insert 50 KB %v", missLoad/n, save/n)
	var load, revNew, revOld time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprint("k", i)
		st := time.Now()
		if _, err := tr.coll.load(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		load += time.Since(st)
		rev := &Revalidation{ID: id, ValidatedAt: time.Now(), Headers: bson.M{"Date": "x"}}
		st = time.Now()
		if err := tr.coll.saveRevalidation(ctx, rev, true); err != nil {
			t.Fatal(err)
		}
		revNew += time.Since(st)
		st = time.Now()
		if err := tr.coll.saveRevalidation(ctx, rev, false); err != nil {
			t.Fatal(err)
		}
		revOld += time.Since(st)
	}
	t.Logf("load %v, first revalidation (insert) %v, later revalidation (upsert) %v", load/n, revNew/n, revOld/n)
}
