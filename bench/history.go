package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/configs"
	"crawlcache/frontier"
	"crawlcache/jobs"
	"crawlcache/store"
)

// historyRuns is the number of earlier runs the history's items and
// frontier records are spread over.
const historyRuns = 100

// historyScenario measures what a run pays for the history in its store:
// the start (until the first request reaches the origin) and the end (from
// the last response until Run returns) of a one-page run of a job with a
// mongodb output, on a store that holds cfg.historyItems items and
// cfg.historyFrontier frontier entries (each with a done record in the
// frontier log) of earlier runs, against the same run on an empty store.
// The history is written as the packages write (store.Collection.InsertMany:
// directly into the embedded store's files).
func historyScenario(ctx context.Context, cfg config) ([]row, error) {
	start, end, err := timeOneRun(ctx, cfg.historyItems, cfg.historyFrontier)
	if err != nil {
		return nil, fmt.Errorf("run on a store with history: %w", err)
	}
	emptyStart, emptyEnd, err := timeOneRun(ctx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("run on an empty store: %w", err)
	}
	what := fmt.Sprintf("%d items and %d frontier entries (+ as many log records) of %d earlier runs", cfg.historyItems, cfg.historyFrontier, historyRuns)
	return []row{
		{"start of a run, store holding " + what + " (peer: empty store)", secs(start), secs(emptyStart), ratio(start, emptyStart), "≤ 0.5 s", yesNo(start <= 500*time.Millisecond)},
		{"end of a run, store holding " + what + " (peer: empty store)", secs(end), secs(emptyEnd), ratio(end, emptyEnd), "≤ 0.5 s", yesNo(end <= 500*time.Millisecond)},
	}, nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f×", a.Seconds()/b.Seconds())
}

// timeOneRun fills a new store with the history and times a one-page run.
func timeOneRun(ctx context.Context, items, entries int) (start, end time.Duration, err error) {
	s, done, err := tempStore(ctx, "history")
	if err != nil {
		return 0, 0, err
	}
	defer done()
	fill := time.Now()
	if err := fillHistory(ctx, s, items, entries); err != nil {
		return 0, 0, err
	}
	if items+entries > 0 {
		fmt.Fprintf(os.Stderr, " (history written in %.0fs)", time.Since(fill).Seconds())
	}

	var mu sync.Mutex
	var first, last time.Time
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		if r.URL.Path == "/robots.txt" {
			http.NotFound(w, r)
		} else {
			fmt.Fprint(w, `<html><body><article class="product"><h2>the one page</h2></article></body></html>`)
		}
		mu.Lock()
		last = time.Now()
		mu.Unlock()
	}))
	defer origin.Close()
	job, err := configs.Parse("history.yaml", []byte(fmt.Sprintf(`name: history
seeds: [%s/]
max_pages: 1
rate: {per_host: 1000}
extract:
  item: article.product
  fields:
    title: {css: h2}
outputs:
  - mongodb: {collection: items}
`, origin.URL)))
	if err != nil {
		return 0, 0, err
	}
	runner := &jobs.Runner{Store: s, Logger: quiet}
	begin := time.Now()
	out, err := runner.Run(ctx, job, jobs.StartOptions{})
	finished := time.Now()
	if err != nil {
		return 0, 0, err
	}
	if out.Run.Status != jobs.StatusCompleted || out.Run.Counters.Items != 1 {
		return 0, 0, fmt.Errorf("one-page run ended %s with %d items, want completed with 1", out.Run.Status, out.Run.Counters.Items)
	}
	mu.Lock()
	defer mu.Unlock()
	return first.Sub(begin), finished.Sub(last), nil
}

// fillHistory writes items and frontier records of historyRuns completed
// runs of the same job, as those runs would have left them.
func fillHistory(ctx context.Context, s *store.Store, items, entries int) error {
	runs := jobs.NewRuns(s, nil)
	// The index earlier releases' mongodb outputs created on every store
	// (the run's sink drops it on the embedded store).
	if err := s.Collection(jobs.Database, "items").CreateIndex(ctx, "run_id_1", bson.D{{Key: "run_id", Value: 1}}); err != nil {
		return err
	}
	at := time.Now().Add(-time.Duration(historyRuns) * time.Hour)
	const batch = 5000
	for k := range historyRuns {
		id := fmt.Sprintf("history-%s-%04d", at.UTC().Format("20060102T150405Z"), k)
		if err := runs.Create(ctx, &jobs.Run{ID: id, Job: "history", Status: jobs.StatusRunning, Started: at}); err != nil {
			return err
		}
		if _, err := runs.Finish(ctx, id, jobs.StatusCompleted, ""); err != nil {
			return err
		}
		write := func(coll string, n int, doc func(i int) bson.D) error {
			for i := 0; i < n; i += batch {
				docs := make([]any, 0, batch)
				for j := i; j < min(i+batch, n); j++ {
					docs = append(docs, doc(j))
				}
				if _, err := s.Collection(jobs.Database, coll).InsertMany(ctx, docs); err != nil {
					return fmt.Errorf("write history into %s: %w", coll, err)
				}
			}
			return nil
		}
		err := write("items", items/historyRuns, func(i int) bson.D {
			u := fmt.Sprintf("http://history.test/page/%d", i/10)
			return bson.D{{Key: "_id", Value: hexHash(id, u, i%10)}, {Key: "run_id", Value: id}, {Key: "job", Value: "history"},
				{Key: "url", Value: u}, {Key: "index", Value: i % 10}, {Key: "fetched_at", Value: at}, {Key: "served", Value: "miss"},
				{Key: "title", Value: fmt.Sprintf("Item %d of run %d", i, k)}}
		})
		if err != nil {
			return err
		}
		n := entries / historyRuns
		err = write(frontier.EntriesCollection, n, func(i int) bson.D {
			u := fmt.Sprintf("http://history.test/page/%d", i)
			return bson.D{{Key: "_id", Value: frontier.ID(id, u)}, {Key: "run_id", Value: id}, {Key: "url", Value: u},
				{Key: "host", Value: "history.test"}, {Key: "depth", Value: int32(1)}, {Key: "added_at", Value: at}}
		})
		if err != nil {
			return err
		}
		err = write(frontier.LogCollection, n, func(i int) bson.D {
			u := fmt.Sprintf("http://history.test/page/%d", i)
			e := frontier.ID(id, u)
			return bson.D{{Key: "_id", Value: e + "#2"}, {Key: "run_id", Value: id}, {Key: "entry", Value: e}, {Key: "seq", Value: int64(2)},
				{Key: "state", Value: string(frontier.Done)}, {Key: "url", Value: u}, {Key: "attempts", Value: int32(1)}, {Key: "at", Value: at}}
		})
		if err != nil {
			return err
		}
		at = at.Add(time.Hour)
	}
	return nil
}

func hexHash(parts ...any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(sum[:16])
}
