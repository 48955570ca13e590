package store

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// openDir opens the embedded store on dir for a test of this package
// (storetest imports store, so these tests cannot use it) and closes it
// when the test ends; closing it earlier is fine.
func openDir(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Command: "test"})
	if err != nil {
		tb.Fatalf("open embedded store in %s: %v", dir, err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// TestClientOptionsDefaultsOnlyWhereURISilent: crawlcache's timeouts and
// application name apply only to what the URI leaves unset.
func TestClientOptionsDefaultsOnlyWhereURISilent(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		uri                  string
		wantSelect, wantConn time.Duration
		wantApp              string
	}{
		{"silent URI", "mongodb://127.0.0.1:1/", 7 * time.Second, 7 * time.Second, "crawlcache"},
		{"URI sets all three", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1000&connectTimeoutMS=500&appName=nightly", time.Second, 500 * time.Millisecond, "nightly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, wait, err := clientOptions(tc.uri, 7*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := *opts.ServerSelectionTimeout; got != tc.wantSelect || wait != tc.wantSelect {
				t.Errorf("server selection timeout = %s, wait = %s; want %s", got, wait, tc.wantSelect)
			}
			if got := *opts.ConnectTimeout; got != tc.wantConn {
				t.Errorf("connect timeout = %s, want %s", got, tc.wantConn)
			}
			if got := *opts.AppName; got != tc.wantApp {
				t.Errorf("app name = %q, want %q", got, tc.wantApp)
			}
		})
	}
}
