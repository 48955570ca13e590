package store

import (
	"context"
	"log/slog"
	"testing"
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
