package frontier

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// scanRun calls fn with every document of coll (entries, log or workers)
// of run runID, stopping at fn's first error. Every _id of a run's entries
// and log records starts with the run id and a dash (ID, logDoc), of its
// workers with the run id and a slash (register). On the embedded
// store served by this process it reads only those rows, by _id range:
// finding by run_id there decodes every document of every run, so a run's
// start and end cost grew with the history in the store. Elsewhere it
// finds by run_id (MongoDB uses the run_id indexes). projection applies to
// the find only: the range read returns whole documents. Every scan of a
// run goes through it: resume (LoadRun, StartLoadRun), Drained and the
// background scans (refresh), Counts and alone. On that path a run id
// may hold only letters, digits and . _ - : (run ids made by jobs do).
func (f *Frontier) scanRun(ctx context.Context, coll *mongo.Collection, runID string, projection bson.D, fn func(bson.Raw) error) error {
	sep := "-"
	if coll == f.workers {
		sep = "/" // register's _id: run id, slash, instance
	}
	if f.direct != nil {
		return f.direct.ScanIDPrefix(ctx, coll.Database().Name(), coll.Name(), runID+sep, func(doc bson.Raw) error {
			// A run whose id extends this one's ("job-x" and "job-x-2...")
			// shares the prefix.
			if v, ok := doc.Lookup("run_id").StringValueOK(); !ok || v != runID {
				return nil
			}
			return fn(doc)
		})
	}
	opts := options.Find().SetBatchSize(5000)
	if projection != nil {
		opts.SetProjection(projection)
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "run_id", Value: runID}}, opts)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	return cur.Err()
}

// count returns runID's entries in each state from the store, without
// touching the queue.
func (f *Frontier) count(ctx context.Context, runID string) (Counts, error) {
	var c Counts
	latest := make(map[string]logRec)
	err := f.scanRun(ctx, f.log, runID, bson.D{{Key: "entry", Value: 1}, {Key: "seq", Value: 1}, {Key: "state", Value: 1}},
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
	err = f.scanRun(ctx, f.entries, runID, bson.D{{Key: "_id", Value: 1}}, func(doc bson.Raw) error {
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
