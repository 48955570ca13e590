package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// The decisions in a run's life that several processes may race to make
// (ending a session of the run, beginning the commit of its outputs,
// reopening it for a resume) are claims: a document inserted by _id in the
// locks collection, "run:<run id>#end#<session>", "#reopen#<session>" or
// "#commit", whose unique _id lets exactly one process make each decision,
// on any server. A session is the record's resumes count when it is made,
// so each resume has its own end and reopen claims. The winner then writes
// the record with an update by _id alone.
//
// Nothing here filters the run records on anything but _id: the embedded
// server reads and decodes every document of the collection for any other
// filter (every run of every job), and its conditional updates are not
// atomic (it reads, then writes), so a compound filter such as
// {_id, status: running} could not make the decision exclusive anyway.
//
// A claim holds what its winner writes. A process killed between the claim
// and the write leaves a record that does not show it yet: the next process
// that reopens the run (or starts the job) applies the claim first; writes
// are by value, never increments, so writing a claim twice changes
// nothing. Records written by earlier releases have no claims and need
// none: the first decision about them claims their current session.

// runClaimID names a claim about run runID in the locks collection.
func runClaimID(runID, what string, session int) string {
	if session < 0 {
		return fmt.Sprintf("run:%s#%s", runID, what)
	}
	return fmt.Sprintf("run:%s#%s#%d", runID, what, session)
}

// endClaim is the claim of the end of one session of a run.
type endClaim struct {
	ID       string    `bson:"_id"`
	Run      string    `bson:"run_id"`
	Session  int       `bson:"session"`
	Status   Status    `bson:"status"`
	Finished time.Time `bson:"finished"`
	Error    string    `bson:"error,omitempty"`
	Tally    Tally     `bson:"tally"`
	Host     string    `bson:"host"`
	PID      int       `bson:"pid"`
}

func (c *endClaim) update() bson.D {
	set := bson.D{
		{Key: "status", Value: c.Status},
		{Key: "finished", Value: c.Finished},
		{Key: "updated", Value: c.Finished},
	}
	if c.Error != "" {
		set = append(set, bson.E{Key: "error", Value: c.Error})
	}
	return bson.D{{Key: "$set", Value: append(set, c.Tally.set()...)}}
}

// reopenClaim is the claim of the resume that ends session Session and
// begins the next.
type reopenClaim struct {
	ID      string    `bson:"_id"`
	Run     string    `bson:"run_id"`
	Session int       `bson:"session"`
	At      time.Time `bson:"at"`
	// IdleSeconds is the record's idle time once reopened (see
	// Run.IdleSeconds).
	IdleSeconds float64 `bson:"idle_seconds"`
	Host        string  `bson:"host"`
	PID         int     `bson:"pid"`
}

func (c *reopenClaim) update() bson.D {
	return bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status", Value: StatusRunning}, {Key: "updated", Value: c.At},
			{Key: "resumes", Value: c.Session + 1}, {Key: "idle_seconds", Value: c.IdleSeconds},
		}},
		{Key: "$unset", Value: bson.D{{Key: "finished", Value: ""}, {Key: "error", Value: ""}}},
	}
}

// commitClaim is the claim of the beginning of the commit of a run's
// outputs (once per run: a run whose commit began never crawls again).
type commitClaim struct {
	ID      string    `bson:"_id"`
	Run     string    `bson:"run_id"`
	Started time.Time `bson:"started"`
}

// claim inserts doc in the claims collection and reports whether this call
// won it (false: a document with its _id was there).
func (rs *Runs) claim(ctx context.Context, doc any) (bool, error) {
	err := rs.claims.Insert(ctx, doc)
	if errors.Is(err, store.ErrDuplicateID) {
		return false, nil
	}
	return err == nil, err
}

// apply writes update to run runID's record by _id, and writes it again
// (twice at most) while the record read back does not show it (done
// false): a FerretDB server that crawlcache does not run applies an
// update by reading the document and writing it back whole, so a
// concurrent update of the record by another process (another worker's
// progress report) can undo it. (crawlcache's embedded server serializes
// the updates of its clients: store/updatelock.go.)
func (rs *Runs) apply(ctx context.Context, runID string, update bson.D, done func(*Run) bool) error {
	for i := 0; ; i++ {
		if _, err := rs.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: runID}}, update, false); err != nil {
			return err
		}
		rec, err := rs.Get(ctx, runID)
		if err != nil || done(rec) || i == 2 {
			return err
		}
	}
}

// Finish sets the run's final status and error message, only while the run
// is running, so a run is completed once even when several workers see its
// frontier drained. It reports whether this call changed the status.
func (rs *Runs) Finish(ctx context.Context, runID string, status Status, msg string) (bool, error) {
	return rs.FinishTally(ctx, runID, status, msg, Tally{})
}

// FinishTally is Finish that also sets the run's counters that t knows, in
// the same update. Of several processes finishing the same session of a
// run at once, exactly one wins (true); the others change nothing.
func (rs *Runs) FinishTally(ctx context.Context, runID string, status Status, msg string, t Tally) (bool, error) {
	rec, err := rs.Get(ctx, runID)
	if err != nil && !errors.Is(err, ErrRunNotFound) {
		return false, fmt.Errorf("finish run %s as %s: %w", runID, status, err)
	}
	if rec == nil || rec.Status != StatusRunning {
		return false, nil
	}
	c := endClaim{
		ID: runClaimID(runID, "end", rec.Resumes), Run: runID, Session: rec.Resumes,
		Status: status, Finished: rs.now().UTC(), Error: msg, Tally: t, Host: hostname(), PID: os.Getpid(),
	}
	won, err := rs.claim(ctx, c)
	switch {
	case err == nil && won:
		err = rs.applyEnd(ctx, &c)
	case err == nil:
		// Another process ended the session. Its write may have been
		// undone by a concurrent update of the record (this process's
		// last progress report, read before it and written after):
		// writing its end again heals that.
		_, err = rs.settled(ctx, runID)
	}
	if err != nil {
		return false, fmt.Errorf("finish run %s as %s: %w", runID, status, err)
	}
	return won, nil
}

// applyEnd writes the end claim c to its run's record.
func (rs *Runs) applyEnd(ctx context.Context, c *endClaim) error {
	return rs.apply(ctx, c.Run, c.update(), func(r *Run) bool {
		return r.Status == c.Status || r.Resumes != c.Session
	})
}

// settled returns run runID's record, with the end of its current session
// applied when the process that claimed it was killed before it wrote the
// record (which then still says running). An error wraps ErrRunNotFound
// when there is no such run.
func (rs *Runs) settled(ctx context.Context, runID string) (*Run, error) {
	rec, err := rs.Get(ctx, runID)
	if err != nil || rec.Status != StatusRunning {
		return rec, err
	}
	var c endClaim
	err = getDoc(ctx, rs.claims, runClaimID(runID, "end", rec.Resumes), &c)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, nil
	case err != nil:
		return nil, fmt.Errorf("read the end of run %s: %w", runID, err)
	}
	if err := rs.applyEnd(ctx, &c); err != nil {
		return nil, fmt.Errorf("record the end of run %s: %w", runID, err)
	}
	return rs.Get(ctx, runID)
}

// BeginCommit records that run runID completed its crawl and begins to
// commit its outputs. It keeps an earlier start (a resume finishing the
// commit).
func (rs *Runs) BeginCommit(ctx context.Context, runID string) error {
	_, err := rs.beginCommit(ctx, runID)
	return err
}

// beginCommit is BeginCommit; it reports whether this call began the
// commit (exactly one does).
func (rs *Runs) beginCommit(ctx context.Context, runID string) (bool, error) {
	now := rs.now().UTC()
	c := commitClaim{ID: runClaimID(runID, "commit", -1), Run: runID, Started: now}
	won, err := rs.claim(ctx, c)
	if err == nil && !won {
		err = getDoc(ctx, rs.claims, c.ID, &c) // the start that counts
	}
	if err == nil {
		// commit.started alone: the outputs already recorded stay.
		set := bson.D{{Key: "$set", Value: bson.D{{Key: "commit.started", Value: c.Started}, {Key: "updated", Value: now}}}}
		err = rs.apply(ctx, runID, set, func(r *Run) bool { return r.Commit != nil })
	}
	if err != nil {
		return false, fmt.Errorf("record the start of the commit of run %s: %w", runID, err)
	}
	return won, nil
}

// OutputCommitted records that the output with key (OutputKey) of run
// runID is committed: no resume writes it again.
func (rs *Runs) OutputCommitted(ctx context.Context, runID, key string) error {
	now := rs.now().UTC()
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "commit.outputs." + key, Value: now}, {Key: "updated", Value: now}}}}
	err := rs.apply(ctx, runID, set, func(r *Run) bool { return r.Commit.Committed(key) })
	if err != nil {
		return fmt.Errorf("record the commit of output %s of run %s: %w", key, runID, err)
	}
	return nil
}

// Reopen marks an interrupted or failed run as running again for a resume,
// counting the resume and clearing its end time and error. run is the
// record as the caller read it: Reopen reopens that session of the run
// (run.Resumes) only, and updates run's Status and Resumes. It returns an
// error wrapping ErrNotResumable when the run completed, does not exist,
// or another process reopened it since (of several processes reopening
// the same session, exactly one succeeds).
func (rs *Runs) Reopen(ctx context.Context, run *Run) error {
	runID, session := run.ID, run.Resumes
	for range 3 {
		rec, err := rs.settled(ctx, runID)
		switch {
		case errors.Is(err, ErrRunNotFound):
			return fmt.Errorf("reopen run %s: %w (missing)", runID, ErrNotResumable)
		case err != nil:
			return fmt.Errorf("reopen run %s: %w", runID, err)
		case rec.Status == StatusCompleted:
			return fmt.Errorf("reopen run %s: %w (completed)", runID, ErrNotResumable)
		case rec.Resumes != session:
			return fmt.Errorf("reopen run %s: %w (another process resumed it)", runID, ErrNotResumable)
		}
		now := rs.now().UTC()
		// The time since the last session stopped is not the run's: its
		// rate is measured without it (Run.Active).
		idle := max(now.Sub(rec.lastActive()), 0).Seconds()
		c := reopenClaim{
			ID: runClaimID(runID, "reopen", session), Run: runID, Session: session, At: now,
			IdleSeconds: rec.IdleSeconds + idle, Host: hostname(), PID: os.Getpid(),
		}
		won, err := rs.claim(ctx, c)
		if err == nil && won {
			err = rs.applyReopen(ctx, &c)
		}
		if err != nil {
			return fmt.Errorf("reopen run %s: %w", runID, err)
		}
		if won {
			run.Status, run.Resumes = StatusRunning, session+1
			return nil
		}
		if err := rs.recoverReopen(ctx, c.ID, session); err != nil {
			return fmt.Errorf("reopen run %s: %w", runID, err)
		}
		// The session the lost claim began was abandoned before it
		// started: reopen the run after it.
		session++
	}
	return fmt.Errorf("reopen run %s: %w (other processes reopened it meanwhile)", runID, ErrNotResumable)
}

func (rs *Runs) applyReopen(ctx context.Context, c *reopenClaim) error {
	return rs.apply(ctx, c.Run, c.update(), func(r *Run) bool { return r.Resumes > c.Session })
}

// recoverReopen deals with the claim id of the resume of session, which
// another process won. While that process may be writing the record (it
// is alive, or claimed only moments ago) or already did, the run is its:
// an error wrapping ErrNotResumable. When it was killed before writing the
// record, its claim is applied, so that the caller reopens the session
// after it.
func (rs *Runs) recoverReopen(ctx context.Context, id string, session int) error {
	var c reopenClaim
	if err := getDoc(ctx, rs.claims, id, &c); err != nil {
		return err
	}
	rec, err := rs.Get(ctx, c.Run)
	if err != nil {
		return err
	}
	killed := holderDead(Lock{Host: c.Host, PID: c.PID}) || rs.now().Sub(c.At) > DefaultLockTTL
	if rec.Resumes > session || !killed {
		return fmt.Errorf("%w (another process resumed it)", ErrNotResumable)
	}
	return rs.applyReopen(ctx, &c)
}
