package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
)

// The compass scenario measures the queries people make in Compass or
// mongosh on a cache of cfg.compassPages pages of about 40 KB, through the
// wire as Compass does (the embedded store served as by `crawlcache db
// serve`, queried with the Go driver): by status, by URL prefix (an
// anchored regex) and by last validation, on the pages collection, with
// the embedded store's query front (crawlcache) and with FerretDB alone
// (peer: the front off, every document decoded). A share of the pages is
// revalidated by a 304 first, and the last-validation query must find
// exactly those.

// compassFamilies are the URL path prefixes of the scenario's pages.
var compassFamilies = []string{"products", "category", "blog", "about"}

const (
	compassBodySize  = 40 << 10
	compass404Every  = 50 // every 50th page is a 404
	compassRevalEach = 20 // every 20th page is revalidated by a 304
)

// compassOrigin serves /FAMILY/N: 40 KB of HTML with an ETag, a 404 for
// every compass404Every-th N, and a 304 to a matching If-None-Match.
func compassOrigin() *httptest.Server {
	filler := strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n", compassBodySize/65)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:])
		etag := fmt.Sprintf(`"v-%d"`, n)
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", "Mon, 02 Mar 2026 10:00:00 GMT")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if n%compass404Every == 0 {
			w.WriteHeader(http.StatusNotFound)
		}
		fmt.Fprintf(w, "<html><head><title>%s</title></head><body>\n%s</body></html>\n", r.URL.Path, filler)
	}))
}

func compassURL(base string, i int) string {
	return fmt.Sprintf("%s/%s/%d", base, compassFamilies[i%len(compassFamilies)], i)
}

// fillCompass caches pages pages of the origin in the store in dir through
// cache.Transport, then revalidates every compassRevalEach-th one (a 304),
// and returns a time after every first fetch and before every 304.
func fillCompass(ctx context.Context, dir, base string, pages int) (time.Time, error) {
	s, err := openStore(ctx, dir)
	if err != nil {
		return time.Time{}, err
	}
	defer s.Close(context.Background())
	tr, err := cache.New(ctx, s, cache.Options{Logger: quiet})
	if err != nil {
		return time.Time{}, err
	}
	defer tr.Close()
	get := func(ctx context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, compassURL(base, i), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	each := func(ctx context.Context, step int) error {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Go(func() {
				for i := w * step; i < pages; i += 8 * step {
					if err := get(ctx, i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	if err := each(ctx, 1); err != nil {
		return time.Time{}, err
	}
	// Dates are stored to the millisecond: since is the next whole
	// millisecond, and the 304s start after it.
	since := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(time.Until(since) + time.Millisecond)
	if err := each(cache.WithRefresh(ctx), compassRevalEach); err != nil {
		return time.Time{}, err
	}
	if st := tr.Stats(); st.Revalidated != int64((pages+compassRevalEach-1)/compassRevalEach) || st.StoreErrors != 0 {
		return time.Time{}, fmt.Errorf("fill: %d revalidated, %d store errors; want %d and 0", st.Revalidated, st.StoreErrors, (pages+compassRevalEach-1)/compassRevalEach)
	}
	return since, nil
}

// compassQuery is one query of the scenario and the answer it must give.
type compassQuery struct {
	name string
	want int64
	run  func(ctx context.Context, coll *store.Collection) (int64, error)
}

func compassQueries(base string, pages int, since time.Time) []compassQuery {
	var want404, wantFamily int64
	for i := range pages {
		if i%compass404Every == 0 {
			want404++
		}
		if i%len(compassFamilies) == 0 {
			wantFamily++
		}
	}
	prefix := "^" + regexp.QuoteMeta(base+"/"+compassFamilies[0]+"/")
	return []compassQuery{
		{"`countDocuments({status: 404})`", want404, func(ctx context.Context, c *store.Collection) (int64, error) {
			return c.Count(ctx, bson.D{{Key: "status", Value: 404}})
		}},
		{"`find({url: /^…\\/products\\//})`", wantFamily, func(ctx context.Context, c *store.Collection) (int64, error) {
			return countFound(ctx, c, bson.D{{Key: "url", Value: bson.Regex{Pattern: prefix}}})
		}},
		{"`find({validated_at: {$gte: …}})` (the 304s)", int64((pages + compassRevalEach - 1) / compassRevalEach), func(ctx context.Context, c *store.Collection) (int64, error) {
			return countFound(ctx, c, bson.D{{Key: "validated_at", Value: bson.D{{Key: "$gte", Value: since}}}})
		}},
	}
}

// countFound reads every document filter matches, as a client showing
// them does, and returns how many there were.
func countFound(ctx context.Context, c *store.Collection, filter bson.D) (int64, error) {
	var n int64
	err := c.Scan(ctx, filter, store.FindOptions{}, func(bson.Raw) error { n++; return nil })
	return n, err
}

func compassScenario(ctx context.Context, cfg config) ([]row, error) {
	dir, err := os.MkdirTemp("", "crawlcache-bench-compass-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	origin := compassOrigin()
	defer origin.Close()
	since, err := fillCompass(ctx, dir, origin.URL, cfg.compassPages)
	if err != nil {
		return nil, err
	}
	queries := compassQueries(origin.URL, cfg.compassPages, since)
	// The peer is FerretDB alone (the query front off), which decodes
	// every document of pages for each query.
	before, err := compassRound(ctx, dir, queries, true)
	if err != nil {
		return nil, err
	}
	after, err := compassRound(ctx, dir, queries, false)
	if err != nil {
		return nil, err
	}
	var rows []row
	for i, q := range queries {
		rows = append(rows, row{
			scenario:   fmt.Sprintf("Compass query over %d cached pages of 40 KB, through the wire: %s", cfg.compassPages, q.name),
			crawlcache: after[i].String(q.want) + " (query front)",
			peer:       before[i].String(q.want) + " (FerretDB alone)",
			ratio:      fmt.Sprintf("%.3f×", after[i].wall.Seconds()/before[i].wall.Seconds()),
			target:     "≤ 1 s, right answer", met: yesNo(after[i].wall <= time.Second && after[i].found == q.want),
		})
	}
	return rows, nil
}

// compassResult is what one query found and how long it took.
type compassResult struct {
	took
	found int64
}

func (r compassResult) String(want int64) string {
	s := fmt.Sprintf("%s (CPU %s)", secs(r.wall), secs(r.cpu))
	if r.found != want {
		s += fmt.Sprintf(" (**%d found**, want %d)", r.found, want)
	}
	return s
}

// compassRound serves the store in dir as `crawlcache db serve` serves it
// (without the query front when noFront) and runs the queries on pages
// over the wire.
func compassRound(ctx context.Context, dir string, queries []compassQuery, noFront bool) ([]compassResult, error) {
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: dir, Command: "db serve", Logger: quiet, NoQueryFront: noFront})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if err := srv.Upgrade(ctx, cache.Migrations(), quiet); err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, store.Options{URI: srv.URI(), Logger: quiet, Command: "bench", Migrations: cache.Migrations()})
	if err != nil {
		return nil, err
	}
	defer s.Close(context.Background())
	var out []compassResult
	for _, q := range queries {
		n, took, err := timeQuery(ctx, q, s.Collection(cache.DefaultDatabase, cache.PagesCollection))
		if err != nil {
			return nil, err
		}
		out = append(out, compassResult{took, n})
	}
	return out, nil
}

// took is how long a query took: wall time, and the CPU time of this
// process (the server serving the query and the client reading it), which
// a machine shared with other work does not inflate.
type took struct{ wall, cpu time.Duration }

// timeQuery runs q on coll once and returns its answer and time.
func timeQuery(ctx context.Context, q compassQuery, coll *store.Collection) (int64, took, error) {
	start, cpu := time.Now(), processCPU()
	n, err := q.run(ctx, coll)
	if err != nil {
		return 0, took{}, fmt.Errorf("%s on %s: %w", q.name, coll.Name(), err)
	}
	return n, took{time.Since(start), processCPU() - cpu}, nil
}
