package store_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// The query front answers queries on http_cache.pages from SQLite; these
// tests hold it to what FerretDB answers for the same commands, reached
// by the store's own client (which talks to FerretDB directly).

// frontClient connects to the store's public address (the query front),
// as Compass or mongosh would.
func frontClient(t *testing.T, s *store.Store) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

var frontPrefixes = []string{
	"http://a.test/products/", "http://a.test/product", "http://b.test/blog/",
	"http://a.test/é/", "http://a.test/x<y>&z/", "http://a.test/q?a=1/",
}

var frontBase = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// randomPage is a pages document: the four fields of cache.Page, each
// sometimes missing, with statuses of the three number types.
func randomPage(r *rand.Rand, i int) bson.D {
	id := fmt.Sprintf("p%05d", i)
	if i%17 == 0 {
		id = fmt.Sprintf("k<%d>&\"é", i)
	}
	d := bson.D{{Key: "_id", Value: id}}
	if r.IntN(20) != 0 {
		d = append(d, bson.E{Key: "url", Value: frontPrefixes[r.IntN(len(frontPrefixes))] + fmt.Sprint(r.IntN(50))})
	}
	if r.IntN(20) != 0 {
		statuses := []int{200, 301, 304, 404, 410, 500}
		s := statuses[r.IntN(len(statuses))]
		switch r.IntN(6) {
		case 0:
			d = append(d, bson.E{Key: "status", Value: int64(s)})
		case 1:
			d = append(d, bson.E{Key: "status", Value: float64(s) + 0.5*float64(r.IntN(2))})
		default:
			d = append(d, bson.E{Key: "status", Value: int32(s)})
		}
	}
	if r.IntN(20) != 0 {
		d = append(d, bson.E{Key: "validated_at", Value: bson.NewDateTimeFromTime(frontBase.Add(time.Duration(r.IntN(100_000)) * time.Millisecond))})
	}
	if r.IntN(4) == 0 {
		d = append(d, bson.E{Key: "note", Value: "n" + fmt.Sprint(r.IntN(3))})
	}
	r.Shuffle(len(d)-1, func(i, j int) { d[i+1], d[j+1] = d[j+1], d[i+1] })
	return d
}

func randomNumber(r *rand.Rand) any {
	n := []int{199, 200, 301, 304, 404, 410, 500, 501}[r.IntN(8)]
	switch r.IntN(3) {
	case 0:
		return int64(n)
	case 1:
		return float64(n) + 0.5*float64(r.IntN(2))
	}
	return int32(n)
}

func randomDate(r *rand.Rand) bson.DateTime {
	return bson.NewDateTimeFromTime(frontBase.Add(time.Duration(r.IntN(110_000)-5000) * time.Millisecond))
}

// randomClause is one condition on one field, of a shape the front
// translates.
func randomClause(r *rand.Rand) bson.E {
	ranges := func(val func() any) bson.D {
		ops := []string{"$gt", "$gte", "$lt", "$lte", "$eq"}
		var d bson.D
		for _, i := range r.Perm(len(ops))[:1+r.IntN(2)] {
			d = append(d, bson.E{Key: ops[i], Value: val()})
		}
		return d
	}
	switch r.IntN(8) {
	case 7:
		patterns := []string{`^http://a.test/p.oduct`, `products`, `^HTTP://A\.TEST/`, `^http://a\.test/(products|q)`,
			`é/\d$`, `^http://[ab]\.test/blog/1`, `(?m)^http`, `^(?i)http://B`, `^\Qhttp://a.test/x<\E`, `q\?a=1`}
		pattern := patterns[r.IntN(len(patterns))]
		options := []string{"", "", "i", "m", "s", "is"}[r.IntN(6)]
		if r.IntN(2) == 0 {
			return bson.E{Key: "url", Value: bson.Regex{Pattern: pattern, Options: options}}
		}
		if options == "" {
			return bson.E{Key: "url", Value: bson.D{{Key: "$regex", Value: pattern}}}
		}
		return bson.E{Key: "url", Value: bson.D{{Key: "$regex", Value: pattern}, {Key: "$options", Value: options}}}
	case 0:
		return bson.E{Key: "status", Value: randomNumber(r)}
	case 1:
		return bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{randomNumber(r), randomNumber(r)}}}}
	case 2:
		return bson.E{Key: "status", Value: ranges(func() any { return randomNumber(r) })}
	case 3:
		p := frontPrefixes[r.IntN(len(frontPrefixes))]
		p = p[:r.IntN(len(p)+1)]
		p = strings.ToValidUTF8(p, "") // not half an é
		if r.IntN(2) == 0 {
			return bson.E{Key: "url", Value: bson.Regex{Pattern: "^" + regexp.QuoteMeta(p)}}
		}
		return bson.E{Key: "url", Value: bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(p)}}}
	case 4:
		return bson.E{Key: "url", Value: frontPrefixes[r.IntN(len(frontPrefixes))] + fmt.Sprint(r.IntN(50))}
	case 5:
		return bson.E{Key: "_id", Value: fmt.Sprintf("p%05d", r.IntN(400))}
	}
	return bson.E{Key: "validated_at", Value: ranges(func() any { return randomDate(r) })}
}

func randomFilter(r *rand.Rand) bson.D {
	f := bson.D{}
	used := map[string]bool{}
	for range r.IntN(3) {
		c := randomClause(r)
		if used[c.Key] {
			f = append(f, bson.E{Key: "$and", Value: bson.A{bson.D{c}}})
			continue
		}
		used[c.Key] = true
		f = append(f, c)
	}
	if r.IntN(5) == 0 {
		return bson.D{{Key: "$and", Value: bson.A{f, bson.D{}}}}
	}
	return f
}

// findAll runs find on coll and returns every document, raw, in order.
func findAll(t *testing.T, coll *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder) []bson.Raw {
	t.Helper()
	cur, err := coll.Find(context.Background(), filter, opts)
	if err != nil {
		t.Fatalf("find %v: %v", filter, err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("find %v: %v", filter, err)
	}
	return out
}

// randomProjection includes or excludes some of the pages' fields (note,
// which only some pages have, among them), with or without _id.
func randomProjection(r *rand.Rand) bson.D {
	var p bson.D
	on := r.IntN(2)
	for _, f := range []string{"url", "status", "validated_at", "note"} {
		if r.IntN(2) == 0 {
			p = append(p, bson.E{Key: f, Value: []any{on, on == 1, float64(on)}[r.IntN(3)]})
		}
	}
	if len(p) == 0 {
		p = append(p, bson.E{Key: "url", Value: on})
	}
	if r.IntN(3) == 0 {
		p = append(bson.D{{Key: "_id", Value: r.IntN(2)}}, p...)
	}
	return p
}

// aggregateAll runs pipeline on coll and returns every document, raw, in
// order.
func aggregateAll(t *testing.T, coll *mongo.Collection, pipeline bson.A, opts *options.AggregateOptionsBuilder) []bson.Raw {
	t.Helper()
	cur, err := coll.Aggregate(context.Background(), pipeline, opts)
	if err != nil {
		t.Fatalf("aggregate %v: %v", pipeline, err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("aggregate %v: %v", pipeline, err)
	}
	return out
}

// sortKeys are the values of keys in docs, for comparing sorted results
// whose ties may come in any order.
func sortKeys(docs []bson.Raw, keys []string) []string {
	var out []string
	for _, d := range docs {
		var b bytes.Buffer
		for _, k := range keys {
			if v, err := d.LookupErr(k); err == nil {
				if f, ok := v.AsFloat64OK(); ok {
					fmt.Fprintf(&b, "%g|", f) // 404, 404.0 and 404L are one key
				} else {
					fmt.Fprintf(&b, "%v|", v)
				}
			} else {
				b.WriteString("<missing>|")
			}
		}
		out = append(out, b.String())
	}
	return out
}

func rawStrings(docs []bson.Raw) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = string(d)
	}
	slices.Sort(out)
	return out
}

// compareRandomQueries runs n random queries through the front and
// directly to FerretDB and fails on any difference. It returns how many
// of the queries the front answered (at least their first command).
func compareRandomQueries(t *testing.T, r *rand.Rand, s *store.Store, n int) int {
	t.Helper()
	front := frontClient(t, s).Database("http_cache").Collection("pages")
	direct := s.Database("http_cache").Collection("pages")
	answered := 0
	for i := range n {
		before := store.FrontAnswered(s)
		filter := randomFilter(r)
		switch r.IntN(5) {
		case 4:
			field := []string{"status", "url", "validated_at"}[r.IntN(3)]
			pipeline := bson.A{bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + field}, {Key: "pages", Value: bson.D{{Key: "$sum", Value: 1}}}}}}}
			if len(filter) > 0 {
				pipeline = append(bson.A{bson.D{{Key: "$match", Value: filter}}}, pipeline...)
			}
			opts := options.Aggregate()
			if r.IntN(2) == 0 {
				opts.SetBatchSize(int32(1 + r.IntN(20)))
			}
			got, want := aggregateAll(t, front, pipeline, opts), aggregateAll(t, direct, pipeline, opts)
			if !slices.EqualFunc(got, want, func(a, b bson.Raw) bool { return bytes.Equal(a, b) }) {
				t.Fatalf("query %d: aggregate(%v) gave %d groups through the front, want %d (or their order or values differ)", i, pipeline, len(got), len(want))
			}
		case 0:
			opts := options.Count()
			if r.IntN(3) == 0 {
				opts.SetSkip(int64(r.IntN(20))).SetLimit(int64(1 + r.IntN(50)))
			}
			got, err := front.CountDocuments(context.Background(), filter, opts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := direct.CountDocuments(context.Background(), filter, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("query %d: countDocuments(%v) = %d through the front, want %d", i, filter, got, want)
			}
		case 1:
			cmd := bson.D{{Key: "count", Value: "pages"}, {Key: "query", Value: filter}}
			var got, want bson.Raw
			got, err := front.Database().RunCommand(context.Background(), cmd).Raw()
			if err != nil {
				t.Fatal(err)
			}
			want, err = direct.Database().RunCommand(context.Background(), cmd).Raw()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("query %d: count %v = %v through the front, want %v", i, filter, got, want)
			}
		default:
			compareFind(t, r, i, front, direct, filter)
		}
		if store.FrontAnswered(s) > before {
			answered++
		}
	}
	return answered
}

// compareFind runs one random find (sort, skip, limit, batch size,
// projection) through the front and directly, and fails on a difference.
func compareFind(t *testing.T, r *rand.Rand, i int, front, direct *mongo.Collection, filter bson.D) {
	t.Helper()
	opts := options.Find()
	var keys []string
	if r.IntN(2) == 0 {
		var sort bson.D
		for _, k := range []string{"status", "url", "validated_at"}[:1+r.IntN(3)] {
			dir := 1 - 2*r.IntN(2)
			sort = append(sort, bson.E{Key: k, Value: dir})
			keys = append(keys, k)
		}
		opts.SetSort(sort)
	}
	paged := false
	if r.IntN(3) == 0 {
		opts.SetSkip(int64(r.IntN(30)))
		paged = true
	}
	if r.IntN(3) == 0 {
		opts.SetLimit(int64(1 + r.IntN(60)))
		paged = true
	}
	if r.IntN(2) == 0 {
		opts.SetBatchSize(int32(1 + r.IntN(40)))
	}
	if r.IntN(3) == 0 {
		opts.SetProjection(randomProjection(r))
	}
	got := findAll(t, front, filter, opts)
	want := findAll(t, direct, filter, opts)
	if keys == nil {
		if !slices.EqualFunc(got, want, func(a, b bson.Raw) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("query %d: find(%v) gave %d documents through the front, want %d (or their order or bytes differ)", i, filter, len(got), len(want))
		}
		return
	}
	if g, w := sortKeys(got, keys), sortKeys(want, keys); !slices.Equal(g, w) {
		j := 0
		for j < min(len(g), len(w)) && g[j] == w[j] {
			j++
		}
		t.Fatalf("query %d: find(%v).sort(%v): %d documents through the front, want %d; first difference at %d", i, filter, keys, len(g), len(w), j)
	}
	if !paged && !slices.Equal(rawStrings(got), rawStrings(want)) {
		t.Fatalf("query %d: find(%v).sort(%v): not the same documents through the front", i, filter, keys)
	}
}

func insertPages(t *testing.T, s *store.Store, docs []bson.D) {
	t.Helper()
	// Half through FerretDB, half through the direct writer.
	var viaServer []any
	direct := s.Collection("http_cache", "pages")
	for i, d := range docs {
		if i%2 == 0 {
			viaServer = append(viaServer, d)
			continue
		}
		if err := direct.Insert(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Database("http_cache").Collection("pages").InsertMany(context.Background(), viaServer); err != nil {
		t.Fatal(err)
	}
}

func TestFrontAnswersLikeFerretDB(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 11))
	s := storetest.Open(t)
	ctx := context.Background()
	if err := s.EnsureCollections(ctx, "http_cache", "pages"); err != nil {
		t.Fatal(err)
	}
	var docs []bson.D
	for i := range 400 {
		docs = append(docs, randomPage(r, i))
	}
	insertPages(t, s, docs)
	if err := store.IndexIDsOf(ctx, s); err != nil {
		t.Fatal(err)
	}
	const n = 80
	if answered := compareRandomQueries(t, r, s, n); answered < n {
		t.Errorf("the front answered %d of %d queries, want all", answered, n)
	}

	// A document whose status is an array (matched by its elements) or a
	// string: the front must leave queries on status to FerretDB, and
	// answers must stay the same.
	insertPages(t, s, []bson.D{
		{{Key: "_id", Value: "dirty-array"}, {Key: "status", Value: bson.A{404, 200}}, {Key: "url", Value: "http://a.test/products/x"}},
		{{Key: "_id", Value: "dirty-string"}, {Key: "status", Value: "404"}},
	})
	compareRandomQueries(t, r, s, n/2)
}
