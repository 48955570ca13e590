// Package batch is a group-commit queue: requests that arrive while a
// batch is being handled wait, then go out together in the next one; a
// request that finds the queue idle starts a batch at once, so an idle
// queue adds no delay.
package batch

import (
	"runtime"
	"sync"
)

// Queue hands queued requests to Flush, at most Max at a time, on one
// goroutine that runs while there is anything queued. Set Max and Flush
// before the first Add; a Queue must not be copied after that.
type Queue[T any] struct {
	// Max bounds one batch (≥ 1).
	Max int
	// Flush handles one batch; batches are handled one at a time, in the
	// order their requests were added. It answers each request itself.
	Flush func([]T)
	// Yield lets the goroutines that are ready run before each batch is
	// taken, so requests made in the same moment share it.
	Yield bool

	mu      sync.Mutex
	pending []T
	running bool
}

// Add queues r; it returns at once (r carries how its outcome is told).
func (q *Queue[T]) Add(r T) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	if !q.running {
		q.running = true
		go q.loop()
	}
	q.mu.Unlock()
}

// Queued returns how many requests wait for a batch (not those being
// flushed).
func (q *Queue[T]) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *Queue[T]) loop() {
	for {
		if q.Yield {
			runtime.Gosched()
		}
		q.mu.Lock()
		batch := q.pending
		if len(batch) > q.Max {
			batch = batch[:q.Max:q.Max]
		}
		q.pending = q.pending[len(batch):]
		if len(batch) == 0 {
			q.pending = nil
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.Flush(batch)
	}
}
