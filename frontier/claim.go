package frontier

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// held is a lease this process won.
type held struct {
	runID  string
	worker string
	until  time.Time
	item   qitem // item.seq is the sequence number of our lease record
}

var (
	errNotHeld = errors.New("lease not held by this process")
	// errNoLease is errNotHeld when this process holds no lease on the
	// entry at all: it finished or released it (or never won it).
	errNoLease = fmt.Errorf("%w: none held", errNotHeld)
	errLost    = errors.New("state changed by another worker")
)

// logDoc is the log record that moves entry id (of run runID) to state st
// as change number seq. Its url is redacted when the run asks for it (see
// RedactLog).
func (f *Frontier) logDoc(runID string, it qitem, seq int64, st State, worker string, until time.Time, errMsg string, now time.Time) bson.D {
	id := entryID(runID, it.h)
	u := f.logURL(runID, it.url)
	d := bson.D{
		{Key: "_id", Value: id + "#" + strconv.FormatInt(seq, 10)},
		{Key: "run_id", Value: runID},
		{Key: "entry", Value: id},
		{Key: "seq", Value: seq},
		{Key: "state", Value: st},
		{Key: "url", Value: u},
		{Key: "attempts", Value: it.attempts},
	}
	if u != it.url {
		d = append(d, bson.E{Key: "url_redacted", Value: true})
	} else if it.depth >= 0 {
		// With its depth, a record that leaves the entry claimable is
		// enough to queue it on resume before the entries are scanned.
		d = append(d, bson.E{Key: "depth", Value: it.depth})
	}
	if st == Leased {
		d = append(d, bson.E{Key: "worker", Value: worker}, bson.E{Key: "lease_until", Value: until})
	}
	if errMsg != "" {
		d = append(d, bson.E{Key: "error", Value: errMsg})
	}
	return append(d, bson.E{Key: "at", Value: now})
}

// Claim leases up to max claimable entries of runID to worker until
// now+Lease and returns them. Claimable are pending entries and leased ones
// whose lease expired (work of a crashed worker). It takes entries from this
// process's queue (one insert each, all in one request), then entries whose
// leases it saw expire, and only then, at a bounded rate, scans the store for
// entries other workers added or abandoned. Entries that another worker
// claimed first are dropped and replaced from the queue, so Claim returns
// none only when this process has nothing (left) to offer; that still does
// not mean the run is finished: see Drained. On an error it returns the
// entries it won before it, if any. No two Frontiers ever hold the same
// entry at once.
func (f *Frontier) Claim(ctx context.Context, runID, worker string, max int) ([]Entry, error) {
	if max <= 0 {
		return nil, nil
	}
	if err := f.register(ctx, runID); err != nil {
		return nil, err
	}
	var out []Entry
	for len(out) < max {
		items := f.popItems(runID, max-len(out))
		if len(items) == 0 {
			if len(out) == 0 {
				f.refreshInBackground(runID)
			}
			return out, nil
		}
		won, lost, err := f.claimItems(ctx, runID, worker, items)
		out = append(out, won...)
		if err != nil || lost == 0 {
			return out, err
		}
		// Some were claimed by another worker first: take the next ones
		// (each round consumes the queue, so this ends).
	}
	return out, nil
}

// claimItems leases items to worker, in one request, and returns the
// entries won and how many another worker had claimed first. On an error
// the items go back to the front of the queue.
func (f *Frontier) claimItems(ctx context.Context, runID, worker string, items []qitem) ([]Entry, int, error) {
	now := f.now().UTC().Truncate(time.Millisecond)
	until := now.Add(f.lease)
	docs := make([]any, len(items))
	for i, it := range items {
		docs[i] = f.logDoc(runID, it, it.seq+1, Leased, worker, until, "", now)
	}
	lost, err := f.log.InsertMany(ctx, docs)
	if err != nil {
		f.mu.Lock()
		f.markUncertainLocked(runID)
		r := f.runLocked(runID)
		for i := len(items) - 1; i >= 0; i-- {
			r.pushFront(items[i])
		}
		f.mu.Unlock()
		return nil, 0, fmt.Errorf("claim %d entries of run %s: %w", len(items), runID, err)
	}
	out := make([]Entry, 0, len(items)-len(lost))
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, it := range items {
		id := entryID(runID, it.h)
		if lost[i] {
			// Another worker changed its state since we learned it; if
			// it becomes claimable again, a scan will find it.
			f.markUncertainLocked(runID)
			f.logger.Debug("frontier claim lost", "id", id, "worker", worker)
			continue
		}
		it.seq++
		f.held[id] = &held{runID: runID, worker: worker, until: until, item: it}
		f.touchLocked(runID, it.h)
		out = append(out, it.entry(runID, Leased, worker, until))
	}
	return out, len(lost), nil
}

// popItems takes up to max items from runID's queue, then from its watched
// entries whose leases have ended.
func (f *Frontier) popItems(runID string, max int) []qitem {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runLocked(runID)
	var items []qitem
	now := f.now()
	for len(items) < max {
		it, ok := r.pop()
		if !ok {
			it, ok = r.popExpired(now)
		}
		if !ok {
			break
		}
		items = append(items, it)
	}
	return items
}

func (it qitem) entry(runID string, st State, worker string, until time.Time) Entry {
	var host string
	if u, err := url.Parse(it.url); err == nil {
		host = u.Host
	}
	return Entry{
		ID: entryID(runID, it.h), RunID: runID, URL: it.url, Host: host, Depth: int(it.depth),
		State: st, Attempts: int(it.attempts), LeaseUntil: until, Worker: worker, Seq: it.seq,
	}
}

// change records the next state of an entry this process holds. It returns
// errNotHeld or errLost (and forgets the lease) when it cannot. A Leased
// state (a renewal) lasts f.lease from the time it is recorded, so a renewal
// that waited for its turn still gets its whole lease.
func (f *Frontier) change(ctx context.Context, id string, st State, worker string, incAttempts bool, errMsg string) (*held, error) {
	mu := f.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	f.mu.Lock()
	h := f.held[id]
	f.mu.Unlock()
	if h == nil {
		return nil, errNoLease
	}
	if worker != "" && h.worker != worker {
		return nil, errNotHeld
	}
	it := h.item
	if incAttempts {
		it.attempts++
	}
	now := f.now().UTC().Truncate(time.Millisecond)
	var until time.Time
	if st == Leased {
		until = now.Add(f.lease)
	}
	err := f.logBatch.insert(ctx, f.logDoc(h.runID, it, it.seq+1, st, h.worker, until, errMsg, now))
	if err != nil {
		f.mu.Lock()
		f.markUncertainLocked(h.runID)
		f.mu.Unlock()
	}
	if isDup(err) {
		f.drop(id)
		return h, errLost
	}
	if err != nil {
		return nil, err
	}
	it.seq++
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touchLocked(h.runID, it.h)
	if st == Leased {
		f.held[id] = &held{runID: h.runID, worker: h.worker, until: until, item: it}
	} else {
		delete(f.held, id)
	}
	return &held{runID: h.runID, worker: h.worker, item: it}, nil
}

func (f *Frontier) drop(id string) {
	f.mu.Lock()
	delete(f.held, id)
	f.mu.Unlock()
}

// Done marks the entry id done: its response is stored and its items are
// written. If this process no longer holds the entry (its lease expired and
// another worker took it), Done still records it done, since the work is
// done. It returns an error wrapping ErrNotFound if there is no such entry.
func (f *Frontier) Done(ctx context.Context, id string) error {
	_, err := f.change(ctx, id, Done, "", false, "")
	if errors.Is(err, errNotHeld) || errors.Is(err, errLost) {
		err = f.finishElsewhere(ctx, id, Done, "")
	}
	if err != nil {
		return fmt.Errorf("mark %s done: %w", id, err)
	}
	return nil
}

// Fail records cause on the entry id and counts a failed attempt. With
// retry the entry goes back to pending (at the end of this process's
// queue), otherwise it is failed for good. The caller decides retry, e.g.
// e.Attempts+1 < max. If another worker has taken the entry over, Fail
// leaves it to that worker. It returns an error wrapping ErrNotFound if there
// is no such entry.
func (f *Frontier) Fail(ctx context.Context, id string, cause error, retry bool) error {
	st := Failed
	if retry {
		st = Pending
	}
	msg := "unknown error"
	if cause != nil {
		msg = cause.Error()
	}
	h, err := f.change(ctx, id, st, "", true, msg)
	switch {
	case err == nil && retry:
		f.requeue(h, false)
	case errors.Is(err, errNotHeld) || errors.Is(err, errLost):
		err = f.finishElsewhere(ctx, id, st, msg)
	}
	if err != nil {
		return fmt.Errorf("mark %s failed: %w", id, err)
	}
	return nil
}

// Release puts the entries ids that this process holds back to pending,
// attempts unchanged, at the front of its queue: for work given up on
// shutdown. Entries it does not hold (any more) are left alone.
func (f *Frontier) Release(ctx context.Context, ids []string) error {
	for _, id := range ids {
		h, err := f.change(ctx, id, Pending, "", false, "")
		switch {
		case err == nil:
			f.requeue(h, true)
		case errors.Is(err, errNotHeld) || errors.Is(err, errLost):
		default:
			return fmt.Errorf("release %s: %w", id, err)
		}
	}
	return nil
}

// Renew extends worker's leases on ids to now+Lease; renew every Lease/3 or
// so while working. A lease that expired is renewed too if no other worker
// took the entry meanwhile. An id this process holds no lease on any more
// (done, failed or released since the caller listed it) is skipped. If
// some leases were lost (taken over by another worker after they expired,
// or held here by another worker name), Renew renews the rest and
// returns an error wrapping ErrLeaseLost that names them: the caller may
// still finish the page (Done records it), but another worker may fetch it
// too.
func (f *Frontier) Renew(ctx context.Context, worker string, ids []string) error {
	var lost []string
	for _, id := range ids {
		_, err := f.change(ctx, id, Leased, worker, false, "")
		switch {
		case errors.Is(err, errNoLease):
			// Finished or released here since the caller listed it (a
			// page done while its renewal waited): nothing was lost.
		case errors.Is(err, errNotHeld) || errors.Is(err, errLost):
			lost = append(lost, id)
		case err != nil:
			return fmt.Errorf("renew lease on %s: %w", id, err)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("renew %d of %d leases: %w: %s", len(lost), len(ids), ErrLeaseLost, strings.Join(lost, ", "))
	}
	return nil
}

// requeue puts an entry this process held back into its run's queue.
func (f *Frontier) requeue(h *held, front bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runLocked(h.runID)
	if front {
		r.pushFront(h.item)
	} else {
		r.push(h.item)
	}
}

// finishElsewhere records st for an entry this process does not hold: it
// reads the entry's latest state (its log records, by _id prefix) and
// appends st unless the entry is already finished, or, for anything but
// Done, is leased to another worker.
func (f *Frontier) finishElsewhere(ctx context.Context, id string, st State, errMsg string) error {
	runID, h, ok := splitID(id)
	if !ok {
		return ErrNotFound
	}
	mu := f.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	f.mu.Lock()
	f.markUncertainLocked(runID)
	f.mu.Unlock()
	for range 5 {
		l, err := f.latestState(ctx, id)
		if err != nil {
			return err
		}
		now := f.now().UTC().Truncate(time.Millisecond)
		if l.State == Done || l.State == Failed {
			return nil
		}
		if st != Done && l.State == Leased && l.LeaseUntil.After(now) {
			return nil
		}
		it := qitem{h: h, url: l.URL, attempts: l.Attempts, depth: -1} // depth unknown here
		if st != Done {
			it.attempts++
		}
		err = f.log.Insert(ctx, f.logDoc(runID, it, l.Seq+1, st, "", time.Time{}, errMsg, now))
		if err == nil {
			f.mu.Lock()
			f.touchLocked(runID, h)
			f.mu.Unlock()
			return nil
		}
		if !isDup(err) {
			return err
		}
	}
	return fmt.Errorf("record %s: %w", st, errLost)
}

// latestState returns the latest log record of entry id (its records'
// _ids are the entry's, "#" and the change number), or a pending record
// with the entry's URL when it has none; ErrNotFound when there is no such
// entry.
func (f *Frontier) latestState(ctx context.Context, id string) (logRec, error) {
	var l logRec
	found := false
	err := f.log.ScanIDPrefix(ctx, id+"#", func(doc bson.Raw) error {
		var r logRec
		if err := bson.Unmarshal(doc, &r); err != nil {
			return fmt.Errorf("decode %s: %w", doc, err)
		}
		if r.Entry == id && (!found || r.Seq > l.Seq) {
			l, found = r, true
		}
		return nil
	})
	if err != nil || found {
		return l, err
	}
	raw, err := f.entries.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return l, ErrNotFound
	}
	if err != nil {
		return l, err
	}
	var e entryDoc
	if err := bson.Unmarshal(raw, &e); err != nil {
		return l, fmt.Errorf("decode entry %s: %w", id, err)
	}
	return logRec{Entry: id, State: Pending, URL: e.URL}, nil
}
