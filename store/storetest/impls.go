package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"crawlcache/store"
)

// MongoDBEnv names the variable that points the tests at a real MongoDB
// (a mongodb:// URI). Unset, the tests that need one are skipped.
const MongoDBEnv = "CRAWLCACHE_TEST_MONGODB_URI"

// Impl is one implementation of the storage contract, open for a test.
type Impl struct {
	// Store is open until the test ends (or Kill).
	Store *store.Store
	// DB is the database the test may use (fresh for this test).
	DB string
	// Direct is whether collection handles must read and write the files
	// themselves (the embedded implementation).
	Direct bool
	// Kill makes the store go away under the open Store (the server
	// stops), or is nil when the test cannot do that (MongoDB).
	Kill func()
	// URI is where another process would connect to the same store.
	URI string
}

// Another opens a second client of im's store at im.URI, as another
// process would (for the embedded store: through its server's query
// front), closed when the test ends.
func (im Impl) Another(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URI: im.URI, Logger: slog.New(slog.DiscardHandler), ConnectTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("open a second client at %s: %v", im.URI, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// OpenEmbedded is the embedded implementation: the store runs in this
// process and reads and writes its files directly.
func OpenEmbedded(t testing.TB) Impl {
	t.Helper()
	dir := t.TempDir()
	s := OpenDir(t, dir)
	return Impl{Store: s, DB: "acceptance", Direct: true, URI: s.URI,
		Kill: func() { _ = s.Close(context.Background()) }}
}

// OpenWire is the wire implementation talking to an embedded server that
// another part of the program runs, as `crawlcache db serve` does for
// other processes: every operation goes through mongo-driver.
func OpenWire(t testing.TB) Impl {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: t.TempDir(), Logger: quiet, Command: "db serve"})
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(srv.Close)
	s, err := store.Open(ctx, store.Options{URI: srv.URI(), Logger: quiet, ConnectTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("open store at %s: %v", srv.URI(), err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return Impl{Store: s, DB: "acceptance", Kill: srv.Close, URI: srv.URI()}
}

// OpenMongoDB is the wire implementation on the MongoDB that MongoDBEnv
// names, in a database of its own, dropped when the test ends; the test is
// skipped when the variable is unset.
func OpenMongoDB(t testing.TB) Impl {
	t.Helper()
	uri := os.Getenv(MongoDBEnv)
	if uri == "" {
		t.Skipf("%s is not set: no MongoDB to test against", MongoDBEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URI: uri, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open MongoDB (%s): %v", MongoDBEnv, err)
	}
	db := fmt.Sprintf("crawlcache_test_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_ = s.DropDatabase(context.Background(), db)
		_ = s.Close(context.Background())
	})
	return Impl{Store: s, DB: db, URI: uri}
}
