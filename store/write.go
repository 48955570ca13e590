package store

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The writes below go straight into the embedded store's files through d
// when d is not nil (the store runs in this process: DirectFor) and can
// write the document, and through the server otherwise: another process's
// store, MongoDB, or a document or collection Direct leaves to the server
// (ErrDirectUnsupported).

var replaceUpsert = options.Replace().SetUpsert(true)

// InsertOne inserts doc into coll. An existing _id is a duplicate-key
// error (mongo.IsDuplicateKeyError).
//
// Deprecated: use (*Collection).Insert; kept until frontier, jobs and
// pipeline use the contract.
func InsertOne(ctx context.Context, d *Direct, coll *mongo.Collection, doc any) error {
	if d != nil {
		raw, err := bson.Marshal(doc)
		if err != nil {
			return err
		}
		err = d.InsertOne(ctx, coll.Database().Name(), coll.Name(), raw)
		if !errors.Is(err, ErrDirectUnsupported) {
			return err
		}
	}
	_, err := coll.InsertOne(ctx, doc)
	return err
}

// InsertMany inserts docs into coll like an unordered insertMany and
// returns the positions of the documents whose _id was already there. Any
// other failure is err. Through d, the documents go in one transaction.
//
// Deprecated: use (*Collection).InsertMany.
func InsertMany(ctx context.Context, d *Direct, coll *mongo.Collection, docs []any) (dups map[int]bool, err error) {
	dups = make(map[int]bool)
	if d != nil {
		raws := make([]bson.Raw, len(docs))
		for i, doc := range docs {
			if raws[i], err = bson.Marshal(doc); err != nil {
				return nil, err
			}
		}
		idx, err := d.InsertMany(ctx, coll.Database().Name(), coll.Name(), raws)
		if !errors.Is(err, ErrDirectUnsupported) {
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
