package store_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// recordLog keeps the messages of the records at WARN and above.
type recordLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordLog) WithGroup(string) slog.Handler            { return h }
func (h *recordLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	h.msgs = append(h.msgs, msg)
	return nil
}

// openLogged opens the embedded store on dir with a recording logger.
func openLogged(t *testing.T, dir string) (*store.Store, *recordLog) {
	t.Helper()
	log := &recordLog{}
	s, err := store.Open(context.Background(), store.Options{DataDir: dir, Logger: slog.New(log), Command: "test"})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, log
}

// alter runs statements on a database file of dir, as another FerretDB
// build might have laid it out.
func alter(t *testing.T, dir, db string, stmts ...string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, db+".sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if strings.Contains(q, "%s") {
			var table string
			if err := conn.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'responses'`).Scan(&table); err != nil {
				t.Fatal(err)
			}
			q = strings.ReplaceAll(q, "%s", `"`+table+`"`)
		}
		if _, err := conn.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestSelfCheckFallsBackToTheServer: on a data directory whose FerretDB
// tables are not laid out as the direct path expects, the store leaves the
// files to FerretDB, says so in one log line, and everything works through
// the server: the release fixture's cache entries read, new writes land.
func TestSelfCheckFallsBackToTheServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stmts  []string
		direct bool
	}{
		{"as written", nil, true},
		{"metadata table with another column", []string{`ALTER TABLE _ferretdb_collections ADD COLUMN extra TEXT`}, false},
		{"collection table with another column", []string{`ALTER TABLE %s ADD COLUMN extra TEXT`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
			alter(t, dir, "http_cache", tc.stmts...)
			s, log := openLogged(t, dir)
			coll := s.Collection("http_cache", "responses")
			if got := coll.Direct(); got != tc.direct {
				t.Fatalf("direct access: got %v, want %v (log %q)", got, tc.direct, log.msgs)
			}
			var fallback int
			for _, m := range log.msgs {
				if strings.Contains(m, "through the server") {
					fallback++
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tc.direct]; fallback != want || len(log.msgs) != want {
				t.Errorf("log at WARN and above: %q, want %d line(s) saying everything goes through the server", log.msgs, want)
			}
			if n, err := coll.Count(ctx, bson.D{}); err != nil || n != 10 {
				t.Errorf("cache entries of the fixture: %d, %v; want 10", n, err)
			}
			if err := coll.Upsert(ctx, "new", bson.D{{Key: "_id", Value: "new"}, {Key: "v", Value: 1}}); err != nil {
				t.Fatalf("upsert: %v", err)
			}
			if n, err := coll.Count(ctx, bson.D{}); err != nil || n != 11 {
				t.Errorf("after one upsert: %d, %v; want 11", n, err)
			}
		})
	}
}
