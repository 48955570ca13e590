package cache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store/storetest"
)

// BenchmarkSweep measures one sweep on the embedded store: n responses of
// the given body size, half of them older than the TTL (every tenth of
// those kept alive by a recent revalidation), or none ("nothing-expired":
// the cost every crawl pays at start). The embedded server scans
// the collection for the candidate query and for every delete batch, so
// the cost grows with collection size × document size.
func BenchmarkSweep(b *testing.B) {
	for _, bc := range []struct {
		n, size int
		none    bool
	}{
		{n: 1000, size: 1 << 10},
		{n: 400, size: 50 << 10},
		{n: 400, size: 50 << 10, none: true},
	} {
		name := fmt.Sprintf("%dx%dKB", bc.n, bc.size>>10)
		if bc.none {
			name += "-nothing-expired"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := storetest.Open(b)
			body := strings.Repeat("x", bc.size)
			var deleted int64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				db := testDatabase{s, fmt.Sprintf("bench%d", i)}
				a := cache.NewAdmin(s, db.name, func() time.Time { return adminT0 })
				docs := make([]any, 0, bc.n)
				var revs []any
				for j := range bc.n {
					validated := adminT0.Add(-time.Hour)
					if j%2 == 0 && !bc.none {
						validated = adminT0.Add(-48 * time.Hour)
						if j%20 == 0 {
							revs = append(revs, cache.Revalidation{ID: fmt.Sprintf("%016x", j), ValidatedAt: adminT0})
						}
					}
					docs = append(docs, cache.Entry{
						ID: fmt.Sprintf("%016x", j), URL: fmt.Sprintf("https://example.org/%d", j), Method: "GET", Status: 200,
						Headers: bson.M{"Content-Type": "text/html"}, Body: body, Size: int64(bc.size),
						CreatedAt: validated, ValidatedAt: validated,
					})
				}
				if _, err := db.Collection(cache.ResponsesCollection).InsertMany(ctx, docs); err != nil {
					b.Fatal(err)
				}
				if len(revs) > 0 {
					if _, err := db.Collection(cache.RevalidationsCollection).InsertMany(ctx, revs); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				n, err := a.Sweep(ctx)
				if err != nil {
					b.Fatal(err)
				}
				deleted = n
				b.StopTimer()
				_ = s.DropDatabase(ctx, db.name)
				b.StartTimer()
			}
			b.ReportMetric(float64(deleted), "deleted/op")
		})
	}
}
