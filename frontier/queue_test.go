package frontier

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestItemQueueMatchesAList pushes, pushes to the front and pops items in
// a random order, in phases that fill the queue and phases that empty it, and checks every popped item, and each's view of the
// queue, against a plain list: the encoding keeps every field and every
// URL byte, shared prefixes and block boundaries included.
func TestItemQueueMatchesAList(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	urls := []string{
		"", "h", "https://a.example/", "https://a.example/x/1", "https://a.example/x/12",
		"https://a.example/x/2", "https://b.example/é?q=1", "https://a.example/" + strings.Repeat("long/", 9000),
	}
	var list []qitem // the queue's content, the next to pop first
	var q itemQueue
	var next int
	newItem := func() qitem {
		next++
		u := urls[rng.IntN(len(urls))]
		if rng.IntN(3) > 0 {
			u += fmt.Sprint(rng.IntN(1000))
		}
		it := qitem{seq: rng.Int64N(1 << 40), attempts: int32(rng.IntN(5)), depth: int32(rng.IntN(20) - 1), url: u}
		it.h[0], it.h[15] = byte(next), byte(next>>8)
		return it
	}
	for step := range 20000 {
		r := rng.IntN(10)
		if step/500%2 == 1 {
			r = 3 + rng.IntN(7) // a phase that drains the queue, and pops it empty
		}
		switch {
		case r < 5:
			it := newItem()
			q.push(it)
			list = append(list, it)
		case r < 6:
			it := newItem()
			q.pushFront(it)
			list = append([]qitem{it}, list...)
		default:
			got, ok := q.pop()
			if len(list) == 0 {
				if ok {
					t.Fatalf("step %d: pop of an empty queue = %+v, want nothing", step, got)
				}
				continue
			}
			if !ok || got != list[0] {
				t.Fatalf("step %d: pop = %s, %v; want %s", step, show(got), ok, show(list[0]))
			}
			list = list[1:]
		}
		if q.len() != len(list) {
			t.Fatalf("step %d: len = %d, want %d", step, q.len(), len(list))
		}
		if step%997 == 0 {
			var seen []qitem
			q.each(func(it qitem) { seen = append(seen, it) })
			if len(seen) != len(list) {
				t.Fatalf("step %d: each saw %d items, want %d", step, len(seen), len(list))
			}
			for i := range seen {
				if seen[i] != list[i] {
					t.Fatalf("step %d: each item %d = %s, want %s", step, i, show(seen[i]), show(list[i]))
				}
			}
		}
	}
}

// show prints an item with a long URL cut short.
func show(it qitem) string {
	u := it.url
	if len(u) > 60 {
		u = fmt.Sprintf("%s…(%d bytes)", u[:60], len(u))
	}
	return fmt.Sprintf("{h:%x seq:%d attempts:%d depth:%d url:%q}", it.h, it.seq, it.attempts, it.depth, u)
}
