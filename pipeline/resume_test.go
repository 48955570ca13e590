package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// TestPipelineCrashAndResumeExactlyOnce runs a crawl's pipeline into all
// three outputs, crashes it between a durable write and its
// acknowledgement, resumes with every page that was not acknowledged, and
// checks that every output holds every item exactly once.
func TestPipelineCrashAndResumeExactlyOnce(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	coll := s.Collection("crawlcache_test", "items")
	dir := t.TempDir()
	jsonlPath := filepath.Join(dir, "out", "items.jsonl")
	csvPath := filepath.Join(dir, "out", "items.csv")
	const pages = 12

	newPipeline := func(crash Sink, acked map[int]bool) *Pipeline {
		sinks := []Sink{NewMongoSink(coll), NewJSONLSink(jsonlPath), NewCSVSink(csvPath, []string{"title", "link"})}
		if crash != nil {
			sinks = append(sinks, crash)
		}
		return &Pipeline{
			Extractor: bookExtractor(t),
			Sinks:     sinks,
			BatchSize: 1,
			OnPageDone: func(pg Page, _ int) {
				for i := range pages {
					if listingPage("run1", i).URL == pg.URL {
						acked[i] = true
					}
				}
			},
		}
	}
	feed := func(p *Pipeline, which []int) error {
		ch := make(chan Page)
		stop := make(chan struct{})
		go func() {
			defer close(ch)
			for _, i := range which {
				select {
				case ch <- listingPage("run1", i):
				case <-stop:
					return
				}
			}
		}()
		defer close(stop)
		return p.Run(ctx, ch)
	}

	// First attempt: the process "dies" in the 5th batch, after the three
	// outputs wrote it and before its page was acknowledged.
	acked := map[int]bool{}
	p := newPipeline(&recordSink{failAt: 5}, acked)
	if err := p.Open(ctx, "run1", false); err != nil {
		t.Fatal(err)
	}
	all := make([]int, pages)
	for i := range all {
		all[i] = i
	}
	if err := feed(p, all); !errors.Is(err, errSinkBroken) {
		t.Fatalf("first attempt: got %v, want the crash", err)
	}
	if len(acked) != 4 {
		t.Fatalf("acknowledged before the crash: got %v, want 4 pages", acked)
	}
	// No Commit, no Close: the outputs are left as a crash leaves them.

	// Resume: every page not acknowledged is processed again.
	var redo []int
	for i := range pages {
		if !acked[i] {
			redo = append(redo, i)
		}
	}
	p = newPipeline(nil, acked)
	if err := p.Open(ctx, "run1", true); err != nil {
		t.Fatalf("Open resume: %v", err)
	}
	if err := feed(p, redo); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if err := p.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	var want []string
	for i := range pages {
		for j := range 3 {
			want = append(want, ItemID("run1", listingPage("run1", i).URL, j))
		}
	}
	var gotMongo []string
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := coll.All(ctx, bson.D{}, store.FindOptions{}, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		gotMongo = append(gotMongo, d.ID)
	}
	outputs := map[string][]string{
		"mongodb": gotMongo,
		"jsonl":   fileSinkCases[0].ids(t, mustRead(t, jsonlPath)),
		"csv":     fileSinkCases[1].ids(t, mustRead(t, csvPath)),
	}
	for name, got := range outputs {
		if !sameSet(got, want) {
			t.Errorf("%s: got %d items %v, want each of the %d items exactly once", name, len(got), got, len(want))
		}
	}
}
