package store_test

import (
	"context"
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
