package frontier

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// scanRun calls fn with every document of coll (entries, log or workers)
// of run runID, stopping at fn's first error. Every _id of a run's entries
// and log records starts with the run id and a dash (ID, logDoc), of its
// workers with the run id and a slash (register), so it reads that _id
// range only (Collection.ScanIDPrefix): on the embedded store through the
// _id index, where a find by run_id would decode every document of every
// run; on MongoDB through the _id index too. Its cost is what the run
// holds, not what the store holds: a run's start, end, resume and the
// scans of Drained do not grow with the history in the store. A run id may
// hold only letters, digits and . _ - : (run ids made by jobs do).
func (f *Frontier) scanRun(ctx context.Context, coll Collection, runID string, fn func(bson.Raw) error) error {
	sep := "-"
	if coll == f.workers {
		sep = "/" // register's _id: run id, slash, instance
	}
	return coll.ScanIDPrefix(ctx, runID+sep, func(doc bson.Raw) error {
		// A run whose id extends this one's ("job-x" and "job-x-2...")
		// shares the prefix.
		if v, ok := doc.Lookup("run_id").StringValueOK(); !ok || v != runID {
			return nil
		}
		return fn(doc)
	})
}

// count returns runID's entries in each state from the store, without
// touching the queue.
func (f *Frontier) count(ctx context.Context, runID string) (Counts, error) {
	var c Counts
	latest := make(map[string]logRec)
	err := f.scanRun(ctx, f.log, runID,
		func(doc bson.Raw) error {
			var l logRec
			if err := bson.Unmarshal(doc, &l); err != nil {
				return fmt.Errorf("decode %s: %w", doc, err)
			}
			if old, ok := latest[l.Entry]; !ok || l.Seq > old.Seq {
				latest[l.Entry] = l
			}
			return nil
		})
	if err != nil {
		return c, fmt.Errorf("scan log: %w", err)
	}
	err = f.scanRun(ctx, f.entries, runID, func(doc bson.Raw) error {
		id, _ := doc.Lookup("_id").StringValueOK()
		if _, _, ok := splitID(id); !ok {
			return nil // not made by ID
		}
		switch latest[id].State {
		case "", Pending:
			c.Pending++
		case Leased:
			c.Leased++
		case Done:
			c.Done++
		case Failed:
			c.Failed++
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("scan entries: %w", err)
	}
	return c, nil
}
