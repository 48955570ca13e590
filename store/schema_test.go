package store_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// openWith opens the embedded store on dir with extra migrations; the
// caller closes it.
func openWith(t *testing.T, dir string, steps ...store.Migration) (*store.Store, error) {
	t.Helper()
	return store.Open(context.Background(), store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Command: "test", Migrations: steps})
}

func mustOpenWith(t *testing.T, dir string, steps ...store.Migration) *store.Store {
	t.Helper()
	s, err := openWith(t, dir, steps...)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

func countResponses(t *testing.T, s *store.Store) int64 {
	t.Helper()
	n, err := s.Database("http_cache").Collection("responses").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count cached responses: %v", err)
	}
	return n
}

// TestSchemaUpgradesTheReleaseFixture: the data directory of release
// e6c68c8 (no schema version) is upgraded in place to the version this
// binary knows, each step running once, in order, registered steps after
// the store's own, and its data stays readable.
func TestSchemaUpgradesTheReleaseFixture(t *testing.T) {
	ctx := context.Background()
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	var ran []int
	step := func(v int) store.Migration {
		return store.Migration{Version: v, Name: "test step", Run: func(ctx context.Context, s *store.Store) error {
			ran = append(ran, v)
			_, err := s.Database("crawlcache").Collection("steps").InsertOne(ctx, bson.D{{Key: "v", Value: v}})
			return err
		}}
	}
	steps := []store.Migration{step(3), step(2)} // any order: they run by Version
	s := mustOpenWith(t, dir, steps...)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 3 {
		t.Errorf("schema version after the upgrade: %d, %v; want 3", v, err)
	}
	if got := countResponses(t, s); got != 10 {
		t.Errorf("cached responses after the upgrade: %d, want the fixture's 10", got)
	}
	_ = s.Close(ctx)
	s = mustOpenWith(t, dir, steps...) // a second start runs nothing
	defer s.Close(ctx)
	if want := []int{2, 3}; !slices.Equal(ran, want) {
		t.Errorf("steps run: %v, want %v (each once, in order)", ran, want)
	}
	var doc struct {
		History []struct{ Version int } `bson:"history"`
	}
	if err := s.Database("crawlcache").Collection("meta").FindOne(ctx, bson.D{{Key: "_id", Value: "schema"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.History) != 3 {
		t.Errorf("history %+v, want versions 1, 2, 3", doc.History)
	}
}

// TestSchemaRefusesANewerStore: a store written by a newer crawlcache is
// refused with a clear message, and its documents are left as they are.
func TestSchemaRefusesANewerStore(t *testing.T) {
	ctx := context.Background()
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	s := mustOpenWith(t, dir)
	if _, err := s.Database("crawlcache").Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 99}}}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)

	_, err := openWith(t, dir, store.Migration{Version: 2, Name: "must not run", Run: func(context.Context, *store.Store) error {
		t.Error("a step ran on a newer store")
		return nil
	}})
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("open a store at schema version 99: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{dir, "99", "up to 2", "newer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	// A binary that knows version 99 reads it as it was.
	s = mustOpenWith(t, dir, store.Migration{Version: 99, Name: "newer", Run: func(context.Context, *store.Store) error { return nil }})
	defer s.Close(ctx)
	if v, _ := s.SchemaVersion(ctx); v != 99 {
		t.Errorf("schema version after the refusal: %d, want 99 untouched", v)
	}
	if got := countResponses(t, s); got != 10 {
		t.Errorf("cached responses after the refusal: %d, want 10", got)
	}
}

// TestSchemaTwoWorkersStartAtOnce: workers opening one store at once (by
// URI, as on MongoDB) run each step once; every one of them opens.
func TestSchemaTwoWorkersStartAtOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: t.TempDir(), Command: "db serve", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var runs atomic.Int32
	step := store.Migration{Version: 2, Name: "count", Run: func(ctx context.Context, s *store.Store) error {
		runs.Add(1)
		_, err := s.Database("crawlcache").Collection("steps").InsertOne(ctx, bson.D{{Key: "n", Value: 1}})
		return err
	}}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := store.Open(ctx, store.Options{URI: srv.URI(), Logger: slog.New(slog.DiscardHandler), Migrations: []store.Migration{step}})
			if err == nil {
				var v int
				if v, err = s.SchemaVersion(ctx); err == nil && v != 2 {
					t.Errorf("worker %d sees schema version %d, want 2", i, v)
				}
				_ = s.Close(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the step ran %d times, want once", n)
	}
}

func TestSchemaRefusesAVersionUsedTwice(t *testing.T) {
	noop := func(context.Context, *store.Store) error { return nil }
	_, err := openWith(t, t.TempDir(), store.Migration{Version: 1, Name: "mine", Run: noop})
	if err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("open with a second version 1: %v, want an error saying it is used twice", err)
	}
}

// TestSchemaQuarantinesPoisonedRows: a release fixture holding rows
// FerretDB cannot read (a field name twice, as the direct writer of
// earlier releases stored it; a top-level name with a control character,
// as FerretDB itself stores it) fails every count of its collection; after
// the upgrade the collection reads whole and the rows' text is kept in
// crawlcache.quarantine.
func TestSchemaQuarantinesPoisonedRows(t *testing.T) {
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	poison(t, dir)
	checkQuarantined(t, storetest.OpenDir(t, dir))
}

// TestSchemaDbServeUpgrades: a data directory served by db serve
// (StartServer, then Server.Upgrade) is upgraded by the server's process,
// which owns the files: the poisoned rows are moved out too.
func TestSchemaDbServeUpgrades(t *testing.T) {
	ctx := context.Background()
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	poison(t, dir)
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: dir, Command: "db serve", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Upgrade(ctx, nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)}) // connects to the server
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 1 {
		t.Errorf("schema version: %d, %v; want 1", v, err)
	}
	checkQuarantined(t, s)
	if err := srv.Upgrade(ctx, []store.Migration{{Version: 1, Name: "again", Run: func(context.Context, *store.Store) error { return nil }}}, nil); err == nil {
		t.Errorf("upgrade with version 1 twice: no error")
	}
}

// poison adds to the fixture's responses two rows FerretDB cannot read.
func poison(t *testing.T, dir string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "http_cache.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	var table string
	if err := conn.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'responses'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		`{"$s":{"p":{"_id":{"t":"string"},"a":{"t":"int"},"a":{"t":"int"}},"$k":["_id","a","a"]},"_id":"dup","a":1,"a":2}`,
		"{\"$s\":{\"p\":{\"_id\":{\"t\":\"string\"},\"\\n\":{\"t\":\"int\"}},\"$k\":[\"_id\",\"\\n\"]},\"_id\":\"ctl\",\"\n\":1}",
	} {
		if _, err := conn.Exec(`INSERT INTO "`+table+`" (_ferretdb_sjson) VALUES (?)`, text); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.Close()
}

// checkQuarantined: the poisoned rows are in crawlcache.quarantine, and the
// collection reads whole.
func checkQuarantined(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	if got := countResponses(t, s); got != 10 {
		t.Errorf("cached responses after the upgrade: %d, want the fixture's 10", got)
	}
	q := s.Database("crawlcache").Collection(store.QuarantineCollection)
	cur, err := q.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var kept []struct {
		Collection string `bson:"collection"`
		SJSON      string `bson:"sjson"`
	}
	if err := cur.All(ctx, &kept); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("quarantined %d documents, want 2: %+v", len(kept), kept)
	}
	for _, k := range kept {
		if k.Collection != "responses" || !strings.Contains(k.SJSON, `"_id":"dup"`) && !strings.Contains(k.SJSON, `"_id":"ctl"`) {
			t.Errorf("quarantined %+v, want a poisoned row of responses with its text", k)
		}
	}
}

// TestSchemaAfterAKilledUpgrade: a step that fails leaves the version where
// it was, and the next start runs it again; a lease left by an owner killed
// while upgrading does not make the next owner wait for it to lapse.
func TestSchemaAfterAKilledUpgrade(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a wait for the lease would hit this
	defer cancel()
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	fail := store.Migration{Version: 2, Name: "fails", Run: func(context.Context, *store.Store) error { return errors.New("disk full") }}
	_, err := openWith(t, dir, fail)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "stays at version 1") {
		t.Fatalf("open with a failing step: %v, want its error and the version it stays at", err)
	}
	s := mustOpenWith(t, dir)
	// As a process killed in the middle of a step leaves it.
	if _, err := s.Database("crawlcache").Collection("meta").InsertOne(ctx, bson.D{{Key: "_id", Value: "schema-lock"},
		{Key: "holder", Value: "pid 1 (killed)"}, {Key: "expires_at", Value: time.Now().Add(5 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	ran := false
	s, err = store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Migrations: []store.Migration{
		{Version: 2, Name: "works", Run: func(context.Context, *store.Store) error { ran = true; return nil }},
	}})
	if err != nil {
		t.Fatalf("open after the failure: %v", err)
	}
	defer s.Close(ctx)
	if v, _ := s.SchemaVersion(ctx); !ran || v != 2 {
		t.Errorf("step ran: %v, version %d; want it run and version 2", ran, v)
	}
}

// TestSchemaDocumentEditedByHand: a schema document that does not decode
// stops Open with a message that names it and says what to do.
func TestSchemaDocumentEditedByHand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenWith(t, dir)
	if _, err := s.Database("crawlcache").Collection("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "schema"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: "two"}}}}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctx)
	_, err := openWith(t, dir)
	if err == nil || !strings.Contains(err.Error(), "crawlcache.meta") || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("open with a schema version %q: %v, want an error naming crawlcache.meta and saying what to do", "two", err)
	}
}
