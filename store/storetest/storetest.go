// Package storetest starts embedded stores for tests. Each store is a real
// MongoDB-wire server (FerretDB) in a temporary directory, never a mock.
package storetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"crawlcache/store"
)

// Open starts an embedded store in a fresh temporary directory and closes it
// when the test ends.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenDir(tb, tb.TempDir())
}

// OpenDir starts an embedded store on dir (which may hold data from an
// earlier store) and closes it when the test ends.
func OpenDir(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	return OpenDirWith(tb, dir)
}

// OpenDirWith is OpenDir with migration steps (store.Options.Migrations),
// as the packages that own stored documents open the store: on a release
// fixture (FixtureDir), it tests that their steps upgrade old data.
func OpenDirWith(tb testing.TB, dir string, migrations ...store.Migration) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Command: "test", Migrations: migrations})
	if err != nil {
		tb.Fatalf("open embedded store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}
