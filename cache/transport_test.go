package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// testClock is an injected clock; tests move it instead of sleeping.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// origin is an httptest server that counts requests and conditional 304s.
type origin struct {
	*httptest.Server
	requests    atomic.Int64
	notModified atomic.Int64
	mu          sync.Mutex
	lastHeader  http.Header
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		o.lastHeader = r.Header.Clone()
		o.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		if rec.status == http.StatusNotModified {
			o.notModified.Add(1)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) header() http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastHeader
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// testStoreURIEnv names a MongoDB deployment to run the transport tests
// against instead of the embedded server (the same suite on every store
// the cache supports), e.g. mongodb://127.0.0.1:27017/. Each test uses its
// own database there, dropped at the end.
const testStoreURIEnv = "CRAWLCACHE_TEST_MONGODB_URI"

// openTestStore opens the store the transport tests run against: the
// deployment in CRAWLCACHE_TEST_MONGODB_URI, else a fresh embedded store.
func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	uri := os.Getenv(testStoreURIEnv)
	if uri == "" {
		return storetest.Open(t)
	}
	s, err := store.Open(context.Background(), store.Options{URI: uri, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open %s: %v", testStoreURIEnv, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var droppedTestDBs sync.Map

// testDB is the database a test keeps its cache in: http_cache on a fresh
// embedded store, a per-test database on a shared deployment.
func testDB(t *testing.T, s *store.Store) tdb {
	t.Helper()
	if s.Embedded {
		return tdb{s, DefaultDatabase}
	}
	sum := sha256.Sum256([]byte(t.Name()))
	db := tdb{s, "crawlcache_test_" + hex.EncodeToString(sum[:8])}
	if _, seen := droppedTestDBs.LoadOrStore(db.name, true); !seen {
		_ = s.DropDatabase(context.Background(), db.name) // left over from an aborted run
		t.Cleanup(func() { _ = s.DropDatabase(context.Background(), db.name); droppedTestDBs.Delete(db.name) })
	}
	return db
}

// tdb is a database of a test store.
type tdb struct {
	s    *store.Store
	name string
}

// Collection is the handle of collection name.
func (d tdb) Collection(name string) *store.Collection { return d.s.Collection(d.name, name) }

// options is opts with the cache in this database.
func (d tdb) options(opts Options) Options {
	opts.Database = d.name
	return opts
}

// transportEnv is a Transport on a fresh store.
type transportEnv struct {
	t     *testing.T
	store *store.Store
	db    tdb
	tr    *Transport
	clock *testClock
}

func newTransportEnv(t *testing.T, opts Options) *transportEnv {
	t.Helper()
	return newTransportEnvOn(t, openTestStore(t), opts)
}

func newTransportEnvOn(t *testing.T, s *store.Store, opts Options) *transportEnv {
	t.Helper()
	clock := newTestClock()
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db := testDB(t, s)
	tr, err := New(context.Background(), s, db.options(opts))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &transportEnv{t: t, store: s, db: db, tr: tr, clock: clock}
}

// get does a GET through the transport and returns the body and how it was
// served.
func (e *transportEnv) get(ctx context.Context, url string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := e.tr.RoundTrip(e.request(ctx, url, header...))
	if err != nil {
		e.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, body
}

// request is a GET of url on ctx (nil: Background) with the header
// name/value pairs.
func (e *transportEnv) request(ctx context.Context, url string, header ...string) *http.Request {
	e.t.Helper()
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

// expectServed does a GET and checks how it was served.
func (e *transportEnv) expectServed(url, want string, header ...string) []byte {
	e.t.Helper()
	resp, body := e.get(nil, url, header...)
	if got := Served(resp); got != want {
		e.t.Fatalf("GET %s: served %q, want %q (status %d)", url, got, want, resp.StatusCode)
	}
	return body
}

// rawDoc returns the stored document for a key from a collection, nil if
// there is none.
func (e *transportEnv) rawDoc(collection, key string) bson.Raw {
	e.t.Helper()
	raw, err := e.db.Collection(collection).Get(context.Background(), key)
	if err != nil {
		return nil
	}
	return raw
}

func keyOf(t *testing.T, url string, p Policy) string {
	t.Helper()
	k, err := KeyForURL(http.MethodGet, url, p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTransportHitMiss(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		io.WriteString(w, "<html>hello "+r.URL.Path+"</html>")
	})
	e := newTransportEnv(t, Options{})
	first := e.expectServed(o.URL+"/p", ServedMiss)
	resp, second := e.get(nil, o.URL+"/p")
	if Served(resp) != ServedHit {
		t.Fatalf("second GET served %q, want hit", Served(resp))
	}
	if !bytes.Equal(first, second) {
		t.Errorf("replayed body = %q, want %q", second, first)
	}
	if got := resp.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("replayed X-Multi = %q, want [a b]", got)
	}
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(first)) {
		t.Errorf("replayed status %d length %d, want 200 %d", resp.StatusCode, resp.ContentLength, len(first))
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
	st := e.tr.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.SavedBytes != int64(len(first)) || st.NetworkBytes != int64(len(first)) {
		t.Errorf("stats = %+v, want 1 hit, 1 miss, %d bytes each way", st, len(first))
	}
	// The stored document is readable: body as a string, headers by name.
	var entry Entry
	if err := bson.Unmarshal(e.rawDoc(ResponsesCollection, keyOf(t, o.URL+"/p", Policy{})), &entry); err != nil {
		t.Fatal(err)
	}
	if s, ok := entry.Body.(string); !ok || s != string(first) {
		t.Errorf("stored body = %#v, want the string %q", entry.Body, first)
	}
	if entry.URL != o.URL+"/p" || entry.Status != 200 || entry.Method != "GET" || entry.Size != int64(len(first)) {
		t.Errorf("stored doc = url %q status %d method %q size %d", entry.URL, entry.Status, entry.Method, entry.Size)
	}
	if entry.Expires != nil {
		t.Errorf("expires = %v, want absent (never)", entry.Expires)
	}
}

func TestTransportPolicyExpiry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.URL.Path)
	})
	host := strings.TrimPrefix(o.URL, "http://")
	policy := Policy{
		ExpireAfter: Expiry{Kind: ExpireAfter, After: time.Hour},
		URLsExpireAfter: []URLExpiry{
			{Pattern: host + "/news/*", Expiry: Expiry{Kind: ExpireAfter}}, // 0s: every use
			{Pattern: host + "/static/*", Expiry: Expiry{Kind: ExpireNever}},
			{Pattern: "*/private/*", Expiry: Expiry{Kind: ExpireDoNotCache}},
			{Pattern: host + "/*", Expiry: Expiry{Kind: ExpireAfter, After: 2 * time.Hour}},
		},
	}
	tests := []struct {
		name    string
		path    string
		advance time.Duration
		want    string
	}{
		{"zero seconds refetches at once", "/news/a", 0, ServedMiss},
		{"never stays fresh", "/static/a", 1000 * time.Hour, ServedHit},
		{"do_not_cache passes through", "/private/a", 0, ServedMiss},
		{"a pattern rule overrides expire_after", "/other", 90 * time.Minute, ServedHit},
		{"rule expiry applies", "/other2", 3 * time.Hour, ServedMiss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTransportEnv(t, Options{Policy: policy})
			e.expectServed(o.URL+tc.path, ServedMiss)
			e.clock.Advance(tc.advance)
			e.expectServed(o.URL+tc.path, tc.want)
		})
	}
}

func TestTransportCoalescesConcurrentMisses(t *testing.T) {
	const n = 8
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 10000))
	})
	e := newTransportEnv(t, Options{})
	var joined atomic.Int64
	e.tr.flights.joined = func(string) {
		if joined.Add(1) == n-1 {
			close(release)
		}
	}
	var wg sync.WaitGroup
	bodies := make([][]byte, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, o.URL+"/same", nil)
			resp, err := e.tr.RoundTrip(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			bodies[i], _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if got := o.requests.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	for i, b := range bodies {
		if len(b) != 10000 {
			t.Errorf("waiter %d got %d bytes, want 10000", i, len(b))
		}
	}
}

func TestTransportTooLargePassesThrough(t *testing.T) {
	big := strings.Repeat("0123456789", 500)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, big)
	})
	e := newTransportEnv(t, Options{MaxBodySize: 1024})
	for i := range 2 {
		if body := e.expectServed(o.URL+"/big", ServedMiss); string(body) != big {
			t.Fatalf("request %d: body of %d bytes, want %d", i, len(body), len(big))
		}
	}
	if st := e.tr.Stats(); st.TooLarge != 2 || st.NetworkBytes != int64(2*len(big)) {
		t.Errorf("stats = %+v, want TooLarge 2 and NetworkBytes %d", st, 2*len(big))
	}
	if e.rawDoc(ResponsesCollection, keyOf(t, o.URL+"/big", Policy{})) != nil {
		t.Error("a too-large body was stored")
	}
}

func TestTransportTruncatedBodyIsNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("y", 400))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	e := newTransportEnv(t, Options{})
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, o.URL+"/trunc", nil)
		resp, err := e.tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("request %d: read %d bytes without error, want the truncation error", i, len(body))
		}
		if Served(resp) != ServedMiss {
			t.Errorf("request %d served %q, want miss", i, Served(resp))
		}
	}
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin requests = %d, want 2 (nothing stored)", n)
	}
	if e.rawDoc(ResponsesCollection, keyOf(t, o.URL+"/trunc", Policy{})) != nil {
		t.Error("a truncated body was stored")
	}
}

func TestTransportCorruptDocumentIsAMiss(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "fresh")
	})
	tests := []struct {
		name string
		doc  bson.M
	}{
		{"status is a string", bson.M{"status": "200", "headers": bson.M{}, "size": 0}},
		{"missing dates", bson.M{"status": 200, "headers": bson.M{}, "size": 0}},
		{"header value is a number", bson.M{"status": 200, "headers": bson.M{"X": 1}, "size": 0, "created_at": time.Now(), "validated_at": time.Now()}},
		{"body shorter than size", bson.M{"status": 200, "headers": bson.M{}, "body": "abc", "size": 10, "created_at": time.Now(), "validated_at": time.Now()}},
		{"body is a number", bson.M{"status": 200, "headers": bson.M{}, "body": 12, "size": 2, "created_at": time.Now(), "validated_at": time.Now()}},
	}
	s := openTestStore(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTransportEnvOn(t, s, Options{})
			url := o.URL + "/corrupt/" + string(rune('a'+i))
			tc.doc["_id"] = keyOf(t, url, Policy{})
			coll := e.db.Collection(ResponsesCollection)
			if err := coll.Insert(context.Background(), tc.doc); err != nil {
				t.Fatal(err)
			}
			if body := e.expectServed(url, ServedMiss); string(body) != "fresh" {
				t.Errorf("body = %q, want fresh", body)
			}
			e.expectServed(url, ServedHit) // the corrupt document was replaced
		})
	}
}

func TestTransportStoreDownDegradesToNetwork(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "body")
	})
	e := newTransportEnv(t, Options{})
	e.expectServed(o.URL+"/a", ServedMiss)
	e.expectServed(o.URL+"/a", ServedHit)
	if err := e.store.Close(context.Background()); err != nil {
		t.Fatalf("close store: %v", err)
	}
	for range 2 {
		if body := e.expectServed(o.URL+"/a", ServedMiss); string(body) != "body" {
			t.Errorf("body = %q, want body", body)
		}
	}
	if st := e.tr.Stats(); st.StoreErrors != 1 || st.Misses != 3 {
		t.Errorf("stats = %+v, want 1 store error (then the store is left alone) and 3 misses", st)
	}
}

func TestTransportDoesNotMutateRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "x")
	})
	e := newTransportEnv(t, Options{Policy: Policy{ExpireAfter: Expiry{Kind: ExpireAfter}}})
	e.expectServed(o.URL+"/m", ServedMiss)
	req, _ := http.NewRequest(http.MethodGet, o.URL+"/m", nil)
	req.Header.Set("User-Agent", "test")
	before := req.Header.Clone()
	resp, err := e.tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if Served(resp) != ServedRevalidated {
		t.Fatalf("served %q, want revalidated", Served(resp))
	}
	if len(req.Header) != len(before) || req.Header.Get("If-None-Match") != "" {
		t.Errorf("request header changed to %v, want %v", req.Header, before)
	}
}

func TestTransportPassesErrorsThrough(t *testing.T) {
	e := newTransportEnv(t, Options{Upstream: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("dial refused")
	})})
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	if resp, err := e.tr.RoundTrip(req); err == nil || resp != nil {
		t.Fatalf("RoundTrip = %v, %v; want nil and the upstream error", resp, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportOddHeadersReplay(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Latin"] = []string{"caf\xe9", "ok"}
		w.Header()["X-One-Latin"] = []string{"na\xefve"}
		w.Header()["X.Dotted"] = []string{"dot"}
		w.Header()["$Dollar"] = []string{"dollar"}
		io.WriteString(w, "ok")
	})
	e := newTransportEnv(t, Options{})
	first, _ := e.get(nil, o.URL+"/h")
	resp, _ := e.get(nil, o.URL+"/h")
	if Served(resp) != ServedHit {
		t.Fatalf("served %q, want hit (stats %+v)", Served(resp), e.tr.Stats())
	}
	for _, name := range []string{"X-Latin", "X-One-Latin", "X.dotted", "$dollar"} {
		want := first.Header[name]
		if got := resp.Header[name]; len(want) == 0 || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("replayed header %s = %q, want %q", name, got, want)
		}
	}
}

// uniquePath returns a path suffix unique to the running (sub)test. Table
// tests that share one store give each case its own URL with it: an origin
// started by a later case can get the port of an earlier, closed one, and
// would then find that case's stored response.
func uniquePath(t *testing.T) string {
	return "/" + url.PathEscape(t.Name())
}
