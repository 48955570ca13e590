package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crawlcache/store/storetest"
)

// TestLockChangesRaceTakeover: an expired lease changed (renewed, released,
// broken) while other processes try to take the lock over: exactly one
// holder.
func TestLockChangesRaceTakeover(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(l *Locker, a *Lease) error
		// holds says whether lease a still holds the lock after change
		// returned err.
		holds func(err error) bool
	}{
		{"renew of an expired lease", func(_ *Locker, a *Lease) error { return a.Renew(ctx) },
			func(err error) bool { return err == nil }},
		{"release of an expired lease", func(_ *Locker, a *Lease) error { return a.Release(ctx) },
			func(error) bool { return false }},
		{"expire by a breaker", func(l *Locker, a *Lease) error { return l.Expire(ctx, "race", a.Lock()) },
			func(error) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.Open(t)
			clock := newFakeClock()
			l := NewLocker(s, clock.Now)
			a, err := l.Acquire(ctx, "race", "alice", "")
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(DefaultLockTTL + time.Second) // alice's lease ran out
			const contenders = 6
			var takers atomic.Int32
			var changeErr error
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				changeErr = tc.change(NewLocker(s, clock.Now), a)
			}()
			for i := range contenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := NewLocker(s, clock.Now).Acquire(ctx, "race", fmt.Sprint("c", i), "")
					switch {
					case err == nil:
						takers.Add(1)
					case !errors.Is(err, ErrLocked):
						t.Errorf("contender %d: %v", i, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if changeErr != nil && !errors.Is(changeErr, ErrLeaseLost) {
				t.Fatalf("%s: %v", tc.name, changeErr)
			}
			holders := int(takers.Load())
			if tc.holds(changeErr) {
				holders++
			}
			if holders != 1 {
				t.Errorf("holders after the race = %d (alice holds: %v, takers %d), want 1", holders, tc.holds(changeErr), takers.Load())
			}
			if takers.Load() > 0 {
				if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
					t.Errorf("alice renews after a takeover: err = %v, want ErrLeaseLost", err)
				}
			}
		})
	}
}

// TestLockRenewRacesExpire: a live holder renewing while a breaker expires
// its lease (thinking it dead): exactly one wins, and the lock is held
// exactly when the renewal won.
func TestLockRenewRacesExpire(t *testing.T) {
	ctx := context.Background()
	for round := range 10 {
		s := storetest.Open(t)
		clock := newFakeClock()
		l := NewLocker(s, clock.Now)
		a, err := l.Acquire(ctx, "race", "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		holder := a.Lock()
		var renewErr, expireErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); renewErr = a.Renew(ctx) }()
		go func() { defer wg.Done(); expireErr = NewLocker(s, clock.Now).Expire(ctx, "race", holder) }()
		wg.Wait()
		if expireErr != nil || (renewErr != nil && !errors.Is(renewErr, ErrLeaseLost)) {
			t.Fatalf("round %d: renew %v, expire %v", round, renewErr, expireErr)
		}
		lk, err := l.Get(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		if held := l.Held(lk); held != (renewErr == nil) {
			t.Errorf("round %d: lock held = %v after renew err %v; want held exactly when the renewal won", round, held, renewErr)
		}
	}
}

// TestLockKilledBetweenClaimAndWrite: a process killed after it claimed a
// generation and before it wrote the lock keeps the job locked until that
// claim's lease runs out, and no longer.
func TestLockKilledBetweenClaimAndWrite(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	clock := newFakeClock()
	l := NewLocker(s, clock.Now)
	a, err := l.Acquire(ctx, "docs", "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	// Alice's next renewal is claimed, and she is killed before writing it.
	now := clock.Now().UTC()
	insertClaim(t, s, lockClaim{ID: claimID("docs", a.Lock().Gen+1), Owner: "alice", Host: hostname(), PID: deadPID,
		Created: now, Expires: now.Add(DefaultLockTTL)})
	clock.Advance(DefaultLockTTL / 2)
	if _, err := l.Acquire(ctx, "docs", "bob", ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("acquire while the claimed renewal runs: err = %v, want ErrLocked", err)
	}
	clock.Advance(DefaultLockTTL)
	b, err := l.Acquire(ctx, "docs", "bob", "")
	if err != nil {
		t.Fatalf("acquire once the claimed renewal ran out: %v", err)
	}
	if got, want := b.Lock().Gen, a.Lock().Gen+2; got != want {
		t.Errorf("bob's generation = %d, want %d (the killed claim skipped)", got, want)
	}
}

// TestLockOnReleaseFixture: locks written by the previous release are
// renewed, released, expired and taken over.
func TestLockOnReleaseFixture(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenFixture(t, storetest.FixtureE6C68C8)
	clock := newFakeClock()
	l := NewLocker(s, clock.Now)
	old, err := l.Get(ctx, "fixture-public")
	if err != nil || old == nil || old.Gen != 1 {
		t.Fatalf("fixture lock = %+v, %v; want generation 1", old, err)
	}

	// While the old holder's lease runs: it renews and releases; a breaker
	// expires it.
	clock.Set(old.Acquired.Add(time.Millisecond))
	le := &Lease{l: l, job: "fixture-public", lock: *old}
	if err := le.Renew(ctx); err != nil {
		t.Fatalf("renew of the fixture's lock: %v", err)
	}
	if lk, _ := l.Get(ctx, "fixture-public"); !l.Held(lk) || lk.Gen != 2 || lk.RunID != old.RunID {
		t.Errorf("lock after renewal = %+v, want held at generation 2 for run %s", lk, old.RunID)
	}
	if _, err := l.Acquire(ctx, "fixture-public", "bob", ""); !errors.Is(err, ErrLocked) {
		t.Errorf("acquire of the renewed fixture lock: err = %v, want ErrLocked", err)
	}
	if err := le.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	b, err := l.Acquire(ctx, "fixture-public", "bob", "")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := l.Expire(ctx, "fixture-public", b.Lock()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "fixture-public", "carol", ""); err != nil {
		t.Errorf("acquire after expire: %v", err)
	}

	// The other job's lock, its claim without expires (earlier release),
	// and a lock document lost: the claim fences until created + TTL.
	if err := s.Collection(Database, LocksCollection).Delete(ctx, lockID("fixture-private")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "fixture-private", "dave", ""); !errors.Is(err, ErrLocked) {
		t.Errorf("acquire during the old claim's lease: err = %v, want ErrLocked", err)
	}
	clock.Advance(2 * DefaultLockTTL)
	if d, err := l.Acquire(ctx, "fixture-private", "dave", ""); err != nil || d.Lock().Gen != 2 {
		t.Errorf("acquire after the old claim's lease = %v; want generation 2", err)
	}
}

// upsertFails is the locks collection of a real store whose next Upsert
// fails, as when the store stops answering for a moment.
type upsertFails struct {
	Collection
	fail bool
}

func (c *upsertFails) Upsert(ctx context.Context, id string, doc any) error {
	if c.fail {
		c.fail = false
		return errors.New("connection reset")
	}
	return c.Collection.Upsert(ctx, id, doc)
}

// TestLockRenewAfterFailedWrite: a renewal that claimed its generation
// but failed to write the lock is retried by the next renewal, which finds
// its own claim: the lease is kept, not lost.
func TestLockRenewAfterFailedWrite(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	clock := newFakeClock()
	l := NewLocker(s, clock.Now)
	a, err := l.Acquire(ctx, "docs", "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	faulty := &upsertFails{Collection: l.coll, fail: true}
	l.coll = faulty
	clock.Advance(DefaultLockTTL / 3)
	if err := a.Renew(ctx); err == nil || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew whose lock write fails: err = %v, want the store's error", err)
	}
	clock.Advance(DefaultLockTTL / 3)
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("renew after a failed write: %v, want the lease kept", err)
	}
	lk, err := l.Get(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Held(lk) || lk.Owner != "alice" || lk.Gen != a.Lock().Gen {
		t.Errorf("lock = %+v, want alice's at generation %d", lk, a.Lock().Gen)
	}
	if _, err := l.Acquire(ctx, "docs", "bob", ""); !errors.Is(err, ErrLocked) {
		t.Errorf("bob acquires alice's renewed lock: err = %v, want ErrLocked", err)
	}
}
