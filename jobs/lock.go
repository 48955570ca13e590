package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// DefaultLockTTL is how long a job lock lives without renewal. A holder
// renews it every third of this, so a crashed holder's lock expires at most
// this long after its last renewal.
const DefaultLockTTL = 30 * time.Second

// Lock errors.
var (
	// ErrLocked is wrapped by *LockedError: another owner holds the lock.
	ErrLocked = errors.New("job is locked")
	// ErrLeaseLost is returned by Renew when another owner took the lock
	// over after this lease expired.
	ErrLeaseLost = errors.New("job lock lost")
)

// Lock is a job lock document in the locks collection. Its _id is
// "job:<name>".
type Lock struct {
	ID    string `bson:"_id"`
	Owner string `bson:"owner"`
	Host  string `bson:"host"`
	PID   int    `bson:"pid"`
	RunID string `bson:"run_id,omitempty"`
	// Gen counts the lock's changes: every acquisition, renewal, release
	// and break claims the next generation (see Locker).
	Gen      int64     `bson:"gen"`
	Acquired time.Time `bson:"acquired"`
	Expires  time.Time `bson:"expires"`
}

// LockedError says who holds a lock and until when.
type LockedError struct {
	Job    string
	Holder Lock
	// HolderGone: the holder ran on this host and its process is no
	// longer running (killed, crashed): the lock lapses at its expiry,
	// since another host's process with the same name and pid cannot be
	// told apart.
	HolderGone bool
}

// lockedBy is the error for job's lock held by holder.
func lockedBy(job string, holder Lock) *LockedError {
	e := &LockedError{Job: job, Holder: holder}
	if host, err := os.Hostname(); err == nil && holder.Host == host && holder.PID > 0 {
		e.HolderGone = processGone(holder.PID)
	}
	return e
}

// processGone reports whether process pid of this host has ended: there
// is none, or only its zombie (killed, not yet reaped by its parent).
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// Error says which job is locked, by whom and until when.
func (e *LockedError) Error() string {
	who := e.Holder.Owner
	if e.Holder.Host != "" {
		who = fmt.Sprintf("%s (host %s, pid %d)", who, e.Holder.Host, e.Holder.PID)
	}
	run := ""
	if e.Holder.RunID != "" {
		run = ", run " + e.Holder.RunID
	}
	until := e.Holder.Expires.UTC().Format(time.RFC3339)
	if e.HolderGone {
		return fmt.Sprintf("job %s is locked by %s%s, which is no longer running on this host: the lock lapses at %s; retry then", e.Job, who, run, until)
	}
	return fmt.Sprintf("job %s is locked by %s%s until %s unless renewed", e.Job, who, run, until)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Locker takes job locks and schedule claims in the locks collection. It is
// safe for concurrent use.
//
// Every change of a lock is a new generation, and every generation is
// claimed first: the claim document "job:<name>#<gen>" is inserted, and the
// unique _id makes exactly one process win it, on any server. Only the
// winner then writes the lock document "job:<name>", by _id. Acquire claims
// the next generation of an expired lock; Renew, Release and Expire claim
// the next generation of the lease they change (a renewal that loses the
// claim lost the lease). Nothing filters on anything but _id: the embedded
// server's conditional updates ({_id, gen, owner}) read every document of
// the collection, and are not atomic there (it reads, then writes), so
// they could not make renewals exclusive anyway.
//
// A claim records until when its generation's lease runs (expires; claims
// of earlier releases have only created, so created + TTL). A process
// killed between its claim and its write of the lock document leaves a
// claim the lock document does not show: once that claim's lease has run
// out, Acquire skips it and claims the generation after.
type Locker struct {
	coll Collection
	now  func() time.Time
	// TTL is the lease length; DefaultLockTTL when zero.
	TTL time.Duration
}

// lockClaim is the claim document of one generation of a job lock.
type lockClaim struct {
	ID      string    `bson:"_id"`
	Owner   string    `bson:"owner"`
	Host    string    `bson:"host"`
	PID     int       `bson:"pid"`
	Created time.Time `bson:"created"`
	// Expires is when the generation's lease runs out; zero in claims of
	// earlier releases (then Created + TTL).
	Expires time.Time `bson:"expires,omitempty"`
}

// maxStaleClaims bounds how many claims left by killed processes Acquire
// skips in one call.
const maxStaleClaims = 8

// NewLocker returns a Locker over the locks collection of s (database
// Database). If now is nil, time.Now is used.
func NewLocker(s *store.Store, now func() time.Time) *Locker {
	if now == nil {
		now = time.Now
	}
	return &Locker{coll: s.Collection(Database, LocksCollection), now: now}
}

func (l *Locker) ttl() time.Duration {
	if l.TTL > 0 {
		return l.TTL
	}
	return DefaultLockTTL
}

func lockID(job string) string { return "job:" + job }

func claimID(job string, gen int64) string { return fmt.Sprintf("%s#%d", lockID(job), gen) }

// Get returns the job's lock document, or nil when the job was never locked.
func (l *Locker) Get(ctx context.Context, job string) (*Lock, error) {
	var lk Lock
	err := getDoc(ctx, l.coll, lockID(job), &lk)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock of job %s: %w", job, err)
	}
	return &lk, nil
}

// Held reports whether lk is held at the Locker's current time.
func (l *Locker) Held(lk *Lock) bool {
	return lk != nil && lk.Expires.After(l.now())
}

// Acquire takes the job's lock for owner, recording runID (which may be
// empty and set later with Lease.SetRun). It returns a *LockedError
// (errors.Is ErrLocked) naming the holder when the lock is held and not
// expired (by anyone: it is not re-entrant) or another contender wins the
// race for it.
func (l *Locker) Acquire(ctx context.Context, job, owner, runID string) (*Lease, error) {
	cur, err := l.Get(ctx, job)
	if err != nil {
		return nil, err
	}
	if l.Held(cur) {
		// Even for the same owner: a lock is not re-entrant, so two
		// processes started with the same --worker-id still exclude
		// each other.
		return nil, lockedBy(job, *cur)
	}
	var gen int64
	if cur != nil {
		gen = cur.Gen
	}
	host, _ := os.Hostname()
	for range maxStaleClaims {
		now := l.now().UTC()
		next := Lock{
			ID: lockID(job), Owner: owner, Host: host, PID: os.Getpid(), RunID: runID,
			Gen: gen + 1, Acquired: now, Expires: now.Add(l.ttl()),
		}
		won, err := l.claim(ctx, job, next, false)
		if err != nil {
			return nil, err
		}
		if won {
			return &Lease{l: l, job: job, lock: next}, nil
		}
		if !l.staleClaim(ctx, job, next.Gen) {
			return nil, l.lostRace(ctx, job, next.Gen)
		}
		gen = next.Gen // its winner was killed before writing the lock
	}
	return nil, l.lostRace(ctx, job, gen)
}

// claim claims generation next.Gen of the job's lock for next and, when it
// wins, writes next as the lock document. It reports whether it won. With
// retry, an earlier call of this lease for the same generation failed: a
// claim found there with next's owner, host and pid is its own.
func (l *Locker) claim(ctx context.Context, job string, next Lock, retry bool) (bool, error) {
	c := lockClaim{ID: claimID(job, next.Gen), Owner: next.Owner, Host: next.Host, PID: next.PID,
		Created: l.now().UTC(), Expires: next.Expires}
	if err := l.coll.Insert(ctx, c); err != nil {
		if !errors.Is(err, store.ErrDuplicateID) {
			return false, fmt.Errorf("claim lock of job %s: %w", job, err)
		}
		var had lockClaim
		if !retry || getDoc(ctx, l.coll, c.ID, &had) != nil || had.Owner != c.Owner || had.Host != c.Host || had.PID != c.PID {
			return false, nil
		}
	}
	// A generation whose claim was deleted (two generations back) can be
	// claimed again by a contender that read the lock long ago: the lock
	// document then already shows it or a later one, and this claim is
	// void.
	cur, err := l.Get(ctx, job)
	if err != nil {
		return false, err
	}
	if cur != nil && cur.Gen >= next.Gen {
		return false, nil
	}
	if err := l.coll.Upsert(ctx, next.ID, next); err != nil {
		return false, fmt.Errorf("write lock of job %s: %w", job, err)
	}
	// Keep the previous generation's claim (it still fences a contender
	// that read the lock just before us); drop the one before it.
	if next.Gen > 2 {
		_ = l.coll.Delete(ctx, claimID(job, next.Gen-2))
	}
	return true, nil
}

// staleClaim reports whether the claim of generation gen is one whose
// lease has run out while the lock document does not show it held: its
// winner was killed before it wrote the lock document, or its lease
// expired since.
func (l *Locker) staleClaim(ctx context.Context, job string, gen int64) bool {
	var c lockClaim
	if err := getDoc(ctx, l.coll, claimID(job, gen), &c); err != nil {
		return false
	}
	exp := c.Expires
	if exp.IsZero() {
		exp = c.Created.Add(l.ttl())
	}
	if exp.After(l.now()) {
		return false
	}
	cur, err := l.Get(ctx, job)
	return err == nil && (cur == nil || cur.Gen <= gen && !l.Held(cur))
}

// lostRace builds the LockedError for a contender that lost generation gen.
func (l *Locker) lostRace(ctx context.Context, job string, gen int64) error {
	var c lockClaim
	holder := Lock{ID: lockID(job), Gen: gen}
	if err := getDoc(ctx, l.coll, claimID(job, gen), &c); err == nil {
		holder.Owner, holder.Host, holder.PID = c.Owner, c.Host, c.PID
		holder.Acquired, holder.Expires = c.Created, c.Expires
		if c.Expires.IsZero() {
			holder.Expires = c.Created.Add(l.ttl())
		}
	}
	if cur, err := l.Get(ctx, job); err == nil && cur != nil && cur.Gen >= gen {
		holder = *cur
	}
	return lockedBy(job, holder)
}

// ClaimOccurrence claims the scheduled occurrence of job at `at` for owner.
// Exactly one caller per (job, at) gets true, on any server: schedulers on
// several machines call it before running a due job.
func (l *Locker) ClaimOccurrence(ctx context.Context, job string, at time.Time, owner string) (bool, error) {
	err := l.coll.Insert(ctx, bson.D{
		{Key: "_id", Value: occurrenceID(job, at)},
		{Key: "owner", Value: owner},
		{Key: "created", Value: l.now().UTC()},
	})
	if errors.Is(err, store.ErrDuplicateID) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim %s run of job %s: %w", at.UTC().Format(time.RFC3339), job, err)
	}
	return true, nil
}

// OccurrenceClaim returns who claimed the occurrence of job at `at` and
// when; found is false when nobody did (or the claim was forgotten).
func (l *Locker) OccurrenceClaim(ctx context.Context, job string, at time.Time) (owner string, claimed time.Time, found bool, err error) {
	var doc struct {
		Owner   string    `bson:"owner"`
		Created time.Time `bson:"created"`
	}
	err = getDoc(ctx, l.coll, occurrenceID(job, at), &doc)
	if errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("read the claim of the %s run of job %s: %w", at.UTC().Format(time.RFC3339), job, err)
	}
	return doc.Owner, doc.Created, true, nil
}

// ForgetOccurrence deletes the claim of an old occurrence (by _id).
func (l *Locker) ForgetOccurrence(ctx context.Context, job string, at time.Time) error {
	if err := l.coll.Delete(ctx, occurrenceID(job, at)); err != nil {
		return fmt.Errorf("forget %s run of job %s: %w", at.UTC().Format(time.RFC3339), job, err)
	}
	return nil
}

func occurrenceID(job string, at time.Time) string {
	return "schedule:" + job + ":" + at.UTC().Format(time.RFC3339)
}

// Lease is a held job lock. Its methods are safe for concurrent use.
type Lease struct {
	l   *Locker
	job string

	mu     sync.Mutex
	lock   Lock
	failed int64 // the generation the last failed change of the lease tried
}

// Lock returns a copy of the lock document as last written by this lease.
func (le *Lease) Lock() Lock {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.lock
}

// SetRun records the run id in the lock document, so a contender's error
// names the run.
func (le *Lease) SetRun(ctx context.Context, runID string) error {
	le.mu.Lock()
	le.lock.RunID = runID
	le.mu.Unlock()
	return le.Renew(ctx)
}

// Renew extends the lease by the Locker's TTL. It returns an error wrapping
// ErrLeaseLost when another owner took the lock over meanwhile.
//
// A renewal is the next generation of the lock, claimed by this lease:
// exactly one of a renewal and a contender that found the lease expired
// wins it, on any server.
func (le *Lease) Renew(ctx context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := le.l.now().UTC()
	if err := le.next(ctx, now.Add(le.l.ttl())); err != nil {
		return fmt.Errorf("renew lock of job %s: %w", le.job, err)
	}
	return nil
}

// next claims the generation after the lease's with the lease's lock
// expiring at exp, and makes it the lease's. It returns ErrLeaseLost when
// another process claimed it (or the lock shows a later generation).
// le.mu is held.
func (le *Lease) next(ctx context.Context, exp time.Time) error {
	n := le.lock
	n.Gen, n.Expires = le.lock.Gen+1, exp
	won, err := le.l.claim(ctx, le.job, n, le.failed == n.Gen)
	if err != nil {
		// The claim may be stored (an error after the insert, or on the
		// way back): the next attempt knows it for its own.
		le.failed = n.Gen
		return err
	}
	if !won {
		return ErrLeaseLost
	}
	le.lock = n
	return nil
}

// Release gives the lock up (it expires now), unless it was already lost.
func (le *Lease) Release(ctx context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	err := le.next(ctx, le.l.now().UTC())
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("release lock of job %s: %w", le.job, err)
	}
	return nil
}

// KeepAlive renews the lease every third of the TTL until ctx is done. When
// a renewal fails with ErrLeaseLost, or keeps failing until the lease would
// have expired, it calls lost once and returns.
func (le *Lease) KeepAlive(ctx context.Context, lost func(error)) {
	t := time.NewTicker(le.l.ttl() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := le.Renew(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		if errors.Is(err, ErrLeaseLost) || !le.l.now().Before(le.Lock().Expires) {
			lost(err)
			return
		}
	}
}

// Expire ends the lease described by holder (same generation and owner)
// now, for a holder known to be dead: it claims the generation after
// holder's and writes the lock expired. A lock renewed or taken over since
// (that generation is claimed already) is left alone.
func (l *Locker) Expire(ctx context.Context, job string, holder Lock) error {
	n := holder
	n.ID, n.Gen, n.Expires = lockID(job), holder.Gen+1, l.now().UTC()
	if _, err := l.claim(ctx, job, n, false); err != nil {
		return fmt.Errorf("expire lock of job %s: %w", job, err)
	}
	return nil
}
