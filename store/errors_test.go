package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

func TestIsUnavailable(t *testing.T) {
	ctx := context.Background()

	// A live store: a server error is not unavailability.
	live := storetest.Open(t)
	coll := live.Database("t").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	_, dupErr := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}})
	if dupErr == nil {
		t.Fatal("second insert of _id a: no error")
	}

	// A store whose server stopped after it was opened.
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Command: "test"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := store.Open(ctx, store.Options{URI: srv.URI(), ConnectTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gone.Close(context.Background()) })
	srv.Close()
	<-srv.Done()
	goneErr := gone.Database("t").Collection("c").FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Err()
	if goneErr == nil {
		t.Fatal("find on a stopped server: no error")
	}

	_, fileErr := os.Create(filepath.Join(t.TempDir(), "missing", "x"))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"stopped server", goneErr, true},
		{"stopped server, wrapped", fmt.Errorf("read lock of job x: %w", goneErr), true},
		{"ErrUnreachable", fmt.Errorf("connect to x: %w", store.ErrUnreachable), true},
		{"deadline", context.DeadlineExceeded, true},
		{"duplicate key", dupErr, false},
		{"cancelled", cancelled.Err(), false},
		{"plain", errors.New("boom"), false},
		{"file", fmt.Errorf("open outputs: %w", fileErr), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.IsUnavailable(tt.err); got != tt.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestIsFull: the errors a full disk gives are recognized, wrapped or not,
// and others are not. SQLite's is real (a database capped at two pages);
// FerretDB's is the message it answered an update with when the data
// directory's disk filled up (a crawl on a 30 MB tmpfs).
func TestIsFull(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "full.sqlite")+"?_pragma=max_page_count(2)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (v BLOB)"); err != nil {
		t.Fatal(err)
	}
	var fullErr error
	for range 10 {
		if _, fullErr = db.Exec("INSERT INTO t VALUES (?)", make([]byte, 3000)); fullErr != nil {
			break
		}
	}
	if fullErr == nil {
		t.Fatal("ten inserts of 3 KB into a database of two pages: no error")
	}
	ferret := errors.New("update in crawlcache.runs: (InternalError) [msg_update.go:133 handler.(*Handler).updateDocument] " +
		"[collection.go:191 sqlite.(*collection).UpdateAll] database or disk is full (13)")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"SQLite", fullErr, true},
		{"SQLite, wrapped", fmt.Errorf("insert into crawlcache.frontier_log: %w", fullErr), true},
		{"FerretDB", ferret, true},
		{"plain", errors.New("boom"), false},
		{"unreachable", fmt.Errorf("connect: %w", store.ErrUnreachable), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.IsFull(tt.err); got != tt.want {
				t.Errorf("IsFull(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
