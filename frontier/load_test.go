package frontier_test

import (
	"context"
	"errors"
	"testing"

	"crawlcache/frontier"
)

// TestStartLoadRunResumesWhileScanning is the slow resume of a big run: a
// run is read in the background while it is crawled. Every pending entry
// (and the crashed worker's lease) is claimed exactly once, finished ones
// never, links added meanwhile are not queued twice, Drained stays false
// until the scan is over, and the counts come at the end.
func TestStartLoadRunResumesWhileScanning(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	db := openDB(t)
	old := newFrontier(t, db, clk)
	all := links(1100, "a.example") // more than one chunk of the scan
	mustAdd(t, old, "r", all)
	es := mustClaim(t, old, "r", "dead", 3)
	if err := old.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := old.Fail(ctx, es[1].ID, errors.New("boom"), false); err != nil {
		t.Fatal(err)
	}
	// es[2] stays leased by the dead worker.

	f := newFrontier(t, db, clk)
	loaded, err := f.StartLoadRun(ctx, "r", "dead")
	if err != nil {
		t.Fatalf("StartLoadRun: %v", err)
	}
	// Claims start while the run is read (the log is read alongside the
	// entries, not before them).
	var first []frontier.Entry
	for len(first) == 0 {
		first = mustClaim(t, f, "r", "w", 1)
	}
	claimed := map[string]int{first[0].URL: 1}
	if err := f.Done(ctx, first[0].ID); err != nil {
		t.Fatal(err)
	}
	// Add during the load: one known URL, one new.
	newLink := frontier.Link{URL: "https://a.example/new", Host: "a.example", Depth: 1}
	if n := mustAdd(t, f, "r", []frontier.Link{all[5], newLink}); n != 1 {
		t.Errorf("Add during the load = %d new, want 1", n)
	}
	var res frontier.LoadResult
	loading := true
	for loading {
		for _, e := range mustClaim(t, f, "r", "w", 50) {
			claimed[e.URL]++
			if err := f.Done(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case res = <-loaded:
			loading = false
		default:
			if d, err := f.Drained(ctx, "r"); err != nil || d {
				t.Fatalf("Drained during the load = %v, %v; want false", d, err)
			}
		}
	}
	for {
		es := claimOrDrain(t, f, "r", "w", 50)
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			claimed[e.URL]++
			if err := f.Done(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res.Err != nil {
		t.Fatalf("load: %v", res.Err)
	}
	if want := (frontier.Counts{Pending: 1097, Leased: 1, Done: 1, Failed: 1}); res.Counts.Pending < 1096 || res.Counts.Done < 1 || res.Counts.Failed != 1 {
		t.Errorf("load counts = %+v, want about %+v (the scan may see what was done meanwhile)", res.Counts, want)
	}
	if len(claimed) != 1100-2+1 {
		t.Errorf("claimed %d distinct URLs, want %d (all but the done and the failed one, plus the new one)", len(claimed), 1100-2+1)
	}
	for u, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times, want once", u, n)
		}
	}
	for _, u := range []string{all[0].URL, all[1].URL} {
		if claimed[u] > 0 {
			t.Errorf("%s was finished before the resume, but claimed again", u)
		}
	}
	if d, err := f.Drained(ctx, "r"); err != nil || !d {
		t.Errorf("Drained after everything was done = %v, %v; want true", d, err)
	}
}
