package frontier_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"crawlcache/frontier"
	"crawlcache/store"
)

// serverReads records the finds and aggregates the client sends for the
// frontier's collections while it is on.
type serverReads struct {
	mu   sync.Mutex
	on   bool
	seen []string
}

func (s *serverReads) observe(c store.Command) {
	if c.Name != "find" && c.Name != "aggregate" && c.Name != "count" {
		return
	}
	if !slices.Contains([]string{frontier.EntriesCollection, frontier.LogCollection, frontier.WorkersCollection}, c.Collection) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		s.seen = append(s.seen, c.Name+" "+c.Collection)
	}
}

func (s *serverReads) record(on bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = on
	out := s.seen
	s.seen = nil
	return out
}

// On the embedded store served by the process, the scans on a run's path
// (resume, the end of a run shared by workers, the counts) read only that
// run's records, by _id range, and never find through the server, which
// decodes every record of every run: their cost must not grow with the
// history in the store.
func TestRunScansDoNotReadOtherRuns(t *testing.T) {
	ctx := context.Background()
	reads := &serverReads{}
	s, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Command: "test", OnCommand: reads.observe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	db := s
	clk := newClock()
	a, b := newFrontier(t, db, clk), newFrontier(t, db, clk)
	mustAdd(t, a, "old", links(50, "old.example"))
	mustClaim(t, a, "old", "A", 20)
	mustAdd(t, a, "r", links(10, "a.example"))
	mustClaim(t, a, "r", "A", 4)

	cases := []struct {
		name string
		op   func() error
	}{
		{"LoadRun", func() error { _, err := b.LoadRun(ctx, "r"); return err }},
		{"StartLoadRun", func() error {
			c := newFrontier(t, db, clk)
			ch, err := c.StartLoadRun(ctx, "r")
			if err != nil {
				return err
			}
			return (<-ch).Err
		}},
		{"Drained with two workers", func() error {
			for _, e := range mustClaim(t, b, "r", "B", 10) {
				if err := b.Done(ctx, e.ID); err != nil {
					return err
				}
			}
			clk.Advance(10 * time.Second) // A's leases run; a scan is due
			drained, err := b.Drained(ctx, "r")
			if drained {
				t.Errorf("Drained = true while A holds leases")
			}
			return err
		}},
		{"Counts", func() error { _, err := a.Counts(ctx, "r"); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reads.record(true)
			err := tc.op()
			got := reads.record(false)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 0 {
				t.Errorf("%s sent %v to the server, want only range reads of the run's records", tc.name, got)
			}
		})
	}
	if got, want := mustCounts(t, a, "r"), (frontier.Counts{Leased: 4, Done: 6}); got != want {
		t.Errorf("Counts(r) = %+v, want %+v", got, want)
	}
}
