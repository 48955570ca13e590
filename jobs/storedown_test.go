package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/crawler"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// TestCompletedRunCountsLostReports is the regression test for a run whose
// killed session never reported its pages: the completed record counts
// every page (from the frontier) and every item (from the mongodb output),
// not only what the workers reported.
func TestCompletedRunCountsLostReports(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	site := smallSite(24, 2*time.Millisecond)
	srv := site.Start()
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "lost", srv.URL, "")
	ictx, cancel := context.WithCancel(ctx)
	var once sync.Once
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler), Progress: func(sn Snapshot) {
		if sn.Pages >= 8 {
			once.Do(cancel)
		}
	}}
	out, err := r.Run(ictx, job, StartOptions{})
	if !errors.Is(err, crawler.ErrInterrupted) {
		t.Fatalf("interrupted run: err = %v, want ErrInterrupted", err)
	}
	// As if the interrupted session had been killed before it reported.
	runs := NewRuns(s, nil)
	if _, err := runs.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: out.Run.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "counters", Value: Counters{}}}}}, false); err != nil {
		t.Fatal(err)
	}
	r.Progress = nil
	res, err := r.Resume(ctx, out.Run.ID, job)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	items, err := s.Collection(Database, "items").Count(ctx, bson.D{{Key: "run_id", Value: out.Run.ID}})
	if err != nil {
		t.Fatal(err)
	}
	wantPages := int64(len(site.ReachableURLs(srv.URL)))
	got := res.Run.Counters
	if got.Pages != wantPages || got.Items != items || got.Errors != 0 {
		t.Errorf("completed run counters pages %d items %d errors %d, want %d, %d, 0", got.Pages, got.Items, got.Errors, wantPages, items)
	}
	if res.Session.Pages >= wantPages {
		t.Errorf("resumed session counts %d pages, want fewer than the run's %d (its own work only)", res.Session.Pages, wantPages)
	}
}

// TestRunOnStoppedStore runs a job on a store whose server stopped after it
// was opened: one sentence naming the store, wrapping store.ErrUnreachable.
func TestRunOnStoppedStore(t *testing.T) {
	ctx := context.Background()
	srv, err := store.StartServer(ctx, store.ServerOptions{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Command: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, store.Options{URI: srv.URI(), ConnectTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	srv.Close()
	<-srv.Done()
	job := writeJob(t, t.TempDir(), "nostore", "http://127.0.0.1:9", "")
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}
	_, err = r.Run(ctx, job, StartOptions{})
	var sd *StoreDownError
	if !errors.As(err, &sd) || !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("run on a stopped store: err = %v, want a *StoreDownError wrapping store.ErrUnreachable", err)
	}
	if want := "store unreachable: " + s.Describe() + " stopped answering"; err.Error() != want || strings.Contains(err.Error(), "\n") {
		t.Errorf("error = %q, want %q", err, want)
	}
}
