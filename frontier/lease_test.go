package frontier_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"crawlcache/frontier"
	"crawlcache/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Two worker processes (two Frontiers on one database), each with several
// goroutines, both knowing every entry: each entry is claimed exactly once.
func TestConcurrentClaimsNeverShareAnEntry(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	const n = 120
	workers := []*frontier.Frontier{newFrontier(t, db, clk), newFrontier(t, db, clk)}
	mustAdd(t, workers[0], "r", links(n, "a.example"))
	if _, err := workers[1].LoadRun(ctx, "r"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	claimedBy := make(map[string][]string)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w, f := range workers {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("w%d", w)
				for {
					es, err := f.Claim(ctx, "r", name, 3)
					if err != nil {
						errs <- err
						return
					}
					if len(es) == 0 {
						return
					}
					mu.Lock()
					for _, e := range es {
						claimedBy[e.ID] = append(claimedBy[e.ID], fmt.Sprintf("%s/g%d", name, g))
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Claim: %v", err)
	}
	if len(claimedBy) != n {
		t.Errorf("claimed %d distinct entries, want %d (queued: %d, %d)", len(claimedBy), n, workers[0].Queued("r"), workers[1].Queued("r"))
	}
	perWorker := map[string]int{}
	for id, by := range claimedBy {
		if len(by) != 1 {
			t.Errorf("entry %s claimed %d times: %v", id, len(by), by)
		}
		perWorker[by[0][:2]]++
	}
	t.Logf("claims per worker: %v", perWorker)
	if got := mustCounts(t, workers[0], "r"); got != (frontier.Counts{Leased: n}) {
		t.Errorf("Counts = %+v, want all %d leased", got, n)
	}
}

// A worker whose next queued entries another worker claimed first gets the
// next entry it can win, not nothing: an empty Claim would make a caller
// that stops on it (this package's concurrent-claims test did, in about one
// run of six) leave entries unclaimed.
func TestClaimSkipsEntriesAnotherWorkerTookFirst(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	const n = 10
	mustAdd(t, newFrontier(t, db, clk), "r", links(n, "a.example"))
	// b and c read the run the same way, so their queues are in one order.
	b, c := newFrontier(t, db, clk), newFrontier(t, db, clk)
	for _, f := range []*frontier.Frontier{b, c} {
		if _, err := f.LoadRun(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	}
	taken := map[string]bool{}
	for _, e := range mustClaim(t, c, "r", "C", n-1) {
		taken[e.ID] = true
	}
	if len(taken) != n-1 {
		t.Fatalf("C claimed %d entries, want %d", len(taken), n-1)
	}
	got := mustClaim(t, b, "r", "B", 1)
	if len(got) != 1 || taken[got[0].ID] {
		t.Fatalf("B claimed %v, want the one entry C did not take", ids(got))
	}
	if es := mustClaim(t, b, "r", "B", 1); len(es) != 0 {
		t.Errorf("B claimed %v after every entry was taken", ids(es))
	}
}

func TestLeaseExpiryHandsWorkToAnotherWorker(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	a, b := newFrontier(t, db, clk), newFrontier(t, db, clk)
	mustAdd(t, a, "r", links(1, "a.example"))
	got := mustClaim(t, a, "r", "A", 1)
	if len(got) != 1 {
		t.Fatalf("A claimed %d, want 1", len(got))
	}
	id := got[0].ID

	if es := claimOrDrain(t, b, "r", "B", 1); len(es) != 0 {
		t.Fatalf("B claimed %v while A's lease runs", ids(es))
	}
	clk.Advance(testLease / 2)
	if err := a.Renew(ctx, "A", []string{id}); err != nil {
		t.Fatalf("Renew within the lease: %v", err)
	}
	clk.Advance(testLease * 3 / 4) // past the first lease, within the renewed one
	if es := claimOrDrain(t, b, "r", "B", 1); len(es) != 0 {
		t.Fatalf("B claimed %v after A renewed", ids(es))
	}
	clk.Advance(testLease) // A stopped renewing: expired
	es := claimOrDrain(t, b, "r", "B", 1)
	// Changes so far: A's claim (1), A's renewal (2), B's claim (3).
	if len(es) != 1 || es[0].ID != id || es[0].Worker != "B" || es[0].Seq != 3 {
		t.Fatalf("B claimed %+v, want %s leased to B as change 3", es, id)
	}
	if err := a.Renew(ctx, "A", []string{id}); !errors.Is(err, frontier.ErrLeaseLost) {
		t.Errorf("A's Renew after B took over = %v, want ErrLeaseLost", err)
	}
	if err := b.Renew(ctx, "B", []string{id}); err != nil {
		t.Errorf("B's Renew = %v", err)
	}
	// A finishes the page anyway: it is done, and B's Done agrees.
	if err := a.Done(ctx, id); err != nil {
		t.Errorf("A's Done after losing the lease = %v", err)
	}
	if err := b.Done(ctx, id); err != nil {
		t.Errorf("B's Done after A's = %v", err)
	}
	if got := mustCounts(t, a, "r"); got != (frontier.Counts{Done: 1}) {
		t.Errorf("Counts = %+v, want 1 done", got)
	}
}

// A worker that let its lease run out but still holds it (nobody took over)
// gets it back on Renew.
func TestRenewAfterExpiryWhenNobodyTookOver(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(1, "a.example"))
	es := mustClaim(t, f, "r", "A", 1)
	clk.Advance(2 * testLease)
	if err := f.Renew(ctx, "A", ids(es)); err != nil {
		t.Fatalf("Renew = %v, want nil", err)
	}
	if got := claimOrDrain(t, f, "r", "B", 1); len(got) != 0 {
		t.Errorf("B claimed %v after A renewed", ids(got))
	}
}

// TestRenewSkipsFinishedEntries is the false "some leases
// were lost" warning: a single worker lists its in-flight entries, some of
// them are finished before the renewal reaches them, and Renew must not
// call that a loss.
func TestRenewSkipsFinishedEntries(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(4, "a.example"))
	es := mustClaim(t, f, "r", "A", 4)
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.Fail(ctx, es[1].ID, errors.New("boom"), false); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(ctx, []string{es[2].ID}); err != nil {
		t.Fatal(err)
	}
	if err := f.Renew(ctx, "A", ids(es)); err != nil {
		t.Errorf("Renew after three of four entries finished here = %v, want nil", err)
	}
	if err := f.Renew(ctx, "B", []string{es[3].ID}); !errors.Is(err, frontier.ErrLeaseLost) {
		t.Errorf("Renew by a worker that does not hold the entry = %v, want ErrLeaseLost", err)
	}
}

func TestReleaseReturnsWorkFirst(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(4, "a.example"))
	es := mustClaim(t, f, "r", "A", 2)
	if err := f.Release(ctx, ids(es)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	again := mustClaim(t, f, "r", "B", 4)
	if len(again) != 4 {
		t.Fatalf("claimed %d after Release, want 4", len(again))
	}
	for i, e := range again[:2] {
		if e.Attempts != 0 {
			t.Errorf("released entry %s attempts = %d, want 0", e.ID, e.Attempts)
		}
		if want := es[len(es)-1-i].ID; e.ID != want && e.ID != es[i].ID {
			t.Errorf("claim %d after Release = %s, want a released entry first", i, e.ID)
		}
	}
	if err := f.Release(ctx, ids(again)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := mustCounts(t, f, "r"); got != (frontier.Counts{Pending: 4}) {
		t.Errorf("Counts after Release = %+v, want 4 pending", got)
	}
}

func TestFailRetriesUpToMax(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(1, "a.example"))
	const maxAttempts = 3
	var claims int
	for {
		es := mustClaim(t, f, "r", "A", 1)
		if len(es) == 0 {
			break
		}
		claims++
		e := es[0]
		if e.Attempts != claims-1 {
			t.Errorf("claim %d: attempts = %d, want %d", claims, e.Attempts, claims-1)
		}
		if err := f.Fail(ctx, e.ID, errors.New("503 from origin"), e.Attempts+1 < maxAttempts); err != nil {
			t.Fatalf("Fail: %v", err)
		}
	}
	if claims != maxAttempts {
		t.Errorf("claimed %d times, want %d", claims, maxAttempts)
	}
	if got := mustCounts(t, f, "r"); got != (frontier.Counts{Failed: 1}) {
		t.Errorf("Counts = %+v, want 1 failed", got)
	}
	var last struct {
		State    frontier.State `bson:"state"`
		Attempts int            `bson:"attempts"`
		Error    string         `bson:"error"`
	}
	raw, err := openLog(f).FindOne(ctx, bson.D{}, store.FindOptions{Sort: bson.D{{Key: "seq", Value: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bson.Unmarshal(raw, &last); err != nil {
		t.Fatal(err)
	}
	if last.Attempts != maxAttempts || last.Error != "503 from origin" || last.State != frontier.Failed {
		t.Errorf("last log record = %+v, want failed after %d attempts with the error", last, maxAttempts)
	}
}

// A worker dies holding leases; a new process on the same database resumes.
func TestResumeAfterCrash(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	tests := []struct {
		name        string
		reclaim     []string
		wantAtOnce  int // claimable right after LoadRun
		wantExpired int // claimable once the dead worker's leases expire
	}{
		{"wait for the dead worker's leases", nil, 6, 3},
		{"reclaim the dead worker's leases", []string{"dead"}, 9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t)
			dead := newFrontier(t, db, clk)
			mustAdd(t, dead, "r", links(10, "a.example"))
			es := mustClaim(t, dead, "r", "dead", 4)
			if err := dead.Done(ctx, es[0].ID); err != nil {
				t.Fatal(err)
			}
			// dead is never used again (kill -9).

			f := newFrontier(t, db, clk)
			counts, err := f.LoadRun(ctx, "r", tt.reclaim...)
			if err != nil {
				t.Fatalf("LoadRun: %v", err)
			}
			if want := (frontier.Counts{Pending: 6, Leased: 3, Done: 1}); counts != want {
				t.Errorf("LoadRun counts = %+v, want %+v", counts, want)
			}
			if got := mustAdd(t, f, "r", links(10, "a.example")); got != 0 {
				t.Errorf("re-adding known links after LoadRun added %d, want 0", got)
			}
			got := mustClaim(t, f, "r", "new", 20)
			if len(got) != tt.wantAtOnce {
				t.Errorf("claimed %d right after LoadRun, want %d", len(got), tt.wantAtOnce)
			}
			clk.Advance(testLease + time.Second)
			later := mustClaim(t, f, "r", "new", 20)
			if len(later) != tt.wantExpired {
				t.Errorf("claimed %d after the leases expired, want %d", len(later), tt.wantExpired)
			}
			for _, e := range append(got, later...) {
				if err := f.Done(ctx, e.ID); err != nil {
					t.Fatal(err)
				}
			}
			drained, err := f.Drained(ctx, "r")
			if err != nil || !drained {
				t.Errorf("Drained = %v, %v; want true", drained, err)
			}
		})
	}
}

// Another worker changes an entry after this process queued it: the claim
// loses its insert, and the entry comes back through a scan once that
// worker's lease has expired.
func TestStaleClaimLosesToAnotherWorker(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	f := newFrontier(t, openDB(t), clk)
	mustAdd(t, f, "r", links(2, "a.example"))
	id := frontier.ID("r", "https://a.example/page/0")
	// The other worker registers before it writes, as every Frontier does.
	if err := frontier.CollectionForTest(f, frontier.WorkersCollection).Insert(ctx, bson.D{{Key: "_id", Value: "r/other"}, {Key: "run_id", Value: "r"}}); err != nil {
		t.Fatal(err)
	}
	err := openLog(f).Insert(ctx, bson.D{
		{Key: "_id", Value: id + "#1"}, {Key: "run_id", Value: "r"}, {Key: "entry", Value: id}, {Key: "seq", Value: int64(1)},
		{Key: "state", Value: frontier.Leased}, {Key: "worker", Value: "other"}, {Key: "lease_until", Value: clk.Now().Add(testLease)},
	})
	if err != nil {
		t.Fatal(err)
	}
	es := claimOrDrain(t, f, "r", "A", 2)
	if len(es) != 1 || es[0].ID == id {
		t.Fatalf("claimed %v, want only the other entry", ids(es))
	}
	if err := f.Done(ctx, es[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := claimOrDrain(t, f, "r", "A", 2); len(got) != 0 {
		t.Fatalf("claimed %v while the other worker's lease runs", ids(got))
	}
	clk.Advance(testLease + time.Second)
	got := claimOrDrain(t, f, "r", "A", 2)
	if len(got) != 1 || got[0].ID != id || got[0].Seq != 2 {
		t.Fatalf("claimed %+v after the lease expired, want %s as change 2", got, id)
	}
}
