package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// adminT0 is the injected "now" of admin tests.
var adminT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// adminClock is a settable clock for Admin.
type adminClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *adminClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *adminClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// adminStore is one embedded store shared by the subtests of a test; each
// subtest gets its own database.
type adminStore struct {
	s *store.Store
}

func newAdminStore(t *testing.T) adminStore {
	t.Helper()
	return adminStore{s: storetest.Open(t)}
}

// admin returns an Admin over a fresh database named after the test, with
// its clock at adminT0.
func (as adminStore) admin(t *testing.T) (*cache.Admin, testDatabase, *adminClock) {
	t.Helper()
	clock := &adminClock{t: adminT0}
	db := testDatabase{as.s, fmt.Sprintf("t%x", time.Now().UnixNano())}
	t.Cleanup(func() { _ = as.s.DropDatabase(context.Background(), db.name) })
	return cache.NewAdmin(as.s, db.name, clock.Now), db, clock
}

// testDatabase is a database of a test store.
type testDatabase struct {
	s    *store.Store
	name string
}

// Collection is the handle of collection name.
func (d testDatabase) Collection(name string) *store.Collection { return d.s.Collection(d.name, name) }

// ago is adminT0 minus d.
func ago(d time.Duration) time.Time { return adminT0.Add(-d) }

func ptr(t time.Time) *time.Time { return &t }

// putDoc stores a response as the transport would.
func putDoc(t *testing.T, db testDatabase, key, url string, status int, validated time.Time, expires *time.Time) {
	t.Helper()
	body := "<html>" + key + "</html>"
	entry := cache.Entry{
		ID: key, URL: url, Method: "GET", Status: status, Proto: "HTTP/1.1",
		Headers:     bson.M{"Content-Type": "text/html; charset=utf-8"},
		Body:        body,
		ContentType: "text/html; charset=utf-8",
		Size:        int64(len(body)),
		CreatedAt:   validated, ValidatedAt: validated, Expires: expires,
		Request: cache.RequestInfo{Method: "GET", URL: url},
	}
	if err := db.Collection(cache.ResponsesCollection).Insert(context.Background(), entry); err != nil {
		t.Fatalf("insert response %s: %v", key, err)
	}
}

// putRev stores a revalidation (a 304) for key.
func putRev(t *testing.T, db testDatabase, key string, validated time.Time, expires *time.Time) {
	t.Helper()
	rev := cache.Revalidation{ID: key, ValidatedAt: validated, Expires: expires, Headers: bson.M{"Etag": `"v2"`}}
	if err := db.Collection(cache.RevalidationsCollection).Insert(context.Background(), rev); err != nil {
		t.Fatalf("insert revalidation %s: %v", key, err)
	}
}

// putRedirect stores a redirect hop from key to target.
func putRedirect(t *testing.T, db testDatabase, key, target string, created time.Time) {
	t.Helper()
	r := cache.Redirect{ID: key, URL: "https://example.org/r/" + key, Target: target, CreatedAt: created}
	if err := db.Collection(cache.RedirectsCollection).Insert(context.Background(), r); err != nil {
		t.Fatalf("insert redirect %s: %v", key, err)
	}
}

// ids lists the _ids in a collection, sorted.
func ids(t *testing.T, db testDatabase, coll string) []string {
	t.Helper()
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := db.Collection(coll).All(context.Background(), bson.D{}, store.FindOptions{Projection: bson.D{{Key: "_id", Value: 1}}}, &docs); err != nil {
		t.Fatalf("list %s: %v", coll, err)
	}
	out := []string{}
	for _, d := range docs {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

func TestAdminStats(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	putDoc(t, db, "a", "https://example.org/a", 200, ago(48*time.Hour), ptr(ago(24*time.Hour)))
	putDoc(t, db, "b", "https://example.org/b", 404, ago(time.Hour), nil)
	putDoc(t, db, "c", "https://example.org/c", 200, ago(72*time.Hour), ptr(ago(48*time.Hour)))
	putRev(t, db, "c", ago(2*time.Hour), ptr(adminT0.Add(time.Hour)))
	putRedirect(t, db, "r", "a", ago(time.Hour))
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}

	st, err := a.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	size := int64(len("<html>a</html>") * 3)
	checks := []struct {
		name      string
		got, want any
	}{
		{"count", st.Count, int64(3)},
		{"total size", st.TotalSize, size},
		{"stale (a: expires passed; c: revalidation made it fresh)", st.Stale, int64(1)},
		{"expired (a only: c was revalidated 2h ago)", st.Expired, int64(1)},
		{"revalidations", st.Revalidations, int64(1)},
		{"redirects", st.Redirects, int64(1)},
		{"ttl", st.TTL.TTL, 24 * time.Hour},
		{"mechanism", st.TTL.Mechanism, cache.MechanismSweeper},
		{"oldest", st.Oldest, ago(48 * time.Hour)},
		{"newest", st.Newest, ago(time.Hour)},
		{"200s", st.ByStatus[200], int64(2)},
		{"404s", st.ByStatus[404], int64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestAdminStatsEmpty(t *testing.T) {
	a, _, _ := newAdminStore(t).admin(t)
	st, err := a.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats of an empty cache: %v", err)
	}
	if st.Count != 0 || !st.Oldest.IsZero() || st.TTL.Set {
		t.Errorf("Stats of an empty cache: got %+v, want zero count, zero oldest, no TTL", st)
	}
}

func TestAdminList(t *testing.T) {
	ctx := context.Background()
	as := newAdminStore(t)
	a, db, _ := as.admin(t)
	putDoc(t, db, "k3", "https://example.org/news/2", 200, ago(48*time.Hour), ptr(ago(time.Hour)))
	putDoc(t, db, "k1", "https://example.org/news/1", 200, ago(time.Hour), nil)
	putDoc(t, db, "k2", "https://other.example/x.pdf", 200, ago(30*time.Hour), nil)
	putRev(t, db, "k2", ago(time.Hour), nil)
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts cache.ListOptions
		want []string
	}{
		{"all, by url", cache.ListOptions{}, []string{"k1", "k3", "k2"}},
		{"expired", cache.ListOptions{Expired: true}, []string{"k3"}},
		{"stale", cache.ListOptions{Stale: true}, []string{"k3"}},
		{"match path", cache.ListOptions{Match: "example.org/news/*"}, []string{"k1", "k3"}},
		{"match with scheme", cache.ListOptions{Match: "https://other.example/*"}, []string{"k2"}},
		{"match host only", cache.ListOptions{Match: "other.example"}, []string{"k2"}},
		{"match suffix", cache.ListOptions{Match: "*.pdf"}, []string{"k2"}},
		{"match one char", cache.ListOptions{Match: "*/news/?"}, []string{"k1", "k3"}},
		{"no match", cache.ListOptions{Match: "nowhere.example"}, []string{}},
		{"limit", cache.ListOptions{Limit: 2}, []string{"k1", "k3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.List(ctx, tt.opts)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			keys := []string{}
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("List(%+v): got %v, want %v", tt.opts, keys, tt.want)
			}
		})
	}
	t.Run("revalidated entry has effective times", func(t *testing.T) {
		got, err := a.List(ctx, cache.ListOptions{Match: "*.pdf"})
		if err != nil || len(got) != 1 {
			t.Fatalf("List: %v, %d entries", err, len(got))
		}
		if e := got[0]; !e.Revalidated || !e.ValidatedAt.Equal(ago(time.Hour)) || !e.CreatedAt.Equal(ago(30*time.Hour)) || e.Expired {
			t.Errorf("got %+v, want revalidated, validated 1h ago, created 30h ago, not expired", e)
		}
	})
}

func TestAdminShow(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	putDoc(t, db, "get-old", "https://example.org/p", 200, ago(3*time.Hour), nil)
	putDoc(t, db, "get-new", "https://example.org/p", 200, ago(2*time.Hour), nil)
	putRev(t, db, "get-new", ago(time.Hour), nil)
	head := cache.Entry{ID: "head", URL: "https://example.org/p", Method: "HEAD", Status: 200, Headers: bson.M{}, CreatedAt: ago(time.Minute), ValidatedAt: ago(time.Minute)}
	if err := db.Collection(cache.ResponsesCollection).Insert(ctx, head); err != nil {
		t.Fatal(err)
	}

	entry, rev, err := a.Show(ctx, "https://example.org/p")
	if err != nil {
		t.Fatalf("Show: %v", err)
	}
	if entry.ID != "get-new" || entry.Body != "<html>get-new</html>" {
		t.Errorf("Show: got %s with body %v, want the GET validated last (get-new)", entry.ID, entry.Body)
	}
	if rev == nil || !rev.ValidatedAt.Equal(ago(time.Hour)) {
		t.Errorf("Show: got revalidation %+v, want the one validated 1h ago", rev)
	}

	// A plain GET under the default policy is found by its key, in any
	// spelling of the URL that normalizes the same.
	key, err := cache.KeyForURL("GET", "https://example.org/q?a=1&b=2", cache.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	putDoc(t, db, key, "https://example.org/q?a=1&b=2", 200, ago(time.Hour), nil)
	putDoc(t, db, "variant", "https://example.org/q?a=1&b=2", 200, adminT0, nil) // e.g. a Vary variant
	for _, u := range []string{"https://example.org/q?a=1&b=2", "HTTPS://Example.org:443/q?b=2&a=1#top"} {
		entry, _, err := a.Show(ctx, u)
		if err != nil || entry.ID != key {
			t.Errorf("Show(%s): got %v, %v; want the entry under its key %s", u, entry, err, key)
		}
	}
	// Found by a scan of the normalized URL when the key differs.
	if entry, _, err := a.Show(ctx, "https://EXAMPLE.org/p"); err != nil || entry.ID != "get-new" {
		t.Errorf("Show of an unnormalized URL stored under another key: got %v, %v; want get-new", entry, err)
	}

	_, _, err = a.Show(ctx, "https://example.org/missing")
	if !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Show of a missing URL: got %v, want ErrNotFound", err)
	}
	if _, _, err := a.Show(ctx, "not a url"); err == nil || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Show of a relative URL: got %v, want an error that is not ErrNotFound", err)
	}
}

func TestAdminClear(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	putDoc(t, db, "a", "https://example.org/a", 200, ago(time.Hour), nil)
	putDoc(t, db, "b", "https://example.org/b", 200, ago(time.Hour), nil)
	putRev(t, db, "a", adminT0, nil)
	putRedirect(t, db, "r", "a", adminT0)
	if _, err := a.SetTTL(ctx, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	n, err := a.Clear(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Clear: got %d, %v; want 2, nil", n, err)
	}
	for _, coll := range []string{cache.ResponsesCollection, cache.RevalidationsCollection, cache.RedirectsCollection} {
		if got := ids(t, db, coll); len(got) != 0 {
			t.Errorf("after Clear, %s holds %v, want nothing", coll, got)
		}
	}
	if info, err := a.TTL(ctx); err != nil || !info.Set {
		t.Errorf("after Clear: TTL %+v, %v; want the TTL kept", info, err)
	}
}

// TestAdminSeesTransportWrites checks Admin against what the Transport
// really stores: Show finds the entry by its key, a 304 shows up as a
// revalidation that moves the effective validated_at, and the sweeper
// keeps the revalidated entry.
func TestAdminSeesTransportWrites(t *testing.T) {
	ctx := context.Background()
	as := newAdminStore(t)
	_, db, clock := as.admin(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "<p>"+r.URL.Path+"</p>")
	}))
	t.Cleanup(origin.Close)
	tr, err := cache.New(ctx, db.s, cache.Options{
		Database: db.name, Now: clock.Now,
		Policy: cache.Policy{ExpireAfter: cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour}},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	get := func(path string) {
		t.Helper()
		resp, err := client.Get(origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	a := cache.NewAdmin(db.s, db.name, clock.Now)

	clock.Set(ago(48 * time.Hour))
	get("/kept")
	get("/dropped")
	clock.Set(ago(time.Hour))
	get("/kept") // expired after an hour: revalidated by a 304

	entry, rev, err := a.Show(ctx, origin.URL+"/kept?")
	if err != nil {
		t.Fatalf("Show: %v", err)
	}
	if entry.Body != "<p>/kept</p>" || rev == nil || !rev.ValidatedAt.Equal(ago(time.Hour)) {
		t.Errorf("Show: body %v, revalidation %+v; want the stored body and a revalidation 1h ago", entry.Body, rev)
	}
	entries, err := a.List(ctx, cache.ListOptions{Match: "*/kept"})
	if err != nil || len(entries) != 1 || !entries[0].Revalidated || !entries[0].ValidatedAt.Equal(ago(time.Hour)) {
		t.Errorf("List: %+v, %v; want /kept revalidated 1h ago", entries, err)
	}

	clock.Set(adminT0)
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Sweep(ctx); err != nil || n != 1 {
		t.Errorf("Sweep: got %d, %v; want 1 (/dropped)", n, err)
	}
	if _, _, err := a.Show(ctx, origin.URL+"/dropped"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Show(/dropped) after Sweep: %v, want ErrNotFound", err)
	}
	if _, _, err := a.Show(ctx, origin.URL+"/kept"); err != nil {
		t.Errorf("Show(/kept) after Sweep: %v, want it kept", err)
	}
}
