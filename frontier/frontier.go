// Package frontier keeps a crawl run's URLs in MongoDB so that an
// interrupted run resumes where it stopped and several workers can share one
// run: one immutable document per (run, normalized URL) with a
// deterministic string _id, and an insert-only log of its state changes
// (pending, leased, done, failed) whose _id is "<entry id>#<seq>".
//
// Why a log: on the embedded server (FerretDB v1, SQLite) every find, update
// or delete by _id scans the whole collection (its SQL does not match the
// _id index), so their cost grows with the collection; only an insert uses
// the unique _id index. A state change is therefore one insert of the next
// sequence number, and the unique index makes it a compare-and-set: of two
// workers changing the same state, exactly one insert succeeds, on MongoDB
// and FerretDB alike. Per-page work (Claim, Done, Fail, Release, Renew) is
// inserts only.
//
// Each Frontier keeps, per run, the URLs it has seen and a queue of
// claimable entries (with their URLs) in memory, filled by Add and by
// scans. A scan reads one run's documents (by _id range on the embedded
// store served by this process, by run_id elsewhere) and costs what the
// run holds, so scans happen only on resume (LoadRun), for Counts, in
// Drained when other workers share the run, and in the background, at a
// bounded rate, when the local queue is empty and other workers share the
// run. Every Frontier
// registers in frontier_workers before writing to a run; one that finds
// itself alone there knows the whole run and needs no scan.
//
// It reaches the store through the storage contract (Collection, which
// *store.Collection satisfies), must not know which server it talks to
// beyond what the contract says, and must not fetch anything itself.
package frontier

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Collection names inside the database passed to New.
const (
	// EntriesCollection holds one document per (run, URL), never updated.
	EntriesCollection = "frontier"
	// LogCollection holds the state changes of the entries, never updated.
	LogCollection = "frontier_log"
	// HostLeasesCollection holds one document per leased host.
	HostLeasesCollection = "host_leases"
	// HostTokensCollection holds the tokens that make host leases exclusive.
	HostTokensCollection = "host_lease_tokens"
	// WorkersCollection holds one document per (run, Frontier) that wrote
	// to the run, so that a Frontier knows whether it works alone.
	WorkersCollection = "frontier_workers"
)

// DefaultLease is the lease duration when Options.Lease is zero.
const DefaultLease = 2 * time.Minute

// State is the state of a frontier entry.
type State string

// The states of an entry. An entry is pending until a worker claims it,
// leased while the worker fetches it, and done or failed at the end. A lease
// that is not renewed expires, and the entry can be claimed again.
const (
	Pending State = "pending"
	Leased  State = "leased"
	Done    State = "done"
	Failed  State = "failed"
)

// Errors returned by the Frontier, checked with errors.Is.
var (
	// ErrNotFound is returned when an entry does not exist.
	ErrNotFound = errors.New("frontier entry not found")
	// ErrLeaseLost is returned by Renew when some leases were taken over by
	// another worker (after they expired) or are no longer held.
	ErrLeaseLost = errors.New("lease lost")
)

// Entry is one URL of a run with its current state.
type Entry struct {
	ID         string
	RunID      string
	URL        string
	Host       string
	Depth      int
	State      State
	Attempts   int // failed attempts so far
	LeaseUntil time.Time
	Worker     string
	Error      string
	// Parent and AddedAt are in the stored entry (see Link); Claim leaves
	// them empty, since a worker keeps millions of queued entries in
	// memory without them.
	Parent  string
	AddedAt time.Time
	DoneAt  time.Time
	// Seq is the number of state changes so far; the next one is Seq+1.
	Seq int64
}

// Link is a URL to add to a run's frontier.
type Link struct {
	URL    string // normalized absolute URL
	Host   string
	Depth  int
	Parent string // URL of the page it was found on; empty for seeds
}

// Counts are the numbers of entries of a run in each state.
type Counts struct {
	Pending, Leased, Done, Failed int
}

// Total is the number of entries.
func (c Counts) Total() int { return c.Pending + c.Leased + c.Done + c.Failed }

// Options configures a Frontier. The zero value is usable.
type Options struct {
	// Now is the clock for leases. If nil, time.Now.
	Now func() time.Time

	// Lease is how long a claim or a host lease lasts without renewal. If
	// zero, DefaultLease (2m).
	Lease time.Duration

	// Logger receives debug notes on lost claims. If nil, slog.Default().
	Logger *slog.Logger

	// ScanInterval is the least time between two scans of a run by Claim
	// when the local queue is empty. If zero: none on a server that uses
	// secondary indexes (MongoDB: store.Capabilities().FilterPushdown),
	// otherwise 5s. Claim also waits at least 20 times the duration of the
	// previous scan, so that scans take at most ~5% of the time.
	ScanInterval time.Duration
}

// Collection is what the frontier needs of each of its collections: inserts
// whose unique _id makes a state change a compare-and-set (Insert and
// InsertMany report an _id stored already: an error wrapping
// store.ErrDuplicateID, or its position in dups), reads by _id (Get: an
// error wrapping store.ErrNotFound when there is none) and by _id prefix
// (one run's records), deletes of a purged run, and the indexes that serve
// queries people make on a server that uses them. *store.Collection has it.
type Collection interface {
	Name() string
	Get(ctx context.Context, id string) (bson.Raw, error)
	Insert(ctx context.Context, doc any) error
	InsertMany(ctx context.Context, docs []any) (dups map[int]bool, err error)
	ScanIDPrefix(ctx context.Context, prefix string, fn func(bson.Raw) error) error
	DeleteMany(ctx context.Context, filter any) (int64, error)
	EnsureIndex(ctx context.Context, name string, keys bson.D) error
}

// LeaseCollection is what host leases need beyond Collection: updates of
// one small document by _id (FindOneAndUpdate returns the document as it
// was, or an error wrapping store.ErrNotFound). *store.Collection has it.
type LeaseCollection interface {
	Collection
	UpdateOne(ctx context.Context, filter, update any, upsert bool) (store.UpdateResult, error)
	FindOneAndUpdate(ctx context.Context, filter, update any, opts store.FindAndUpdate) (bson.Raw, error)
}

var _ LeaseCollection = (*store.Collection)(nil)

// Frontier is the frontier of any number of runs in one database. It is safe
// for concurrent use. Each worker process uses its own Frontier; two
// Frontiers on one database never hold the same entry at once.
type Frontier struct {
	entries, log, hostTokens, workers Collection
	hosts                             LeaseCollection
	instance                          string // random id of this Frontier
	logBatch                          *logBatcher

	now          func() time.Time
	lease        time.Duration
	logger       *slog.Logger
	scanInterval time.Duration

	mu       sync.Mutex
	runs     map[string]*run
	held     map[string]*held   // entry id → lease this process holds
	hostHeld map[string]hostRef // host → lease this process holds

	stripes [64]sync.Mutex // serialize state changes of one entry or host in this process
}

// New returns a Frontier on database db of s. It creates the frontier's
// collections up front (so that the first inserts of concurrent workers do
// not race to create them, and lookups by _id are indexed from the start)
// and, where the server uses secondary indexes (MongoDB), the indexes
// that serve queries by run and by entry: frontier {run_id, host};
// frontier_log {run_id, state, lease_until} and {entry, seq}. All of it is
// idempotent. It returns an error if the store refuses them.
func New(ctx context.Context, s *store.Store, db string, opts Options) (*Frontier, error) {
	// Create the collections first: an index on a collection that does
	// not exist yet would create it without the _id index at once.
	if err := s.EnsureCollections(ctx, db, EntriesCollection, LogCollection, HostLeasesCollection, HostTokensCollection, WorkersCollection); err != nil {
		return nil, err
	}
	f := &Frontier{
		entries:      s.Collection(db, EntriesCollection),
		log:          s.Collection(db, LogCollection),
		hosts:        s.Collection(db, HostLeasesCollection),
		hostTokens:   s.Collection(db, HostTokensCollection),
		workers:      s.Collection(db, WorkersCollection),
		instance:     newInstanceID(),
		now:          opts.Now,
		lease:        opts.Lease,
		logger:       opts.Logger,
		scanInterval: opts.ScanInterval,
		runs:         make(map[string]*run),
		held:         make(map[string]*held),
		hostHeld:     make(map[string]hostRef),
	}
	f.logBatch = newLogBatcher(f.log)
	if f.now == nil {
		f.now = time.Now
	}
	if f.lease <= 0 {
		f.lease = DefaultLease
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if f.scanInterval == 0 && !s.Capabilities().FilterPushdown {
		f.scanInterval = 5 * time.Second
	}
	// One index per createIndexes: FerretDB v1.24 drops the connection when
	// one command names two or more indexes that already exist.
	for _, ix := range []struct {
		coll Collection
		name string
		keys bson.D
	}{
		{f.entries, "run_host", bson.D{{Key: "run_id", Value: 1}, {Key: "host", Value: 1}}},
		{f.log, "run_state_lease", bson.D{{Key: "run_id", Value: 1}, {Key: "state", Value: 1}, {Key: "lease_until", Value: 1}}},
		{f.log, "entry_seq", bson.D{{Key: "entry", Value: 1}, {Key: "seq", Value: -1}}},
	} {
		if err := ix.coll.EnsureIndex(ctx, ix.name, ix.keys); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// ID is the deterministic _id of normalizedURL in run runID: the run id, a
// dash, and 32 hex digits of the URL's SHA-256.
func ID(runID, normalizedURL string) string {
	return entryID(runID, urlHash(normalizedURL))
}

type hash16 = [16]byte

func urlHash(u string) hash16 {
	sum := sha256.Sum256([]byte(u))
	var h hash16
	copy(h[:], sum[:16])
	return h
}

func entryID(runID string, h hash16) string {
	return runID + "-" + hex.EncodeToString(h[:])
}

// splitID returns the run and URL hash of an id made by ID.
func splitID(id string) (string, hash16, bool) {
	var h hash16
	if len(id) < 34 || id[len(id)-33] != '-' {
		return "", h, false
	}
	if _, err := hex.Decode(h[:], []byte(id[len(id)-32:])); err != nil {
		return "", h, false
	}
	return id[:len(id)-33], h, true
}

// stripe returns the mutex that serializes this process's state changes of
// key, so that, say, Renew and Done of one entry do not race for the same
// sequence number.
func (f *Frontier) stripe(key string) *sync.Mutex {
	var x uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		x = (x ^ uint32(key[i])) * 16777619
	}
	return &f.stripes[x%uint32(len(f.stripes))]
}

// Counts returns the number of entries of runID in each state, as the store
// has them (a lease is counted leased until its holder finishes it, even
// when expired). It reads the run's entries and log records: on the
// embedded store served by this process only those (see scanRun), on
// another store every document that has the run's run_id. It does not
// change this process's queue. Call it for reports, not per page.
func (f *Frontier) Counts(ctx context.Context, runID string) (Counts, error) {
	c, err := f.count(ctx, runID)
	if err != nil {
		return c, fmt.Errorf("count frontier of run %s: %w", runID, err)
	}
	return c, nil
}

// Drained reports whether runID has nothing pending or leased. It answers
// false without I/O while this process holds a lease of the run or has
// entries of it queued (a Claim will get them, or find them gone). When this
// Frontier is the only one that ever wrote to the run (a single worker that
// started it), its memory is complete and it answers without scanning.
// Otherwise it scans the run (see LoadRun for the cost) and refreshes this
// process's queue, so that a Claim after a false answer finds the work;
// while it only waits for other workers' leases to end, it scans at the
// bounded rate of ScanInterval and answers false in between. The usual
// loop: Claim; if it returns nothing and nothing is in flight, Drained; if
// false, wait a little and Claim again.
func (f *Frontier) Drained(ctx context.Context, runID string) (bool, error) {
	f.mu.Lock()
	busy := false
	for _, h := range f.held {
		busy = busy || h.runID == runID
	}
	r := f.runs[runID]
	if r != nil {
		busy = busy || r.loading || r.queued() > 0 || (len(r.watch) > 0 && !f.scanDueLocked(r, f.now()))
	}
	registered := r != nil && r.registered && !r.uncertain
	f.mu.Unlock()
	if busy {
		return false, nil
	}
	if registered {
		alone, err := f.alone(ctx, runID)
		if err != nil {
			return false, fmt.Errorf("check whether run %s is drained: %w", runID, err)
		}
		if alone {
			f.mu.Lock()
			empty := r.queued()+len(r.watch) == 0
			f.mu.Unlock()
			return empty, nil
		}
	}
	c, err := f.refresh(ctx, runID, true)
	if err != nil {
		return false, fmt.Errorf("check whether run %s is drained: %w", runID, err)
	}
	return c.Pending+c.Leased == 0, nil
}

// register records, once per run, that this Frontier writes to runID,
// before its first write. See alone.
func (f *Frontier) register(ctx context.Context, runID string) error {
	f.mu.Lock()
	r := f.runLocked(runID)
	done := r.registered
	f.mu.Unlock()
	if done {
		return nil
	}
	err := f.workers.Insert(ctx, bson.D{
		{Key: "_id", Value: runID + "/" + f.instance}, {Key: "run_id", Value: runID},
		{Key: "at", Value: f.now().UTC()},
	})
	if err != nil && !isDup(err) {
		return fmt.Errorf("register worker for run %s: %w", runID, err)
	}
	f.mu.Lock()
	r.registered = true
	f.mu.Unlock()
	return nil
}

// alone reports whether this Frontier is the only one registered for runID.
// Every Frontier registers before it writes to a run, so then every entry
// and state change of the run was made here, and this Frontier's memory of
// the run is complete. It reads the run's documents only (see scanRun).
func (f *Frontier) alone(ctx context.Context, runID string) (bool, error) {
	var ids []string
	err := f.scanRun(ctx, f.workers, runID, func(doc bson.Raw) error {
		id, _ := doc.Lookup("_id").StringValueOK()
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return false, err
	}
	return len(ids) == 1 && ids[0] == runID+"/"+f.instance, nil
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Held returns how many entry leases this process holds. It does no I/O.
func (f *Frontier) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func isDup(err error) bool { return errors.Is(err, store.ErrDuplicateID) }

// Purge deletes every entry and log record of runID and this process's
// memory of it, and returns how many documents it deleted. Call it when a
// finished run's frontier is no longer wanted (it cannot be resumed after)
// and its space is. It scans the collections once (on the embedded server,
// every run's documents): an admin operation, not part of a run.
func (f *Frontier) Purge(ctx context.Context, runID string) (int64, error) {
	var n int64
	for _, c := range []Collection{f.log, f.entries, f.workers} {
		deleted, err := c.DeleteMany(ctx, bson.D{{Key: "run_id", Value: runID}})
		if err != nil {
			return n, fmt.Errorf("purge run %s from %s: %w", runID, c.Name(), err)
		}
		n += deleted
	}
	f.Forget(runID)
	return n, nil
}
