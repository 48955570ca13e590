//go:build measure

package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Measurements of the embedded server through the wire (not assertions):
// go test -tags measure -run TestMeasure -v ./store/

// measurePage is a 50 KB HTML page.
func measurePage() string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>bench</title></head><body>\n")
	for i := 0; b.Len() < 50_000; i++ {
		fmt.Fprintf(&b, "<p class=\"row\">Paragraph %d: the quick brown fox jumps over the lazy dog — <a href=\"/item/%d\">item %d</a></p>\n", i, i, i)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// TestMeasureStoreOps times the store operations the transport uses.
// go test -tags measure -run TestMeasureStoreOps -v ./store/
func TestMeasureStoreOps(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	db := s.client.Database("m")
	resp := db.Collection("responses")
	revs := db.Collection("revalidations")
	body := measurePage()
	doc := func(id string) bson.M {
		return bson.M{"_id": id, "url": "https://e/" + id, "status": 200, "headers": bson.M{"Content-Type": "text/html"}, "body": body, "size": len(body), "validated_at": time.Now()}
	}
	chk := func(_ any, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	timeit := func(name string, f func(i int)) {
		st := time.Now()
		for i := 0; i < n; i++ {
			f(i)
		}
		t.Logf("%-40s %8.2f ms/op", name, float64(time.Since(st).Microseconds())/1000/n)
	}
	upsert := options.Replace().SetUpsert(true)
	timeit("insertOne 50KB", func(i int) { chk(resp.InsertOne(ctx, doc(fmt.Sprint("a", i)))) })
	timeit("replaceOne upsert 50KB new", func(i int) {
		chk(resp.ReplaceOne(ctx, bson.M{"_id": fmt.Sprint("b", i)}, doc(fmt.Sprint("b", i)), upsert))
	})
	timeit("replaceOne upsert 50KB existing", func(i int) {
		chk(resp.ReplaceOne(ctx, bson.M{"_id": fmt.Sprint("b", i)}, doc(fmt.Sprint("b", i)), upsert))
	})
	timeit("replaceOne 50KB existing no upsert", func(i int) {
		chk(resp.ReplaceOne(ctx, bson.M{"_id": fmt.Sprint("b", i)}, doc(fmt.Sprint("b", i))))
	})
	timeit("find 50KB by _id", func(i int) { _, _ = resp.FindOne(ctx, bson.M{"_id": fmt.Sprint("a", i)}).Raw() })
	timeit("find missing _id (responses)", func(i int) { _, _ = resp.FindOne(ctx, bson.M{"_id": fmt.Sprint("zz", i)}).Raw() })
	timeit("find missing _id (empty coll)", func(i int) { _, _ = revs.FindOne(ctx, bson.M{"_id": fmt.Sprint("zz", i)}).Raw() })
	rev := func(id string) bson.M {
		return bson.M{"_id": id, "validated_at": time.Now(), "headers": bson.M{"Date": "x", "ETag": "y"}}
	}
	timeit("insertOne small rev", func(i int) { chk(revs.InsertOne(ctx, rev(fmt.Sprint("r", i)))) })
	timeit("replaceOne upsert small rev new", func(i int) {
		chk(revs.ReplaceOne(ctx, bson.M{"_id": fmt.Sprint("s", i)}, rev(fmt.Sprint("s", i)), upsert))
	})
	timeit("replaceOne upsert small rev existing", func(i int) {
		chk(revs.ReplaceOne(ctx, bson.M{"_id": fmt.Sprint("s", i)}, rev(fmt.Sprint("s", i)), upsert))
	})
	timeit("find small rev", func(i int) { _, _ = revs.FindOne(ctx, bson.M{"_id": fmt.Sprint("s", i)}).Raw() })
	timeit("deleteOne missing", func(i int) { chk(revs.DeleteOne(ctx, bson.M{"_id": fmt.Sprint("none", i)})) })
	timeit("find 50KB + rev concurrently", func(i int) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = revs.FindOne(ctx, bson.M{"_id": fmt.Sprint("s", i)}).Raw() }()
		_, _ = resp.FindOne(ctx, bson.M{"_id": fmt.Sprint("a", i)}).Raw()
		wg.Wait()
	})
	timeit("find 50KB then rev sequentially", func(i int) {
		_, _ = resp.FindOne(ctx, bson.M{"_id": fmt.Sprint("a", i)}).Raw()
		_, _ = revs.FindOne(ctx, bson.M{"_id": fmt.Sprint("s", i)}).Raw()
	})
	timeit("find 50KB with $in rev-less agg", func(i int) {
		_, _ = resp.FindOne(ctx, bson.M{"_id": fmt.Sprint("a", i)}).Raw()
	})
}

// TestMeasureFindScaling: does a find by _id get slower as the collection
// grows? go test -tags measure -run TestMeasureFindScaling -v ./store/
func TestMeasureFindScaling(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	coll := s.client.Database("m").Collection("responses")
	body := measurePage()
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
		_ = s.client.Database("m").RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "responses"}, {Key: "filter", Value: bson.D{{Key: "_id", Value: "x"}}}}}}).Decode(&explain)
		t.Logf("docs %4d: find existing %v, find missing %v; explain %v", n, hit, miss, explain["queryPlanner"])
	}
}

// TestMeasureIDIndexFix: the SQLite handler's _id lookup is
// `_ferretdb_sjson->'$._id' = ?`, but its unique _id index is on
// `_ferretdb_sjson->"_id"`, so every find scans. Does an index on the
// exact expression fix it?
func TestMeasureIDIndexFix(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	coll := s.client.Database("m").Collection("responses")
	body := measurePage()
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
	s := openDir(t, t.TempDir())
	db := s.client.Database("m")
	resp, revs := db.Collection("responses"), db.Collection("revalidations")
	body := measurePage()
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
	s := openDir(t, t.TempDir())
	db := s.client.Database("m")
	body := measurePage()
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
