package batch

import (
	"runtime"
	"slices"
	"sync"
	"testing"
)

// TestQueueBatchesWhatArrivesMeanwhile: requests added while a batch is
// being flushed go out together in the next ones, in order, at most Max
// at a time.
func TestQueueBatchesWhatArrivesMeanwhile(t *testing.T) {
	release := make(chan struct{})
	var (
		mu      sync.Mutex
		batches [][]int
		wg      sync.WaitGroup
	)
	q := &Queue[int]{Max: 3}
	q.Flush = func(b []int) {
		if b[0] == 0 {
			<-release // hold the first batch while the others queue
		}
		mu.Lock()
		batches = append(batches, slices.Clone(b))
		mu.Unlock()
		wg.Add(-len(b))
	}
	wg.Add(8)
	q.Add(0)
	for q.Queued() != 0 { // wait until the first batch is taken
		runtime.Gosched()
	}
	for i := 1; i < 8; i++ {
		q.Add(i)
	}
	if got := q.Queued(); got != 7 {
		t.Fatalf("queued behind the first batch: got %d, want 7", got)
	}
	close(release)
	wg.Wait()
	want := [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7}}
	mu.Lock()
	defer mu.Unlock()
	if !slices.EqualFunc(batches, want, slices.Equal[[]int]) {
		t.Errorf("batches: got %v, want %v", batches, want)
	}
}
