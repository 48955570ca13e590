package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"crawlcache/store/storetest"
)

// fakeClock is a settable clock for leases and schedules.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLockConcurrentAcquireOneWins(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	clock := newFakeClock()
	db := s

	for round, tc := range []struct {
		name string
		prep func(t *testing.T)
	}{
		{"free lock", func(*testing.T) {}},
		{"expired lock", func(*testing.T) { clock.Advance(2 * DefaultLockTTL) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prep(t)
			const contenders = 8
			var wins, locked atomic.Int32
			var wg sync.WaitGroup
			for i := range contenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each contender has its own Locker, like separate processes.
					l := NewLocker(db, clock.Now)
					_, err := l.Acquire(ctx, "race", fmt.Sprintf("r%d-owner%d", round, i), "")
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, ErrLocked):
						locked.Add(1)
					default:
						t.Errorf("acquire: %v", err)
					}
				}()
			}
			wg.Wait()
			if got := wins.Load(); got != 1 {
				t.Errorf("winners = %d, want 1", got)
			}
			if got := locked.Load(); got != contenders-1 {
				t.Errorf("ErrLocked answers = %d, want %d", got, contenders-1)
			}
		})
	}
}

func TestLockLifecycle(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	clock := newFakeClock()
	l := NewLocker(s, clock.Now)

	a, err := l.Acquire(ctx, "docs", "alice", "docs-run-1")
	if err != nil {
		t.Fatalf("alice acquire: %v", err)
	}
	_, err = l.Acquire(ctx, "docs", "bob", "")
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("bob acquire of a held lock: err = %v, want *LockedError", err)
	}
	if le.Holder.Owner != "alice" || le.Holder.RunID != "docs-run-1" {
		t.Errorf("holder = %+v, want owner alice, run docs-run-1", le.Holder)
	}

	// Renewal keeps it held past the first expiry.
	clock.Advance(DefaultLockTTL / 2)
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	clock.Advance(DefaultLockTTL * 3 / 4)
	if _, err := l.Acquire(ctx, "docs", "bob", ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("bob acquire after renewal: err = %v, want ErrLocked", err)
	}

	// Alice crashes: the lease expires and Bob takes it over.
	aliceGen := a.Lock().Gen
	clock.Advance(DefaultLockTTL)
	b, err := l.Acquire(ctx, "docs", "bob", "")
	if err != nil {
		t.Fatalf("bob takeover of an expired lock: %v", err)
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("alice renew after takeover: err = %v, want ErrLeaseLost", err)
	}
	if got := b.Lock().Gen; got != aliceGen+1 {
		t.Errorf("generation after takeover = %d, want %d (alice's last + 1)", got, aliceGen+1)
	}

	// Release frees it at once.
	if err := b.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := l.Acquire(ctx, "docs", "carol", ""); err != nil {
		t.Fatalf("carol acquire after release: %v", err)
	}
}

func TestClaimOccurrenceOnce(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	l := NewLocker(s, nil)
	at := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := l.ClaimOccurrence(ctx, "docs", at, fmt.Sprint("s", i))
			if err != nil {
				t.Errorf("claim: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("claims won = %d, want 1", got)
	}
}

// TestLockedByGoneProcess: a lock whose holder ran on this host and is no
// longer running (killed) is still honoured until it lapses, and the
// error says so and when to retry; a live holder's error does not.
func TestLockedByGoneProcess(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	clock := newFakeClock()
	l := NewLocker(s, clock.Now)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// A zombie: exited (SIGCHLD says so), not reaped until Wait, as a
	// process killed under a parent that does not reap it at once.
	exited := make(chan os.Signal, 1)
	signal.Notify(exited, syscall.SIGCHLD)
	defer signal.Stop(exited)
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	<-exited
	defer zombie.Wait()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pid  int
		want bool
	}{
		{"live", os.Getpid(), false},
		{"killed", gone.Process.Pid, true},
		{"killed, not reaped", zombie.Process.Pid, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job := "docs-" + tt.name
			held := Lock{ID: lockID(job), Owner: "alice", Host: host, PID: tt.pid, Gen: 1,
				Acquired: clock.Now(), Expires: clock.Now().Add(DefaultLockTTL)}
			if err := s.Collection(Database, LocksCollection).Upsert(ctx, held.ID, held); err != nil {
				t.Fatal(err)
			}
			_, err := l.Acquire(ctx, job, "bob", "")
			var le *LockedError
			if !errors.As(err, &le) {
				t.Fatalf("acquire of a held lock: err = %v, want *LockedError", err)
			}
			if le.HolderGone != tt.want || strings.Contains(err.Error(), "no longer running") != tt.want {
				t.Errorf("holder pid %d: HolderGone = %v, message %q; want %v", tt.pid, le.HolderGone, err, tt.want)
			}
		})
	}
}
