package changes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/sync/errgroup"

	"crawlcache/store"
)

// Finish closes a completed run: every page the previous completed run of
// the job reached (new, changed or unchanged there) and this run did not
// is recorded gone; the run becomes the job's latest completed run, and
// the records of runs older than the last KeepRuns are deleted. It returns
// the run's pages by kind, counted from its records (so a run resumed or
// shared by several workers counts each page once). Calling it again for
// the same run finds the same pages and changes nothing more. With a
// Retention, it also sweeps the job's page states when due (sweepStates);
// if only that fails, the error is a *SweepError and the counts stand.
func (t *Tracker) Finish(ctx context.Context) (Counts, error) {
	counts, _, err := t.FinishSummary(ctx)
	return counts, err
}

// FinishSummary is Finish that also returns the run's Summary, counted
// from the same records (those of the pages it reached).
//
// It reads this run's records and the previous completed run's at the
// same time (one scan of an _id prefix each, on two connections), keeping
// of each record only its URL's hash: a page of the previous run is gone
// when no record of this run has that hash. Only the records of gone
// pages are read again, whole.
func (t *Tracker) FinishSummary(ctx context.Context) (Counts, Summary, error) {
	counts, sum := Counts{}, Summary{Complete: true}
	runs, err := t.jobRuns(ctx)
	if err != nil {
		return counts, sum, err
	}
	prev := ""
	for _, r := range slices.Backward(runs.Runs) {
		if r != t.opts.Run {
			prev = r
			break
		}
	}
	var reached []string  // the _id suffixes (URL hashes) of this run's records
	var before []prevPage // the previous run's pages that were not gone or failed
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		prefix := t.opts.Run + "/"
		return List(gctx, t.opts.Records, t.opts.Run, "", func(r Record) error {
			reached = append(reached, strings.Clone(strings.TrimPrefix(r.ID, prefix)))
			counts.add(r.Kind)
			sum.add(r)
			return nil
		})
	})
	if prev != "" {
		g.Go(func() error {
			return List(gctx, t.opts.Records, prev, "", func(r Record) error {
				if r.Kind != KindGone && r.Kind != KindError {
					p := prevPage{hash: urlHash(r.URL)}
					if r.ID != prev+"/"+p.hash {
						p.id = r.ID
					}
					before = append(before, p)
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return counts, sum, err
	}
	if !slices.IsSorted(reached) { // _id order makes it sorted; a store that does not is still right
		slices.Sort(reached)
	}
	for _, p := range before {
		if _, ok := slices.BinarySearch(reached, p.hash); ok {
			continue
		}
		id := p.id
		if id == "" {
			id = prev + "/" + p.hash
		}
		recorded, err := t.unreachedID(ctx, id)
		if err != nil {
			return counts, sum, err
		}
		if recorded {
			counts.Gone++
		}
	}
	// A failed sweep of the states leaves the run closed: the counts stand
	// (SweepError).
	return counts, sum, t.closeRun(ctx, runs)
}

// prevPage is a page the previous run reached: its URL's hash, and its
// record's _id when that is not the run's prefix and the hash.
type prevPage struct{ hash, id string }

// unreachedID records gone the page of the previous run's record id (read
// again whole): this run no longer reached it. It reports whether it did:
// a record deleted meanwhile, or that no longer decodes, is skipped.
func (t *Tracker) unreachedID(ctx context.Context, id string) (bool, error) {
	raw, err := t.opts.Records.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read change record %s: %w", id, err)
	}
	var r Record
	if bson.Unmarshal(raw, &r) != nil {
		return false, nil
	}
	return true, t.unreached(ctx, r)
}

// unreached records the page of the previous run's record r as gone: this
// run no longer reached it.
func (t *Tracker) unreached(ctx context.Context, r Record) error {
	now := t.opts.Now().UTC()
	page, err := t.page(ctx, r.URL, nil)
	if err != nil {
		return err
	}
	rec := Record{ID: RecordID(t.opts.Run, r.URL), Run: t.opts.Run, Job: t.opts.Job, URL: r.URL, Kind: KindGone,
		Status: r.Status, BodyHash: r.BodyHash, At: now, Error: "no longer reached from the seeds"}
	base := page.baseline(t.opts.Run)
	cur := State{Status: r.Status, Gone: true}
	if base != nil {
		cur.BodyHash, cur.CompareHash = base.BodyHash, base.CompareHash
	}
	if err := t.savePage(ctx, page, base, cur, rec); err != nil {
		return err
	}
	if err := t.opts.Records.Upsert(ctx, rec.ID, rec); err != nil {
		return fmt.Errorf("record change of %s: %w", rec.URL, err)
	}
	return nil
}

// jobRuns reads the job's list of completed runs.
func (t *Tracker) jobRuns(ctx context.Context) (*jobRuns, error) {
	jr := &jobRuns{ID: runsID(t.opts.Job)}
	raw, err := t.opts.Pages.Get(ctx, jr.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return jr, nil
	case err != nil:
		return nil, fmt.Errorf("read the runs of job %s: %w", t.opts.Job, err)
	}
	if err := bson.Unmarshal(raw, jr); err != nil {
		return &jobRuns{ID: runsID(t.opts.Job)}, nil
	}
	return jr, nil
}

// closeRun appends the run to the job's completed runs and deletes the
// records of the runs beyond KeepRuns.
func (t *Tracker) closeRun(ctx context.Context, jr *jobRuns) error {
	if !slices.Contains(jr.Runs, t.opts.Run) {
		jr.Runs = append(jr.Runs, t.opts.Run)
	}
	var drop []string
	if len(jr.Runs) > KeepRuns {
		drop = slices.Clone(jr.Runs[:len(jr.Runs)-KeepRuns])
		jr.Runs = jr.Runs[len(jr.Runs)-KeepRuns:]
	}
	if err := t.opts.Pages.Upsert(ctx, jr.ID, jr); err != nil {
		return fmt.Errorf("record run %s of job %s: %w", t.opts.Run, t.opts.Job, err)
	}
	for _, run := range drop {
		var ids []string
		err := t.opts.Records.ScanIDPrefix(ctx, run+"/", func(raw bson.Raw) error {
			if id, ok := raw.Lookup("_id").StringValueOK(); ok {
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list the change records of run %s: %w", run, err)
		}
		for _, id := range ids {
			if err := t.opts.Records.Delete(ctx, id); err != nil {
				return fmt.Errorf("delete the change records of run %s: %w", run, err)
			}
		}
	}
	now := t.opts.Now().UTC()
	if t.opts.Retention <= 0 || now.Sub(jr.StatesSweptAt) < t.opts.Retention/sweepsPerRetention {
		return nil
	}
	if err := t.sweepStates(ctx, now); err != nil {
		return &SweepError{Job: t.opts.Job, Err: err}
	}
	jr.StatesSweptAt = now
	if err := t.opts.Pages.Upsert(ctx, jr.ID, jr); err != nil {
		return &SweepError{Job: t.opts.Job, Err: fmt.Errorf("record its time: %w", err)}
	}
	return nil
}

// SweepError is Finish's error when the run was closed and counted but the
// sweep of its job's page states failed: the counts it returns with it
// stand, and the next completing run sweeps again.
type SweepError struct {
	Job string
	Err error
}

func (e *SweepError) Error() string {
	return fmt.Sprintf("sweep the page states of job %s: %v", e.Job, e.Err)
}

func (e *SweepError) Unwrap() error { return e.Err }

// sweepsPerRetention is how often, per retention period, a completing run
// sweeps its job's page states (sweepStates): a state is swept at most a
// tenth of the retention after it is due.
const sweepsPerRetention = 10

// sweepStates bounds the job's page states by the retention: the state of
// a page gone (404/410, or no longer reached) for longer than the
// retention is deleted (should the page come back, it is new), and
// versions older than it are dropped from the others (a page that changed
// long ago and not since is otherwise never rewritten). It reads only the
// job's own states (one _id prefix).
func (t *Tracker) sweepStates(ctx context.Context, now time.Time) error {
	cutoff := now.Add(-t.opts.Retention)
	var drop []string
	var trim []*Page
	err := t.opts.Pages.ScanIDPrefix(ctx, t.opts.Job+"/", func(raw bson.Raw) error {
		var p Page
		if bson.Unmarshal(raw, &p) != nil || p.Job != t.opts.Job || p.URL == "" {
			return nil // the job's list of runs, or a state that does not decode (rewritten when the page is seen)
		}
		switch {
		case p.Gone && p.LastChanged.Before(cutoff):
			drop = append(drop, p.ID)
		case len(p.Versions) > 0 && p.Versions[0].At.Before(cutoff):
			if p.Versions = t.trim(p.Versions, now); p.Versions == nil {
				p.Versions = []Version{}
			}
			trim = append(trim, &p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range drop {
		if err := t.opts.Pages.Delete(ctx, id); err != nil {
			return err
		}
	}
	for _, p := range trim {
		if err := t.opts.Pages.Upsert(ctx, p.ID, p); err != nil {
			return err
		}
	}
	return nil
}

// List calls fn with the records of run runID (of kind, or all when kind
// is empty), in _id order on the embedded store; it stops at fn's first
// error, which it returns. It reads only that run's records.
func List(ctx context.Context, records Collection, runID, kind string, fn func(Record) error) error {
	err := records.ScanIDPrefix(ctx, runID+"/", func(raw bson.Raw) error {
		var r Record
		if err := bson.Unmarshal(raw, &r); err != nil {
			return nil // not a record this release wrote: skipped
		}
		if kind != "" && r.Kind != kind {
			return nil
		}
		return fn(r)
	})
	if err != nil {
		return fmt.Errorf("list the changes of run %s: %w", runID, err)
	}
	return nil
}

// Summary is what a run's change records say of its pages beyond their
// kinds, as the crawler counts them: HTML pages parsed and reused,
// responses by HTTP status (failed URLs' included) and failed URLs by kind.
// A page counts once however many times the run fetched it (a resume after
// a crash fetches again what was not acknowledged), and a URL reached
// through redirects counts as the page it ended at. Complete is false when
// a record of the run lacks them (written by an earlier release): the
// summary then misses its pages.
type Summary struct {
	Parsed, Reused       int64
	Statuses, ErrorKinds map[string]int64
	Complete             bool
}

// add counts record r.
func (s *Summary) add(r Record) {
	if !r.Counted {
		if r.Kind != KindGone { // gone records of pages no longer reached count nothing
			s.Complete = false
		}
		return
	}
	if s.Statuses == nil {
		s.Statuses, s.ErrorKinds = map[string]int64{}, map[string]int64{}
	}
	if r.Status > 0 {
		s.Statuses[strconv.Itoa(r.Status)]++
	}
	if r.Kind == KindError && r.ErrorKind != "" {
		s.ErrorKinds[r.ErrorKind]++
	}
	switch r.Parse {
	case ParseParsed:
		s.Parsed++
	case ParseReused:
		s.Reused++
	}
}
