package pipeline

import (
	"context"
	"errors"
)

// Sink stores items. The Pipeline calls Write from one goroutine; Open,
// Commit and Close are called by whoever runs the pipeline, around Run.
//
// Sinks are idempotent per run: writing an item whose ID the run already
// wrote (a page processed again after a crash and resume) stores nothing.
type Sink interface {
	// Open prepares the sink for run runID. With resume, output the same
	// run wrote before an interruption is kept and its items are not
	// written again; without it, the run starts from empty.
	Open(ctx context.Context, runID string, resume bool) error
	// Write stores items. When it returns nil the items are durable (on
	// disk, or acknowledged by the server), so the pages they came from may
	// be acknowledged. An error leaves the sink unusable for this run. The
	// slice is reused after Write returns: copy what must be kept.
	Write(ctx context.Context, items []Item) error
	// Commit is called once the run completed: it makes the output final
	// (for file sinks, the file appears at its path). Write must not be
	// called after Commit.
	Commit(ctx context.Context) error
	// Close releases the sink's resources. After a Close without Commit the
	// output stays resumable. Close is safe to call more than once.
	Close() error
}

// Sentinel errors returned by sinks, checked with errors.Is.
var (
	// ErrNotOpen is returned by Write or Commit before Open, or after
	// Commit or Close.
	ErrNotOpen = errors.New("sink is not open")
)
