// Package frontier keeps a crawl run's URLs in MongoDB: one document per
// (run, normalized URL) with a deterministic string _id, a state (pending,
// leased, done, failed) and a lease, so that an interrupted run resumes where
// it stopped and several workers can share one run.
//
// Every per-page operation is a write or lookup by _id alone, because the
// embedded server (FerretDB v1) pushes down nothing else: a filter with any
// second key, even {_id, state}, scans and decodes the whole collection.
// Pending IDs live in an in-memory queue per run (filled by Add and LoadRun);
// the collection is scanned only at LoadRun, by Counts and Drained, and, at a
// bounded rate, when the local queue is empty (to find work that other
// workers added or abandoned).
//
// Exclusive claims do not rely on conditional updates, which FerretDB runs as
// a read followed by a separate write. A claim instead inserts a token
// document whose _id names the entry and the next lease generation
// ("e:<id>#<gen>"); the unique _id index lets exactly one inserter win, on
// MongoDB and FerretDB alike. Host leases use the same tokens ("h:<host>#<gen>").
//
// The package must not know which server it talks to beyond
// Options.FilterPushdown, and must not fetch anything itself.
package frontier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection names inside the database passed to New.
const (
	// EntriesCollection holds one document per (run, URL).
	EntriesCollection = "frontier"
	// TokensCollection holds the claim tokens that make claims exclusive.
	TokensCollection = "frontier_tokens"
	// HostLeasesCollection holds one document per leased host.
	HostLeasesCollection = "host_leases"
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
	// another worker (after they expired) or finished meanwhile.
	ErrLeaseLost = errors.New("lease lost")
)

// Entry is one URL of a run, as stored in the frontier collection.
type Entry struct {
	ID         string    `bson:"_id"`
	RunID      string    `bson:"run_id"`
	URL        string    `bson:"url"`
	Host       string    `bson:"host"`
	Depth      int       `bson:"depth"`
	State      State     `bson:"state"`
	Attempts   int       `bson:"attempts"`
	LeaseUntil time.Time `bson:"lease_until,omitempty"`
	Worker     string    `bson:"worker,omitempty"`
	Error      string    `bson:"error,omitempty"`
	Parent     string    `bson:"parent,omitempty"`
	AddedAt    time.Time `bson:"added_at"`
	DoneAt     time.Time `bson:"done_at,omitempty"`
	// LeaseGen counts the claims of this entry; a claim wins generation
	// LeaseGen+1 by inserting its token.
	LeaseGen int64 `bson:"lease_gen"`
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

	// Logger receives debug notes on lost claims and warnings on anomalies.
	// If nil, slog.Default().
	Logger *slog.Logger

	// FilterPushdown is store.Capabilities().FilterPushdown: true when
	// filters other than _id equality use indexes (MongoDB). It lets the
	// Frontier scan for other workers' entries whenever its local queue is
	// empty, and add conditions to _id writes; without it scans are rate
	// limited (see ScanInterval).
	FilterPushdown bool

	// ScanInterval is the least time between two scans of one run for
	// claimable entries when the local queue is empty. If zero: no limit
	// with FilterPushdown, otherwise 5s. The Frontier also waits at least 20
	// times the duration of the previous scan, so scans cost at most ~5%.
	ScanInterval time.Duration

	// ScanBatch is how many claimable entries one scan fetches into the
	// local queue. If zero, 256.
	ScanBatch int
}

// Frontier is the frontier of any number of runs in one database. It is safe
// for concurrent use. Each worker process uses its own Frontier; two
// Frontiers on one database never hold the same entry at once.
type Frontier struct {
	entries, tokens, hosts *mongo.Collection

	now          func() time.Time
	lease        time.Duration
	log          *slog.Logger
	pushdown     bool
	scanInterval time.Duration
	scanBatch    int

	mu       sync.Mutex
	runs     map[string]*run
	held     map[string]heldLease // entry id → lease this process holds
	hostHeld map[string]heldLease // host → lease this process holds

	stripes [64]sync.Mutex // serialize writes to one document within this process
}

// heldLease is a lease this process won.
type heldLease struct {
	runID  string
	worker string
	gen    int64
	until  time.Time
}

// New returns a Frontier on db and creates its indexes (idempotent):
// frontier {run_id, state, lease_until} and {run_id, host}; frontier_tokens
// {run_id}. It returns an error if the server refuses to create them.
func New(ctx context.Context, db *mongo.Database, opts Options) (*Frontier, error) {
	f := &Frontier{
		entries:      db.Collection(EntriesCollection),
		tokens:       db.Collection(TokensCollection),
		hosts:        db.Collection(HostLeasesCollection),
		now:          opts.Now,
		lease:        opts.Lease,
		log:          opts.Logger,
		pushdown:     opts.FilterPushdown,
		scanInterval: opts.ScanInterval,
		scanBatch:    opts.ScanBatch,
		runs:         make(map[string]*run),
		held:         make(map[string]heldLease),
		hostHeld:     make(map[string]heldLease),
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.lease <= 0 {
		f.lease = DefaultLease
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.scanInterval == 0 && !f.pushdown {
		f.scanInterval = 5 * time.Second
	}
	if f.scanBatch <= 0 {
		f.scanBatch = 256
	}
	// One index per createIndexes: FerretDB v1.24 drops the connection when
	// one command names two or more indexes that already exist.
	for _, ix := range []struct {
		coll *mongo.Collection
		name string
		keys bson.D
	}{
		{f.entries, "run_state_lease", bson.D{{Key: "run_id", Value: 1}, {Key: "state", Value: 1}, {Key: "lease_until", Value: 1}}},
		{f.entries, "run_host", bson.D{{Key: "run_id", Value: 1}, {Key: "host", Value: 1}}},
		{f.tokens, "run", bson.D{{Key: "run_id", Value: 1}}},
	} {
		_, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name)})
		if err != nil {
			return nil, fmt.Errorf("create index %s on %s: %w", ix.name, ix.coll.Name(), err)
		}
	}
	// Create host_leases now: FerretDB answers a duplicate-key error to a
	// concurrent first insert that races with the collection's creation.
	err := db.CreateCollection(ctx, HostLeasesCollection)
	var ce mongo.CommandError
	if err != nil && !(errors.As(err, &ce) && ce.Code == 48) { // NamespaceExists
		return nil, fmt.Errorf("create collection %s: %w", HostLeasesCollection, err)
	}
	return f, nil
}

// ID is the deterministic _id of normalizedURL in run runID: the run id, a
// dash, and 32 hex digits of the URL's SHA-256. String ids are what the
// embedded server looks up without scanning.
func ID(runID, normalizedURL string) string {
	h := urlHash(normalizedURL)
	return entryID(runID, h)
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

// splitID recovers the hash of an id made by entryID.
func splitID(runID, id string) (hash16, bool) {
	var h hash16
	if len(id) != len(runID)+1+32 || id[:len(runID)] != runID {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(id[len(runID)+1:])); err != nil {
		return h, false
	}
	return h, true
}

// stripe returns the mutex that serializes this process's writes to key, so
// that, say, a Renew cannot rewrite a document that Done just changed (the
// embedded server rewrites whole documents from what it read).
func (f *Frontier) stripe(key string) *sync.Mutex {
	var x uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		x = (x ^ uint32(key[i])) * 16777619
	}
	return &f.stripes[x%uint32(len(f.stripes))]
}

// idFilter is {_id: id}, plus cond where the server can use it without
// scanning (MongoDB). On the embedded server any second key scans the
// collection, so callers check conditions on the returned document instead.
func (f *Frontier) idFilter(id string, cond ...bson.E) bson.D {
	d := bson.D{{Key: "_id", Value: id}}
	if f.pushdown {
		d = append(d, cond...)
	}
	return d
}

// Counts returns the number of entries of runID in each state. It scans the
// run's entries (an index on MongoDB, the whole collection on the embedded
// server): call it for reports, not per page.
func (f *Frontier) Counts(ctx context.Context, runID string) (Counts, error) {
	var c Counts
	cur, err := f.entries.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "run_id", Value: runID}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$state"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return c, fmt.Errorf("count frontier of run %s: %w", runID, err)
	}
	var rows []struct {
		State State `bson:"_id"`
		N     int   `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return c, fmt.Errorf("count frontier of run %s: %w", runID, err)
	}
	for _, r := range rows {
		switch r.State {
		case Pending:
			c.Pending = r.N
		case Leased:
			c.Leased = r.N
		case Done:
			c.Done = r.N
		case Failed:
			c.Failed = r.N
		}
	}
	return c, nil
}

// Drained reports whether runID has nothing pending or leased. While this
// process holds a lease of the run it answers false without a query;
// otherwise it scans (see Counts).
func (f *Frontier) Drained(ctx context.Context, runID string) (bool, error) {
	f.mu.Lock()
	for _, h := range f.held {
		if h.runID == runID {
			f.mu.Unlock()
			return false, nil
		}
	}
	f.mu.Unlock()
	err := f.entries.FindOne(ctx, bson.D{
		{Key: "run_id", Value: runID},
		{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{Pending, Leased}}}},
	}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("check whether run %s is drained: %w", runID, err)
	}
	return false, nil
}

// Held returns how many entry leases this process holds, for progress lines.
func (f *Frontier) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func isDup(err error) bool {
	return mongo.IsDuplicateKeyError(err)
}
