package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// holdWrites queues a write on coll of db that blocks the commit loop of
// db's file until release is called, so that the writes made meanwhile
// queue up and go out as one group.
func holdWrites(t *testing.T, d *Direct, db, coll string) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- d.write(context.Background(), db, coll, func(*writeTx, string) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-done; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitQueued waits until n writes are queued on db's file.
func waitQueued(t *testing.T, d *Direct, db string, n int) {
	t.Helper()
	w, err := d.writeDB(db)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if w.group.Queued() >= n {
			return
		}
		runtime.Gosched()
	}
}

// TestGroupCommitAnswersEachWrite: writes that queue behind a transaction
// share the next one, and each caller gets its own outcome: a duplicate
// _id, a cancelled context or a failing write fails only itself, and
// nothing of a failed write is stored.
func TestGroupCommitAnswersEachWrite(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	db := s.Database("w")
	if err := ensureCollections(ctx, db, "c"); err != nil {
		t.Fatal(err)
	}
	if err := d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "taken"}, {Key: "v", Value: 0}})); err != nil {
		t.Fatal(err)
	}
	errFailing := errors.New("failing write")
	cancelled, cancel := context.WithCancel(ctx)
	type write struct {
		name string
		ctx  context.Context
		run  func(ctx context.Context) error
		want func(error) bool
		// stored is the _id the write stores when it succeeds, and
		// whether it must be there afterwards.
		id     string
		stored bool
	}
	writes := []write{
		{name: "duplicate _id", id: "taken", stored: true,
			run: func(ctx context.Context) error {
				return d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "taken"}, {Key: "v", Value: 1}}))
			},
			want: mongo.IsDuplicateKeyError},
		{name: "cancelled context", ctx: cancelled, id: "cancelled", stored: false,
			run: func(ctx context.Context) error {
				return d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: "cancelled"}}))
			},
			want: func(err error) bool { return errors.Is(err, context.Canceled) }},
		{name: "failing write", id: "half", stored: false,
			run: func(ctx context.Context) error {
				return d.write(ctx, "w", "c", func(tx *writeTx, table string) error {
					if _, err := tx.exec(insertSQL(table), `{"$s":{"p":{"_id":{"t":"string"}},"$k":["_id"]},"_id":"half"}`); err != nil {
						return err
					}
					return errFailing
				})
			},
			want: func(err error) bool { return errors.Is(err, errFailing) }},
	}
	for i := range 12 {
		id := fmt.Sprintf("doc%d", i)
		run := func(ctx context.Context) error {
			return d.InsertOne(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}}))
		}
		if i%2 == 1 {
			run = func(ctx context.Context) error {
				return d.Upsert(ctx, "w", "c", mustRaw(t, bson.D{{Key: "_id", Value: id}, {Key: "i", Value: i}}))
			}
		}
		writes = append(writes, write{name: id, id: id, stored: true, run: run, want: func(err error) bool { return err == nil }})
	}

	before := d.Stats().Transactions
	release := holdWrites(t, d, "w", "c")
	results := make([]chan error, len(writes))
	for i, w := range writes {
		results[i] = make(chan error, 1)
		wctx := ctx
		if w.ctx != nil {
			wctx = w.ctx
		}
		go func() { results[i] <- w.run(wctx) }()
	}
	waitQueued(t, d, "w", len(writes))
	cancel()
	release()
	for i, w := range writes {
		if err := <-results[i]; !w.want(err) {
			t.Errorf("%s: got error %v", w.name, err)
		}
		_, err := d.FindRaw(ctx, "w", "c", w.id)
		if got := err == nil; got != w.stored {
			t.Errorf("%s: _id %q stored = %v (%v), want %v", w.name, w.id, got, err, w.stored)
		}
	}
	// The holding write, the failed group, then each write of it alone
	// but the cancelled one, which fails before starting one.
	if got, want := d.Stats().Transactions-before, int64(1+1+len(writes)-1); got != want {
		t.Errorf("transactions = %d, want %d", got, want)
	}
}

// TestGroupCommitSharesTransactions: writes queued behind a transaction
// go out in one, and each is stored once it returns.
func TestGroupCommitSharesTransactions(t *testing.T) {
	ctx := context.Background()
	s, d := openForWrites(t)
	if err := ensureCollections(ctx, s.Database("w"), "a", "b"); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{"a", "b"} { // tables known: a lookup would wait for the held connection
		if err := d.DeleteOne(ctx, "w", coll, "none"); err != nil {
			t.Fatal(err)
		}
	}
	before := d.Stats().Transactions
	release := holdWrites(t, d, "w", "a")
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		coll := []string{"a", "b"}[i%2]
		go func() {
			errs <- d.Upsert(ctx, "w", coll, mustRaw(t, bson.D{{Key: "_id", Value: fmt.Sprint(i)}, {Key: "i", Value: i}}))
		}()
	}
	waitQueued(t, d, "w", n)
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("upsert: %v", err)
		}
	}
	if got, want := d.Stats().Transactions-before, int64(2); got != want {
		t.Errorf("transactions = %d, want %d (the holding one and one for the %d queued writes)", got, want, n)
	}
	for i := range n {
		coll := []string{"a", "b"}[i%2]
		var m bson.M
		if err := s.Database("w").Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprint(i)}}).Decode(&m); err != nil || m["i"] != int32(i) {
			t.Errorf("%s/%d reads back as %v, %v", coll, i, m, err)
		}
	}
}
