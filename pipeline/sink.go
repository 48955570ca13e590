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
	// written again, and an output the run already committed is never
	// truncated or replaced; without it, the run starts from empty.
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

// Finisher is implemented by sinks whose Commit makes an output appear (the
// file sinks). Finish completes, without Open, a Commit of run runID that a
// failure or a crash interrupted, and does nothing when it is already
// complete, so the commit of a run's outputs can be finished by a resume
// whatever step it stopped at. A sink without Finish has nothing to do at
// commit (its writes are final). Finish is safe to call more than once.
type Finisher interface {
	Finish(ctx context.Context, runID string) error
}

// Sentinel errors returned by sinks, checked with errors.Is.
var (
	// ErrOutputMissing is returned by Finish when neither the run's
	// partial file nor its output exists (someone removed them).
	ErrOutputMissing = errors.New("output is missing")
	// ErrNotOpen is returned by Write or Commit before Open, or after
	// Commit or Close.
	ErrNotOpen = errors.New("sink is not open")
)
