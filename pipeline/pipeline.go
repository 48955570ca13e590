package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Defaults for the zero values of Pipeline's fields.
const (
	DefaultBuffer    = 64
	DefaultBatchSize = 256
)

// Pipeline runs extract → write for a stream of pages. Stages are joined by
// bounded channels, so a slow sink slows the extractor, which stops
// reading pages, which blocks the crawler: memory does not grow with the
// crawl.
//
// A Pipeline must not be copied after first use. Run it once per run;
// Stats may be called concurrently with Run.
type Pipeline struct {
	// Extractor turns pages into items. Required.
	Extractor *Extractor
	// Sinks receive every batch of items, in order; a batch counts as
	// written when every sink wrote it.
	Sinks []Sink
	// Buffer is the capacity of the channel between extract and write, in
	// pages. If zero, DefaultBuffer.
	Buffer int
	// BatchSize is how many items the writer gathers from pages that are
	// already waiting before it writes (one fsync or insertMany per batch).
	// A page's items are never split; the writer never waits for more
	// pages to fill a batch. If zero, DefaultBatchSize.
	BatchSize int
	// Workers is the number of goroutines extracting in parallel. If zero,
	// 1 (pages are then written in the order they arrive).
	Workers int
	// OnPageDone, if set, is called for every page after its items are
	// durably written to every sink (also for pages that gave no items):
	// the crawler acknowledges the page in its frontier here. It is called
	// from the writer goroutine, one page at a time, so it must not block
	// for long nor send on the pages channel. The page's Body is nil.
	OnPageDone func(p Page, items int)
	// OnExtractError, if set, is called (from an extract goroutine) for a
	// page the extractor could not parse. Such a page is not an error of
	// the run: it gives no items, is counted in Stats.ExtractErrors and is
	// passed to OnPageDone like any other page, so a resume does not try it
	// again.
	OnExtractError func(p Page, err error)
	// OnParsed, if set, is called (from an extract goroutine) for every
	// HTML page whose items were extracted by parsing its body (not from
	// Page.Stored), with its items, before they are written; p.Body is
	// still set. The crawler stores the parse result here.
	OnParsed func(p Page, items []Item)

	pages         atomic.Int64
	items         atomic.Int64
	batches       atomic.Int64
	extractErrors atomic.Int64
}

// Stats are a pipeline's counters.
type Stats struct {
	// Pages is the number of pages processed (OnPageDone called).
	Pages int64
	// Items is the number of items handed to the sinks. After a resume it
	// includes items the sinks then skipped as already written.
	Items int64
	// Batches is the number of writes to each sink.
	Batches int64
	// ExtractErrors is the number of pages that could not be parsed.
	ExtractErrors int64
}

// Stats returns the counters so far. It is safe to call during Run.
func (p *Pipeline) Stats() Stats {
	return Stats{Pages: p.pages.Load(), Items: p.items.Load(), Batches: p.batches.Load(), ExtractErrors: p.extractErrors.Load()}
}

// extracted is one page and its items, between the stages.
type extracted struct {
	page  Page
	items []Item
}

// Run reads pages until the channel is closed, then writes everything still
// buffered and returns nil. It does not Open, Commit or Close the sinks (see
// Pipeline.Open, Commit and Close).
//
// It returns the first error of a sink, after which it
// stops: pages whose items were not written are not passed to OnPageDone,
// so a resume does them again. It returns ctx.Err() when ctx is cancelled,
// abandoning buffered pages the same way. Once Run has returned nothing
// reads pages any more, so the producer must stop sending: select on a
// context that is cancelled when Run returns.
func (p *Pipeline) Run(ctx context.Context, pages <-chan Page) error {
	if p.Extractor == nil {
		return errors.New("run pipeline: no extractor")
	}
	buffer := p.Buffer
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	workers := max(p.Workers, 1)

	g, gctx := errgroup.WithContext(ctx)
	out := make(chan extracted, buffer)
	var extractors sync.WaitGroup
	extractors.Add(workers)
	for range workers {
		g.Go(func() error {
			defer extractors.Done()
			return p.extractLoop(gctx, pages, out)
		})
	}
	go func() {
		extractors.Wait()
		close(out)
	}()
	g.Go(func() error { return p.writeLoop(gctx, out) })
	return g.Wait()
}

func (p *Pipeline) extractLoop(ctx context.Context, pages <-chan Page, out chan<- extracted) error {
	for {
		var pg Page
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case pg, ok = <-pages:
			if !ok {
				return nil
			}
		}
		items, err := p.Extractor.Extract(pg)
		if err != nil {
			p.extractErrors.Add(1)
			if p.OnExtractError != nil {
				p.OnExtractError(pg, err)
			}
			items = nil
		} else if p.OnParsed != nil && pg.Stored == nil && isHTML(pg) {
			p.OnParsed(pg, items)
		}
		pg.Body = nil // the items hold what is needed; do not keep bodies queued
		select {
		case <-ctx.Done():
			return ctx.Err()
		case out <- extracted{page: pg, items: items}:
		}
	}
}

func (p *Pipeline) writeLoop(ctx context.Context, in <-chan extracted) error {
	batchSize := p.BatchSize
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	var batch []extracted
	var items []Item
	for {
		var first extracted
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case first, ok = <-in:
			if !ok {
				return nil
			}
		}
		batch = append(batch[:0], first)
		items = append(items[:0], first.items...)
		closed := false
	gather: // take what is already waiting, without waiting for more
		for len(items) < batchSize {
			select {
			case e, ok := <-in:
				if !ok {
					closed = true
					break gather
				}
				batch = append(batch, e)
				items = append(items, e.items...)
			default:
				break gather
			}
		}
		if err := ctx.Err(); err != nil {
			return err // cancelled while gathering: do not start a write
		}
		if err := p.write(ctx, batch, items); err != nil {
			return err
		}
		if closed {
			return nil
		}
	}
}

// write hands items to every sink, then reports their pages done.
func (p *Pipeline) write(ctx context.Context, batch []extracted, items []Item) error {
	if len(items) > 0 {
		for _, s := range p.Sinks {
			if err := s.Write(ctx, items); err != nil {
				return err
			}
		}
		p.batches.Add(1)
		p.items.Add(int64(len(items)))
	}
	for i := range batch {
		p.pages.Add(1)
		if p.OnPageDone != nil {
			p.OnPageDone(batch[i].page, len(batch[i].items))
		}
		batch[i] = extracted{} // let the items go
	}
	return nil
}

// Open opens every sink for run runID (see Sink.Open). If one fails, the
// ones already opened are closed and the error is returned.
func (p *Pipeline) Open(ctx context.Context, runID string, resume bool) error {
	for i, s := range p.Sinks {
		if err := s.Open(ctx, runID, resume); err != nil {
			for _, opened := range p.Sinks[:i] {
				_ = opened.Close()
			}
			return fmt.Errorf("open sink %d: %w", i+1, err)
		}
	}
	return nil
}

// Commit makes every sink's output final; call it only when the run
// completed. It commits every sink and returns their errors joined.
func (p *Pipeline) Commit(ctx context.Context) error {
	var errs []error
	for _, s := range p.Sinks {
		errs = append(errs, s.Commit(ctx))
	}
	return errors.Join(errs...)
}

// Close closes every sink and returns their errors joined. Without a
// Commit before it, file outputs stay resumable.
func (p *Pipeline) Close() error {
	var errs []error
	for _, s := range p.Sinks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
