package frontier

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crawlcache/store"
)

// insertMany inserts docs into coll like an unordered insertMany and
// returns the positions of the documents whose _id was already there
// (for the log, a lost compare-and-set; for entries, a known URL). Any
// other failure is err. On an in-process embedded store the documents go
// through store.Direct, in one transaction, without the server's per-write
// overhead; through the server when Direct cannot write them.
func insertMany(ctx context.Context, direct *store.Direct, coll *mongo.Collection, docs []any) (dups map[int]bool, err error) {
	dups = make(map[int]bool)
	if direct != nil {
		raws := make([]bson.Raw, len(docs))
		for i, d := range docs {
			if raws[i], err = bson.Marshal(d); err != nil {
				return nil, err
			}
		}
		idx, err := direct.InsertMany(ctx, coll.Database().Name(), coll.Name(), raws)
		if !errors.Is(err, store.ErrDirectUnsupported) {
			for _, i := range idx {
				dups[i] = true
			}
			return dups, err
		}
	}
	_, err = coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return dups, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, err
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return nil, err
		}
		dups[we.Index] = true
	}
	return dups, nil
}

// insertOne inserts doc into coll; a duplicate _id is reported as a
// duplicate-key error (isDup).
func insertOne(ctx context.Context, direct *store.Direct, coll *mongo.Collection, doc any) error {
	if direct != nil {
		raw, err := bson.Marshal(doc)
		if err != nil {
			return err
		}
		err = direct.InsertOne(ctx, coll.Database().Name(), coll.Name(), raw)
		if !errors.Is(err, store.ErrDirectUnsupported) {
			return err
		}
	}
	_, err := coll.InsertOne(ctx, doc)
	return err
}
