package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
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
	// Gen counts acquisitions; every acquisition claims the next generation.
	Gen      int64     `bson:"gen"`
	Acquired time.Time `bson:"acquired"`
	Expires  time.Time `bson:"expires"`
}

// LockedError says who holds a lock and until when.
type LockedError struct {
	Job    string
	Holder Lock
}

func (e *LockedError) Error() string {
	who := e.Holder.Owner
	if e.Holder.Host != "" {
		who = fmt.Sprintf("%s (host %s, pid %d)", who, e.Holder.Host, e.Holder.PID)
	}
	run := ""
	if e.Holder.RunID != "" {
		run = ", run " + e.Holder.RunID
	}
	return fmt.Sprintf("job %s is locked by %s%s until %s unless renewed", e.Job, who, run, e.Holder.Expires.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Locker takes job locks and schedule claims in the locks collection. It is
// safe for concurrent use.
//
// The server's findOneAndUpdate is not atomic on every store crawlcache
// supports (the embedded server reads, then writes), so a lock is never
// taken by a conditional update. Every acquisition first inserts a claim
// document "job:<name>#<gen>" for the next generation; the unique _id makes
// exactly one contender win each generation, on any server. The winner then
// writes the lock document.
type Locker struct {
	coll Collection
	now  func() time.Time
	// TTL is the lease length; DefaultLockTTL when zero.
	TTL time.Duration
}

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
		return nil, &LockedError{Job: job, Holder: *cur}
	}
	var gen int64
	if cur != nil {
		gen = cur.Gen
	}
	now := l.now().UTC()
	host, _ := os.Hostname()
	next := Lock{
		ID: lockID(job), Owner: owner, Host: host, PID: os.Getpid(), RunID: runID,
		Gen: gen + 1, Acquired: now, Expires: now.Add(l.ttl()),
	}
	claim := bson.D{
		{Key: "_id", Value: fmt.Sprintf("%s#%d", lockID(job), next.Gen)},
		{Key: "owner", Value: owner}, {Key: "host", Value: host}, {Key: "pid", Value: next.PID},
		{Key: "created", Value: now},
	}
	if err := l.coll.Insert(ctx, claim); err != nil {
		if errors.Is(err, store.ErrDuplicateID) {
			return nil, l.lostRace(ctx, job, next.Gen)
		}
		return nil, fmt.Errorf("claim lock of job %s: %w", job, err)
	}
	if err := l.coll.Upsert(ctx, next.ID, next); err != nil {
		return nil, fmt.Errorf("write lock of job %s: %w", job, err)
	}
	// Keep the previous generation's claim (it still fences a contender
	// that read the lock just before us); drop the one before it.
	if next.Gen > 2 {
		_ = l.coll.Delete(ctx, fmt.Sprintf("%s#%d", lockID(job), next.Gen-2))
	}
	return &Lease{l: l, job: job, lock: next}, nil
}

// lostRace builds the LockedError for a contender that lost generation gen.
func (l *Locker) lostRace(ctx context.Context, job string, gen int64) error {
	var claim struct {
		Owner   string    `bson:"owner"`
		Host    string    `bson:"host"`
		PID     int       `bson:"pid"`
		Created time.Time `bson:"created"`
	}
	holder := Lock{ID: lockID(job), Gen: gen}
	if err := getDoc(ctx, l.coll, fmt.Sprintf("%s#%d", lockID(job), gen), &claim); err == nil {
		holder.Owner, holder.Host, holder.PID = claim.Owner, claim.Host, claim.PID
		holder.Acquired, holder.Expires = claim.Created, claim.Created.Add(l.ttl())
	}
	if cur, err := l.Get(ctx, job); err == nil && cur != nil && cur.Gen >= gen {
		holder = *cur
	}
	return &LockedError{Job: job, Holder: holder}
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

	mu   sync.Mutex
	lock Lock
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
func (le *Lease) Renew(ctx context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	exp := le.l.now().UTC().Add(le.l.ttl())
	res, err := le.l.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: le.lock.ID}, {Key: "gen", Value: le.lock.Gen}, {Key: "owner", Value: le.lock.Owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: exp}, {Key: "run_id", Value: le.lock.RunID}}}}, false)
	if err != nil {
		return fmt.Errorf("renew lock of job %s: %w", le.job, err)
	}
	if res.Matched == 0 {
		return fmt.Errorf("renew lock of job %s: %w", le.job, ErrLeaseLost)
	}
	le.lock.Expires = exp
	return nil
}

// Release gives the lock up (it expires now), unless it was already lost.
func (le *Lease) Release(ctx context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := le.l.now().UTC()
	_, err := le.l.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: le.lock.ID}, {Key: "gen", Value: le.lock.Gen}, {Key: "owner", Value: le.lock.Owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: now}}}}, false)
	if err != nil {
		return fmt.Errorf("release lock of job %s: %w", le.job, err)
	}
	le.lock.Expires = now
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
// now, for a holder known to be dead. A lock renewed or taken over since is
// left alone.
func (l *Locker) Expire(ctx context.Context, job string, holder Lock) error {
	_, err := l.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: lockID(job)}, {Key: "gen", Value: holder.Gen}, {Key: "owner", Value: holder.Owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: l.now().UTC()}}}}, false)
	if err != nil {
		return fmt.Errorf("expire lock of job %s: %w", job, err)
	}
	return nil
}
