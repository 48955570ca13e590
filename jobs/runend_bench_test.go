package jobs

import (
	"context"
	"fmt"
	"testing"

	"crawlcache/store/storetest"
)

// BenchmarkRunEndWithHistory is the cost of ending a run (Finish) and of
// renewing a job lock, with the runs and locks of 2,000 other jobs in the
// store and without: on the embedded store a filter other than _id alone
// reads every run record (or every lock), so the history must not show.
func BenchmarkRunEndWithHistory(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{0, 2000} {
		b.Run(fmt.Sprintf("history=%d", n), func(b *testing.B) {
			s := storetest.Open(b)
			runs, locker := NewRuns(s, nil), NewLocker(s, nil)
			for i := range n {
				job := fmt.Sprint("old", i)
				r := &Run{ID: fmt.Sprintf("%s-20261127T000000Z-%04d", job, i), Job: job,
					Workers: map[string]Worker{"w": {ID: "w", Host: "vm", PID: 1}}}
				if err := runs.Create(ctx, r); err != nil {
					b.Fatal(err)
				}
				if _, err := locker.Acquire(ctx, job, "w", r.ID); err != nil {
					b.Fatal(err)
				}
			}
			seq := 0
			b.Run("finish", func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					seq++
					r := &Run{ID: fmt.Sprintf("docs-20261127T000000Z-%06d", seq), Job: "docs"}
					if err := runs.Create(ctx, r); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if ok, err := runs.Finish(ctx, r.ID, StatusCompleted, ""); err != nil || !ok {
						b.Fatalf("finish = %v, %v", ok, err)
					}
				}
			})
			b.Run("renew", func(b *testing.B) {
				lease, err := locker.Acquire(ctx, "docs", "w", "")
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if err := lease.Renew(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				_ = lease.Release(ctx)
			})
		})
	}
}
