//go:build measure

package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/store/storetest"
)

// TestMeasureStoreOps times the store operations the transport uses.
// go test -tags measure -run TestMeasureStoreOps -v ./cache/
func TestMeasureStoreOps(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	db := s.Database("m")
	resp := db.Collection("responses")
	revs := db.Collection("revalidations")
	body := benchPage()
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
