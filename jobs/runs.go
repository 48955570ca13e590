// Package jobs runs crawl jobs: it owns the run records (collection `runs`),
// the job locks and schedule claims (collection `locks`) in the "crawlcache"
// database, the scheduler and its Prometheus metrics.
//
// A run is one execution of a job, identified by a sortable id such as
// "docs-20261127T040512Z-3fa9". Its record holds the job, the config hash,
// the status, the counters summed over every worker that took part, and one
// entry per worker (host, pid, heartbeat, its own counters). A job lock (a
// lease document that expires after a crash) makes sure two `run` commands
// or two schedulers on different machines never run the same job at once.
//
// The package glues configs, cache, frontier, pipeline and crawler together;
// it does not crawl, parse YAML or print to a terminal itself.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Database and collection names in the store.
const (
	Database        = "crawlcache"
	RunsCollection  = "runs"
	LocksCollection = "locks"
	// CountersCollection holds each run's item counter per mongodb output
	// (_id "<run>/<collection>"), read by _id at the end of the run.
	CountersCollection = "run_counters"
)

// Status is the state of a run.
type Status string

// Run statuses. A run is created running and ends completed (its frontier
// drained), failed (an error stopped it) or interrupted (Ctrl-C or a lost
// lease; it can be resumed).
const (
	StatusRunning     Status = "running"
	StatusCompleted   Status = "completed"
	StatusFailed      Status = "failed"
	StatusInterrupted Status = "interrupted"
)

// Errors returned by the run store.
var (
	// ErrRunNotFound is returned when no run has the given id.
	ErrRunNotFound = errors.New("run not found")
	// ErrNotResumable is returned when a run cannot be resumed because it
	// completed, or is still running under a live lock.
	ErrNotResumable = errors.New("run cannot be resumed")
)

// Worker is one process that took part in a run. Its Counters are what
// that process reported of its own work (its last report, every ~2 s): a
// process killed with kill -9 misses its last seconds, and a page it
// fetched but did not acknowledge is counted again by the worker that
// redoes it. They are never reconciled; the run's own Counters are.
type Worker struct {
	ID        string    `bson:"id" json:"id"`
	Host      string    `bson:"host" json:"host"`
	PID       int       `bson:"pid" json:"pid"`
	Started   time.Time `bson:"started" json:"started"`
	Heartbeat time.Time `bson:"heartbeat" json:"heartbeat"`
	Counters  Counters  `bson:"counters" json:"counters"`
	// ParseRules is the digest of the rules under which the worker stores
	// and reuses parse results (crawler.ParseRules); the scheduler's sweep
	// of old parse records keeps those of rules in use (RulesInUse).
	// Workers of earlier releases lack it.
	ParseRules string `bson:"parse_rules,omitempty" json:"-"`
}

// Run is a run record as stored in the runs collection.
type Run struct {
	ID         string     `bson:"_id" json:"run_id"`
	Job        string     `bson:"job" json:"job"`
	ConfigPath string     `bson:"config_path" json:"config_path"`
	ConfigHash string     `bson:"config_hash" json:"config_hash"`
	Status     Status     `bson:"status" json:"status"`
	Started    time.Time  `bson:"started" json:"started"`
	Finished   *time.Time `bson:"finished,omitempty" json:"finished,omitempty"`
	Updated    time.Time  `bson:"updated" json:"updated"`
	// Counters are summed over every worker and every resume of the run,
	// as the workers reported them (every ~2 s). When the run finishes,
	// pages and errors are set from its frontier and items from its
	// mongodb output (see Tally), so that a completed run counts every
	// page and item once even after kill -9 and resume (a run crawled by
	// one process alone, never resumed, keeps its reports: they are
	// exact, and the frontier is not read again); the other
	// counters (hits, misses, revalidated, stale, bytes) stay the workers'
	// sums and may miss a killed worker's last seconds.
	Counters Counters `bson:"counters" json:"counters"`
	// Queue is the frontier's pending count at the last progress write.
	Queue int64 `bson:"queue" json:"queue"`
	// Resumes counts how many times the run was resumed.
	Resumes int `bson:"resumes" json:"resumes"`
	// IdleSeconds is the time between the run's sessions: from the last
	// heartbeat of an interrupted (or killed) session to the resume that
	// followed, summed. Absent (0) in runs of earlier releases and in runs
	// never resumed.
	IdleSeconds float64 `bson:"idle_seconds,omitempty" json:"idle_seconds,omitempty"`
	// Options records per-run overrides such as "revalidate".
	Options []string `bson:"options,omitempty" json:"options,omitempty"`
	// Workers is keyed by worker id.
	Workers map[string]Worker `bson:"workers,omitempty" json:"-"`
	Error   string            `bson:"error,omitempty" json:"error,omitempty"`
	// Breakdown splits the run's errors by kind and its responses by
	// HTTP status, summed over every worker and resume.
	Breakdown Breakdown `bson:",inline" json:"-"`
	// Commit is set once the run's crawl completed and the commit of its
	// outputs began; nil before (and for runs of earlier releases).
	Commit *CommitState `bson:"commit,omitempty" json:"commit,omitempty"`
}

// Breakdown splits a run's failed URLs by kind (crawler.ErrorNetwork, …,
// "http_503") and its responses by HTTP status ("200", "404"), as Scrapy's
// stats do. Nil maps are empty.
type Breakdown struct {
	ErrorKinds map[string]int64 `bson:"error_kinds,omitempty" json:"errors_by_kind,omitempty"`
	Statuses   map[string]int64 `bson:"statuses,omitempty" json:"statuses,omitempty"`
}

// sub returns b minus o, key by key, leaving out zeros.
func (b Breakdown) sub(o Breakdown) Breakdown {
	diff := func(x, y map[string]int64) map[string]int64 {
		var out map[string]int64
		for k, v := range x {
			if d := v - y[k]; d != 0 {
				if out == nil {
					out = map[string]int64{}
				}
				out[k] = d
			}
		}
		return out
	}
	return Breakdown{ErrorKinds: diff(b.ErrorKinds, o.ErrorKinds), Statuses: diff(b.Statuses, o.Statuses)}
}

// inc returns the $inc fields that add b.
func (b Breakdown) inc() bson.D {
	var out bson.D
	for _, m := range []struct {
		prefix string
		counts map[string]int64
	}{{"error_kinds.", b.ErrorKinds}, {"statuses.", b.Statuses}} {
		keys := make([]string, 0, len(m.counts))
		for k := range m.counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, bson.E{Key: m.prefix + sanitizeKey(k), Value: m.counts[k]})
		}
	}
	return out
}

// CommitState records how far the commit of a run's outputs went, one
// output at a time, so that a resume after a failure or a crash at any
// step finishes it without replacing an output already committed.
type CommitState struct {
	// Started is when the commit began: the crawl had completed, so a
	// resume only finishes the commit.
	Started time.Time `bson:"started" json:"started"`
	// Outputs maps each committed output (OutputKey) to when it was.
	Outputs map[string]time.Time `bson:"outputs,omitempty" json:"outputs,omitempty"`
}

// Committed reports whether the output with key (OutputKey) is committed.
func (c *CommitState) Committed(key string) bool {
	if c == nil {
		return false
	}
	_, ok := c.Outputs[key]
	return ok
}

// OutputKey names an output in CommitState.Outputs: its kind and its path
// or collection, usable as a field name ("jsonl:out/items_jsonl").
func OutputKey(kind, where string) string {
	return sanitizeKey(kind + ":" + where)
}

// WorkerList returns the run's workers ordered by start time.
func (r *Run) WorkerList() []Worker {
	ws := make([]Worker, 0, len(r.Workers))
	for _, w := range r.Workers {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool {
		if !ws[i].Started.Equal(ws[j].Started) {
			return ws[i].Started.Before(ws[j].Started)
		}
		return ws[i].ID < ws[j].ID
	})
	return ws
}

// Elapsed is the run's wall time: until Finished, or until Updated while it
// has not finished.
func (r *Run) Elapsed() time.Duration {
	if r.Finished != nil {
		return r.Finished.Sub(r.Started)
	}
	return r.Updated.Sub(r.Started)
}

// NewRunID returns a run id for job started at t: the job name, the UTC
// start time to the second and 4 random hex digits, so ids sort by start
// time within a job.
func NewRunID(job string, t time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", job, t.UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]))
}

// NewWorkerID returns an id for this process as a worker: host, pid and 4
// random hex digits. Dots are replaced so that the id can be a field name.
func NewWorkerID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return sanitizeKey(fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])))
}

// sanitizeKey makes s usable as a document field name in an update path.
func sanitizeKey(s string) string {
	return strings.NewReplacer(".", "_", "$", "_").Replace(s)
}

// Runs reads and writes run records. The zero value is not usable; use
// NewRuns. It is safe for concurrent use.
type Runs struct {
	coll   Collection
	last   Collection // LastRunsCollection
	claims Collection // LocksCollection: see runend.go
	now    func() time.Time
}

// Collection is what jobs needs of its collections (runs, last_runs,
// locks): documents by _id (Get: an error wrapping store.ErrNotFound when
// there is none), inserts whose unique _id makes a claim exclusive (an
// error wrapping store.ErrDuplicateID), updates of one document, and a
// listing of runs for commands, and whether filters beside _id are cheap
// (FilterPushdown). *store.Collection has it.
type Collection interface {
	FilterPushdown() bool
	Get(ctx context.Context, id string) (bson.Raw, error)
	Insert(ctx context.Context, doc any) error
	Upsert(ctx context.Context, id string, doc any) error
	Delete(ctx context.Context, id string) error
	UpdateOne(ctx context.Context, filter, update any, upsert bool) (store.UpdateResult, error)
	All(ctx context.Context, filter any, opts store.FindOptions, out any) error
}

var _ Collection = (*store.Collection)(nil)

// getDoc decodes the document with _id id of c into out; an error wrapping
// store.ErrNotFound when there is none.
func getDoc(ctx context.Context, c Collection, id string, out any) error {
	raw, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := bson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode %s: %w", id, err)
	}
	return nil
}

// NewRuns returns the run store over the runs collection of s (database
// Database). If now is nil, time.Now is used.
func NewRuns(s *store.Store, now func() time.Time) *Runs {
	if now == nil {
		now = time.Now
	}
	return &Runs{
		coll: s.Collection(Database, RunsCollection), last: s.Collection(Database, LastRunsCollection),
		claims: s.Collection(Database, LocksCollection), now: now,
	}
}

// Create inserts r, filling Started and Updated when zero and Status with
// running when empty, and records it as its job's newest run (see Last).
func (rs *Runs) Create(ctx context.Context, r *Run) error {
	now := rs.now().UTC()
	if r.Started.IsZero() {
		r.Started = now
	}
	if r.Updated.IsZero() {
		r.Updated = now
	}
	if r.Status == "" {
		r.Status = StatusRunning
	}
	if err := rs.setLast(ctx, r); err != nil {
		return err
	}
	if err := rs.coll.Insert(ctx, r); err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

// Get returns the run with id, or an error wrapping ErrRunNotFound.
func (rs *Runs) Get(ctx context.Context, id string) (*Run, error) {
	var r Run
	err := getDoc(ctx, rs.coll, id, &r)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("run %s: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find run %s: %w", id, err)
	}
	return &r, nil
}

// ListOptions filter List.
type ListOptions struct {
	// Job keeps only this job's runs; empty means every job.
	Job string
	// Limit is the most runs returned; 0 means no limit.
	Limit int
}

// List returns runs newest first. It scans the collection on servers
// without filter pushdown, which is fine for an admin command.
func (rs *Runs) List(ctx context.Context, o ListOptions) ([]*Run, error) {
	filter := bson.D{}
	if o.Job != "" {
		filter = bson.D{{Key: "job", Value: o.Job}}
	}
	fo := store.FindOptions{Sort: bson.D{{Key: "started", Value: -1}, {Key: "_id", Value: -1}}, Limit: int64(o.Limit)}
	var out []*Run
	if err := rs.coll.All(ctx, filter, fo, &out); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// JoinWorker adds (or refreshes) worker w in the run's record.
func (rs *Runs) JoinWorker(ctx context.Context, runID string, w Worker) error {
	now := rs.now().UTC()
	if w.Started.IsZero() {
		w.Started = now
	}
	w.Heartbeat = now
	_, err := rs.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: runID}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "workers." + w.ID, Value: w},
		{Key: "updated", Value: now},
	}}}, false)
	if err != nil {
		return fmt.Errorf("join worker %s to run %s: %w", w.ID, runID, err)
	}
	return nil
}

// Report adds delta to the run's counters and records the worker's own
// totals, its heartbeat and the queue size: one small update by _id.
// Counters are incremented rather than set so that several workers (and
// several resumes) add up. A report that arrives after the run's session
// ended (another worker completed it meanwhile) adds only to the counters
// the end does not count itself (see lateIncrements).
func (rs *Runs) Report(ctx context.Context, runID, workerID string, total, delta Counters, queue int64) error {
	return rs.report(ctx, runID, workerID, total, delta, Breakdown{}, queue)
}

// report is Report that also adds split to the run's Breakdown.
func (rs *Runs) report(ctx context.Context, runID, workerID string, total, delta Counters, split Breakdown, queue int64) error {
	now := rs.now().UTC()
	set := bson.E{Key: "$set", Value: bson.D{
		{Key: "workers." + workerID + ".counters", Value: total},
		{Key: "workers." + workerID + ".heartbeat", Value: now},
		{Key: "queue", Value: queue},
		{Key: "updated", Value: now},
	}}
	update := withInc(set, append(incCounters(delta), split.inc()...))
	byID := bson.D{{Key: "_id", Value: runID}}
	var err error
	if rs.coll.FilterPushdown() {
		// MongoDB: the status check and the update are one atomic step.
		var res store.UpdateResult
		res, err = rs.coll.UpdateOne(ctx, append(byID, bson.E{Key: "status", Value: StatusRunning}), update, false)
		if err == nil && res.Matched == 0 {
			_, err = rs.coll.UpdateOne(ctx, byID, withInc(set, lateIncrements(delta)), false)
		}
	} else {
		// The embedded server reads the whole collection for a filter on
		// status (15 ms instead of 1 ms at 2,000 runs): check first, by
		// _id. A session that ends between the two is the window left.
		if rec, gerr := rs.Get(ctx, runID); gerr == nil && rec.Status != StatusRunning {
			update = withInc(set, lateIncrements(delta))
		}
		_, err = rs.coll.UpdateOne(ctx, byID, update, false)
	}
	if err != nil {
		return fmt.Errorf("report progress of run %s: %w", runID, err)
	}
	return nil
}

// withInc is the update of set and, unless inc is empty, $inc of inc.
func withInc(set bson.E, inc bson.D) bson.D {
	if len(inc) == 0 {
		return bson.D{set}
	}
	return bson.D{set, {Key: "$inc", Value: inc}}
}

// lateIncrements are the $inc fields of delta that a report arriving after
// its run's session ended still adds: the cache's counters, robots and
// retries. The end of a session sets pages, errors and items from the
// frontier and the outputs, and the change and parse counts and the
// breakdown from the change records (Tally); adding a late delta to them
// would count those pages twice.
func lateIncrements(delta Counters) bson.D {
	return incCounters(Counters{
		Hits: delta.Hits, Misses: delta.Misses, Revalidated: delta.Revalidated, Stale: delta.Stale,
		NetworkBytes: delta.NetworkBytes, SavedBytes: delta.SavedBytes, Robots: delta.Robots, Retries: delta.Retries,
	})
}

// Outcome is what running a job produced.
type Outcome struct {
	// Run is the run record as it stood when the run ended.
	Run *Run
	// Session is what this process did in the run; it differs from
	// Run.Counters when the run was resumed or had other workers.
	Session Counters
	// Resumed is true when this was a resume of an earlier run.
	Resumed bool
	// Verdict wraps ErrTooManyErrors when the run completed but fetched no
	// page or failed more URLs than the job's max_error_ratio allows (it is
	// also the error returned with the Outcome); nil otherwise.
	Verdict error
}

// RulesInUse returns the parse rules (Worker.ParseRules) of the workers of
// the runs updated since since, and whether they are known: no run in
// that span, a worker of an earlier release, or a run record that does not
// decode makes them unknown (a sweep then keeps every rules).
func (rs *Runs) RulesInUse(ctx context.Context, since time.Time) (map[string]bool, bool, error) {
	var raws []bson.Raw
	filter := bson.D{{Key: "updated", Value: bson.D{{Key: "$gte", Value: since.UTC()}}}}
	if err := rs.coll.All(ctx, filter, store.FindOptions{}, &raws); err != nil {
		return nil, false, fmt.Errorf("list the runs since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	rules, known := map[string]bool{}, len(raws) > 0
	for _, raw := range raws {
		var r Run
		if bson.Unmarshal(raw, &r) != nil {
			known = false
			continue
		}
		for _, w := range r.Workers {
			if w.ParseRules == "" {
				known = false
			}
			rules[w.ParseRules] = true
		}
	}
	return rules, known, nil
}
