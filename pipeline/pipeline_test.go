package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// recordSink remembers what was written. If gate is set, every Write first
// takes a token from it; if failAt is set, that Write (1-based) fails.
type recordSink struct {
	gate   chan struct{}
	failAt int
	err    error

	mu     sync.Mutex
	calls  int
	byURL  map[string]int
	writes [][]string // IDs per Write
}

var errSinkBroken = errors.New("sink broken")

func (s *recordSink) Open(context.Context, string, bool) error { return nil }
func (s *recordSink) Commit(context.Context) error             { return nil }
func (s *recordSink) Close() error                             { return nil }

func (s *recordSink) Write(ctx context.Context, items []Item) error {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == s.failAt {
		return fmt.Errorf("write batch %d: %w", s.calls, errSinkBroken)
	}
	if s.byURL == nil {
		s.byURL = map[string]int{}
	}
	var ids []string
	for _, it := range items {
		s.byURL[it.URL]++
		ids = append(ids, it.ID)
	}
	s.writes = append(s.writes, ids)
	return nil
}

func (s *recordSink) itemsOf(url string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byURL[url]
}

func (s *recordSink) writeCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func bookExtractor(t testing.TB) *Extractor {
	t.Helper()
	e, err := NewExtractor(ExtractSpec{Item: "article.book", Fields: []Field{
		{Name: "title", CSS: "h2", Text: true},
		{Name: "link", CSS: "a", Attr: "href"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// listingPage is page n of a run, with the three books of listingHTML.
func listingPage(run string, n int) Page {
	p := htmlPage(listingHTML)
	p.RunID = run
	p.URL = fmt.Sprintf("https://example.org/list/%d", n)
	return p
}

// produce sends n pages, stopping early when stop is closed, then closes
// the channel.
func produce(pages chan<- Page, n int, stop <-chan struct{}, sent *atomic.Int64) {
	defer close(pages)
	for i := range n {
		select {
		case pages <- listingPage("run1", i):
			sent.Add(1)
		case <-stop:
			return
		}
	}
}

func TestPipelineAcksAfterSinksWrote(t *testing.T) {
	ctx := context.Background()
	rec := &recordSink{}
	path := filepath.Join(t.TempDir(), "items.jsonl")
	jsonl := NewJSONLSink(path)
	var done []string
	var mu sync.Mutex
	p := &Pipeline{
		Extractor: bookExtractor(t),
		Sinks:     []Sink{rec, jsonl},
		BatchSize: 4,
		Workers:   2,
		OnPageDone: func(pg Page, n int) {
			mu.Lock()
			defer mu.Unlock()
			done = append(done, pg.URL)
			if pg.Body != nil {
				t.Errorf("page %s: Body kept until OnPageDone", pg.URL)
			}
			wantN := 3
			if strings.HasSuffix(pg.URL, ".json") {
				wantN = 0
			}
			if n != wantN {
				t.Errorf("page %s: got %d items, want %d", pg.URL, n, wantN)
			}
			if got := rec.itemsOf(pg.URL); got != n {
				t.Errorf("page %s acked with %d of its %d items in the first sink", pg.URL, got, n)
			}
			// The second sink's items are on disk already.
			data, err := os.ReadFile(partialPath(path, "run1"))
			if err != nil {
				t.Errorf("read partial: %v", err)
			}
			for i := range n {
				if id := ItemID("run1", pg.URL, i); !strings.Contains(string(data), id) {
					t.Errorf("page %s acked before item %d (%s) was in %s", pg.URL, i, id, path)
				}
			}
		},
	}
	if err := p.Open(ctx, "run1", false); err != nil {
		t.Fatal(err)
	}
	pages := make(chan Page)
	go func() {
		defer close(pages)
		for i := range 30 {
			pages <- listingPage("run1", i)
		}
		j := listingPage("run1", 30)
		j.URL += ".json"
		j.Header = http.Header{"Content-Type": {"application/json"}}
		pages <- j
	}()
	if err := p.Run(ctx, pages); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := p.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(done) != 31 {
		t.Errorf("pages acked: got %d, want 31", len(done))
	}
	st := p.Stats()
	if st.Pages != 31 || st.Items != 90 {
		t.Errorf("stats: got %+v, want 31 pages, 90 items", st)
	}
	for _, w := range rec.writes {
		if len(w) > 4+2 { // a batch stops after the page that reaches BatchSize
			t.Errorf("batch of %d items, want at most %d", len(w), 6)
		}
	}
	if got := strings.Count(string(mustRead(t, path)), "\n"); got != 90 {
		t.Errorf("jsonl lines: got %d, want 90", got)
	}
}

func TestPipelineSinkErrorStopsRun(t *testing.T) {
	ctx := context.Background()
	bad := &recordSink{failAt: 3}
	after := &recordSink{}
	var acked []string
	p := &Pipeline{
		Extractor:  bookExtractor(t),
		Sinks:      []Sink{bad, after},
		BatchSize:  1, // one page per batch
		OnPageDone: func(pg Page, _ int) { acked = append(acked, pg.URL) },
	}
	pages := make(chan Page)
	stop := make(chan struct{})
	var sent atomic.Int64
	go produce(pages, 1000, stop, &sent)
	err := p.Run(ctx, pages)
	close(stop)
	if !errors.Is(err, errSinkBroken) {
		t.Fatalf("Run: got %v, want the sink's error", err)
	}
	if len(acked) != 2 {
		t.Errorf("pages acked: got %v, want the 2 written before the failure", acked)
	}
	if got := after.writeCalls(); got != 2 {
		t.Errorf("writes to the next sink: got %d, want 2 (not the failed batch)", got)
	}
	if sent.Load() == 1000 {
		t.Errorf("producer sent all pages: the run did not stop")
	}
}

func TestPipelineBackpressure(t *testing.T) {
	for _, buffer := range []int{1, 2, 16} {
		t.Run(fmt.Sprintf("buffer %d", buffer), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				sink := &recordSink{gate: gate}
				var acked atomic.Int64
				p := &Pipeline{
					Extractor:  bookExtractor(t),
					Sinks:      []Sink{sink},
					Buffer:     buffer,
					BatchSize:  1,
					OnPageDone: func(Page, int) { acked.Add(1) },
				}
				pages := make(chan Page)
				var sent atomic.Int64
				go produce(pages, 100, nil, &sent)
				errc := make(chan error, 1)
				go func() { errc <- p.Run(t.Context(), pages) }()

				synctest.Wait() // everyone is blocked: the sink holds its first batch
				// One page in the sink, buffer pages queued, one extracted and
				// waiting to be queued; the producer is blocked on the next.
				if got, want := sent.Load(), int64(buffer+2); got != want {
					t.Errorf("pages taken from the producer while the sink blocks: got %d, want %d", got, want)
				}
				if got := acked.Load(); got != 0 {
					t.Errorf("pages acked while the sink blocks: got %d, want 0", got)
				}

				gate <- struct{}{} // let one batch through
				synctest.Wait()
				if got, want := sent.Load(), int64(buffer+3); got != want {
					t.Errorf("after one write: pages taken got %d, want %d", got, want)
				}
				if got := acked.Load(); got != 1 {
					t.Errorf("after one write: acked got %d, want 1", got)
				}

				close(gate)
				if err := <-errc; err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := acked.Load(); got != 100 {
					t.Errorf("acked at the end: got %d, want 100", got)
				}
			})
		})
	}
}

func TestPipelineCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		gate := make(chan struct{})
		p := &Pipeline{Extractor: bookExtractor(t), Sinks: []Sink{&recordSink{gate: gate}}}
		pages := make(chan Page)
		var sent atomic.Int64
		stop := make(chan struct{})
		go produce(pages, 100, stop, &sent)
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx, pages) }()
		synctest.Wait()
		cancel()
		close(gate) // the blocked Write returns; nothing else is written
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: got %v, want context.Canceled", err)
		}
		close(stop)
	})
}

func TestPipelineNeedsExtractor(t *testing.T) {
	p := &Pipeline{}
	if err := p.Run(context.Background(), make(chan Page)); err == nil {
		t.Errorf("Run without extractor: got nil error")
	}
}

func TestPipelineUnparsablePageIsAckedWithoutItems(t *testing.T) {
	ctx := context.Background()
	rec := &recordSink{}
	acked := map[string]int{}
	var extractErrs []string
	p := &Pipeline{
		Extractor:      bookExtractor(t),
		Sinks:          []Sink{rec},
		OnPageDone:     func(pg Page, n int) { acked[pg.URL] = n },
		OnExtractError: func(pg Page, err error) { extractErrs = append(extractErrs, pg.URL) },
	}
	deep := listingPage("run1", 1)
	deep.Body = []byte(strings.Repeat("<div>", 600))
	pages := make(chan Page, 2)
	pages <- listingPage("run1", 0)
	pages <- deep
	close(pages)
	if err := p.Run(ctx, pages); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := map[string]int{"https://example.org/list/0": 3, "https://example.org/list/1": 0}
	if fmt.Sprint(acked) != fmt.Sprint(want) {
		t.Errorf("acked: got %v, want %v", acked, want)
	}
	if len(extractErrs) != 1 || p.Stats().ExtractErrors != 1 {
		t.Errorf("extract errors: got %v and stats %+v, want the deep page once", extractErrs, p.Stats())
	}
}
