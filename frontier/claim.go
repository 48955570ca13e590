package frontier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Claim leases up to max claimable entries of runID to worker until
// now+Lease and returns them. Claimable are pending entries and leased ones
// whose lease expired (work of a crashed worker). It takes entries from this
// process's local queue first (one _id write each), then watched entries
// whose leases have expired, and only then, at a bounded rate, scans the
// store for entries other workers added or abandoned. Fewer than max (even
// none) does not mean the run is finished: see Drained. No two Frontiers
// ever hold the same entry at once.
func (f *Frontier) Claim(ctx context.Context, runID, worker string, max int) ([]Entry, error) {
	var out []Entry
	scanned := false
	for len(out) < max {
		f.mu.Lock()
		r := f.runLocked(runID)
		it, ok := r.pop()
		if !ok {
			it, ok = r.popExpired(f.now())
		}
		f.mu.Unlock()
		if !ok {
			if scanned {
				break
			}
			scanned = true
			more, err := f.scan(ctx, r)
			if err != nil {
				return out, err
			}
			if !more {
				break
			}
			continue
		}
		e, ok, err := f.claimOne(ctx, r, it, worker)
		if err != nil {
			f.mu.Lock()
			r.pushFront(it)
			f.mu.Unlock()
			return out, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// claimable reports whether e may be claimed now by a worker of r.
func (f *Frontier) claimable(r *run, e *Entry, now time.Time) bool {
	switch e.State {
	case Pending:
		return true
	case Leased:
		f.mu.Lock()
		rec := r.reclaim[e.Worker]
		f.mu.Unlock()
		return rec || !e.LeaseUntil.After(now)
	}
	return false
}

// claimOne tries to lease the entry it to worker. It returns false, with no
// error, when another worker holds or finished it; entries held by others go
// to the watch list.
func (f *Frontier) claimOne(ctx context.Context, r *run, it qitem, worker string) (Entry, bool, error) {
	id := entryID(r.id, it.h)
	mu := f.stripe(id)
	mu.Lock()
	defer mu.Unlock()

	gen, ok, retryAt, err := f.winToken(ctx, "e:"+id, r.id, worker, it.gen, func(ctx context.Context) (tokenState, error) {
		var e Entry
		err := f.entries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return tokenState{}, nil
		}
		if err != nil {
			return tokenState{}, err
		}
		st := tokenState{exists: true, gen: e.LeaseGen, claimable: f.claimable(r, &e, f.now())}
		if e.State == Leased {
			st.retryAt = e.LeaseUntil
		}
		return st, nil
	})
	if err != nil {
		return Entry{}, false, fmt.Errorf("claim %s: %w", id, err)
	}
	if !ok {
		if !retryAt.IsZero() {
			f.mu.Lock()
			r.watch = append(r.watch, watchItem{qitem{it.h, gen}, retryAt})
			f.mu.Unlock()
		}
		f.log.Debug("frontier claim lost", "id", id, "worker", worker)
		return Entry{}, false, nil
	}

	until := f.now().Add(f.lease).UTC()
	var before Entry
	err = f.entries.FindOneAndUpdate(ctx, f.idFilter(id),
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "state", Value: Leased}, {Key: "worker", Value: worker},
			{Key: "lease_until", Value: until}, {Key: "lease_gen", Value: gen},
		}}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("claim %s: %w", id, err)
	}
	if before.State == Done || before.State == Failed {
		// Finished by a worker whose lease had expired, between our read
		// and our token: put the final state back.
		f.log.Warn("frontier entry finished during claim; restoring", "id", id, "state", before.State)
		_, err := f.entries.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
			{Key: "$set", Value: bson.D{{Key: "state", Value: before.State}}},
			{Key: "$unset", Value: bson.D{{Key: "worker", Value: ""}, {Key: "lease_until", Value: ""}}},
		})
		if err != nil {
			return Entry{}, false, fmt.Errorf("restore %s after claim: %w", id, err)
		}
		return Entry{}, false, nil
	}
	e := before
	e.State, e.Worker, e.LeaseUntil, e.LeaseGen = Leased, worker, until, gen
	f.mu.Lock()
	f.held[id] = heldLease{runID: r.id, worker: worker, gen: gen, until: until}
	f.mu.Unlock()
	return e, true, nil
}

// tokenState is what winToken needs to know about the leased document.
type tokenState struct {
	exists    bool
	gen       int64     // current lease generation
	claimable bool      // free to take now
	retryAt   time.Time // when it may become claimable (zero: never)
}

// token is a claim token: whoever inserts {_id: key#gen} first owns
// generation gen of the lease named key.
type token struct {
	ID     string    `bson:"_id"`
	RunID  string    `bson:"run_id,omitempty"`
	Worker string    `bson:"worker"`
	At     time.Time `bson:"at"`
}

// winToken tries to win the next generation of the lease named key, from
// generation gen that the caller saw claimable. It returns the generation
// won, or false and when to look again (zero: drop it). read loads the
// current state of the leased document after a lost insert.
//
// A token whose winner never updated the document (it crashed in between)
// would block the generation forever; once it is older than the lease it is
// skipped.
func (f *Frontier) winToken(ctx context.Context, key, runID, worker string, gen int64, read func(context.Context) (tokenState, error)) (int64, bool, time.Time, error) {
	for range 4 {
		k := gen + 1
		now := f.now().UTC()
		tokID := key + "#" + strconv.FormatInt(k, 10)
		_, err := f.tokens.InsertOne(ctx, token{ID: tokID, RunID: runID, Worker: worker, At: now})
		if err == nil {
			return k, true, time.Time{}, nil
		}
		if !isDup(err) {
			return 0, false, time.Time{}, fmt.Errorf("insert claim token %s: %w", tokID, err)
		}
		st, err := read(ctx)
		if err != nil {
			return 0, false, time.Time{}, err
		}
		if !st.exists {
			return 0, false, time.Time{}, nil
		}
		if !st.claimable {
			return st.gen, false, st.retryAt, nil
		}
		if st.gen >= k {
			gen = st.gen // someone claimed and released it since we looked
			continue
		}
		// The document is still at generation k-1 but token k exists: its
		// winner is writing the document now, or crashed before it did.
		var t token
		if err := f.tokens.FindOne(ctx, bson.D{{Key: "_id", Value: tokID}}).Decode(&t); err != nil {
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue // deleted meanwhile: try again
			}
			return 0, false, time.Time{}, fmt.Errorf("read claim token %s: %w", tokID, err)
		}
		if stale := t.At.Add(f.lease); stale.After(now) {
			return st.gen, false, stale, nil
		}
		f.log.Warn("skipping orphaned claim token", "token", tokID, "worker", t.Worker, "at", t.At)
		gen = k
	}
	return gen, false, f.now().Add(f.lease), nil
}

// Done marks the entry id done: its response is stored and its items are
// written. It returns an error wrapping ErrNotFound if there is no such entry.
func (f *Frontier) Done(ctx context.Context, id string) error {
	now := f.now().UTC()
	_, err := f.finish(ctx, id, bson.D{
		{Key: "$set", Value: bson.D{{Key: "state", Value: Done}, {Key: "done_at", Value: now}}},
		{Key: "$unset", Value: bson.D{{Key: "worker", Value: ""}, {Key: "lease_until", Value: ""}}},
	})
	if err != nil {
		return fmt.Errorf("mark %s done: %w", id, err)
	}
	return nil
}

// Fail records cause on the entry id. With retry the entry goes back to
// pending (and to the end of this process's queue) with attempts+1;
// otherwise it is failed for good, also with attempts+1. The caller decides
// retry, e.g. e.Attempts+1 < max. It returns an error wrapping ErrNotFound
// if there is no such entry.
func (f *Frontier) Fail(ctx context.Context, id string, cause error, retry bool) error {
	state := Failed
	if retry {
		state = Pending
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	set := bson.D{{Key: "state", Value: state}, {Key: "error", Value: msg}}
	if !retry {
		set = append(set, bson.E{Key: "done_at", Value: f.now().UTC()})
	}
	e, err := f.finish(ctx, id, bson.D{
		{Key: "$set", Value: set},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		{Key: "$unset", Value: bson.D{{Key: "worker", Value: ""}, {Key: "lease_until", Value: ""}}},
	})
	if err != nil {
		return fmt.Errorf("mark %s failed: %w", id, err)
	}
	if retry {
		f.requeue(e, false)
	}
	return nil
}

// Release puts the entries ids back to pending with attempts unchanged, at
// the front of this process's queue: for work given up on shutdown. It stops
// at the first error; an id with no entry wraps ErrNotFound.
func (f *Frontier) Release(ctx context.Context, ids []string) error {
	for _, id := range ids {
		e, err := f.finish(ctx, id, bson.D{
			{Key: "$set", Value: bson.D{{Key: "state", Value: Pending}}},
			{Key: "$unset", Value: bson.D{{Key: "worker", Value: ""}, {Key: "lease_until", Value: ""}}},
		})
		if err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
		f.requeue(e, true)
	}
	return nil
}

// finish applies update to the entry id by _id alone, forgets this process's
// lease on it, and returns the entry as updated.
func (f *Frontier) finish(ctx context.Context, id string, update bson.D) (Entry, error) {
	mu := f.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	var e Entry
	err := f.entries.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, update,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, err
	}
	f.mu.Lock()
	delete(f.held, id)
	f.mu.Unlock()
	return e, nil
}

// requeue puts a pending entry back into this process's queue of its run.
func (f *Frontier) requeue(e Entry, front bool) {
	h, ok := splitID(e.RunID, e.ID)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runLocked(e.RunID)
	it := qitem{h: h, gen: e.LeaseGen}
	if front {
		r.pushFront(it)
	} else {
		r.push(it)
	}
}

// Renew extends worker's leases on ids to now+Lease. Renew every Lease/3 or
// so while working. A lease that this process let expire is re-won if nobody
// took it meanwhile. If some leases were lost (another worker claimed the
// entry after the lease expired, or it was finished), Renew renews the rest
// and returns an error wrapping ErrLeaseLost that names them; the caller may
// finish the page anyway (the response is cached), but should not count on
// exclusivity.
func (f *Frontier) Renew(ctx context.Context, worker string, ids []string) error {
	var lost []string
	for _, id := range ids {
		ok, err := f.renewOne(ctx, worker, id)
		if err != nil {
			return fmt.Errorf("renew lease on %s: %w", id, err)
		}
		if !ok {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("renew %d of %d leases: %w: %s", len(lost), len(ids), ErrLeaseLost, strings.Join(lost, ", "))
	}
	return nil
}

// margin is how long before its end a lease is no longer extended blindly:
// past it, another worker may be taking it over.
func (f *Frontier) margin() time.Duration { return f.lease / 10 }

func (f *Frontier) renewOne(ctx context.Context, worker, id string) (bool, error) {
	mu := f.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	now := f.now()
	f.mu.Lock()
	h, held := f.held[id]
	f.mu.Unlock()
	until := now.Add(f.lease).UTC()

	if held && h.worker == worker && h.until.Sub(now) > f.margin() {
		// Nobody else may claim it before h.until: extend it by _id alone.
		var before Entry
		err := f.entries.FindOneAndUpdate(ctx,
			f.idFilter(id, bson.E{Key: "lease_gen", Value: h.gen}),
			bson.D{{Key: "$set", Value: bson.D{{Key: "lease_until", Value: until}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
		if errors.Is(err, mongo.ErrNoDocuments) {
			f.drop(id)
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if before.State != Leased || before.Worker != worker || before.LeaseGen != h.gen {
			f.drop(id)
			return false, nil
		}
		h.until = until
		f.mu.Lock()
		f.held[id] = h
		f.mu.Unlock()
		return true, nil
	}

	// The lease is near its end or past it: re-win it with a token, unless
	// another worker has claimed it.
	var e Entry
	err := f.entries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		f.drop(id)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if e.State != Leased || e.Worker != worker {
		f.drop(id)
		return false, nil
	}
	gen, ok, _, err := f.winToken(ctx, "e:"+id, e.RunID, worker, e.LeaseGen, func(ctx context.Context) (tokenState, error) {
		return tokenState{exists: true, gen: e.LeaseGen}, nil // lost: someone else is taking it
	})
	if err != nil {
		return false, err
	}
	if !ok {
		f.drop(id)
		return false, nil
	}
	_, err = f.entries.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "state", Value: Leased}, {Key: "worker", Value: worker},
		{Key: "lease_until", Value: until}, {Key: "lease_gen", Value: gen},
	}}})
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	f.held[id] = heldLease{runID: e.RunID, worker: worker, gen: gen, until: until}
	f.mu.Unlock()
	return true, nil
}

func (f *Frontier) drop(id string) {
	f.mu.Lock()
	delete(f.held, id)
	f.mu.Unlock()
}
