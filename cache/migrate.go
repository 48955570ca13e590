package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// Migrations are the cache's schema steps (store.Migration): pass them in
// store.Options.Migrations (and to store.Server.Upgrade) wherever a store
// that holds a cache is opened. A store upgraded by them is refused by a
// process that does not know them (store.ErrSchemaTooNew), so every
// process that opens the same store must pass them.
func Migrations() []store.Migration {
	return []store.Migration{
		{Version: 2, Name: "cache: page summaries in http_cache.pages, last_modified as a date", Run: migratePages},
		{Version: 3, Name: "cache: page summaries name their body's hash and learned interval", Run: migrateHeads},
	}
}

// pageBatch is how many Pages the migration writes at a time.
const pageBatch = 1000

// migratePages brings the cache in DefaultDatabase to the layout of
// schema version 2: a Page for every stored entry (its validated_at
// the later of the response's and its revalidation's), and last_modified
// a date instead of the header's text (unset when the text is not an
// HTTP-date; the text stays in headers). It reads every response once
// (without its body where the server can leave it out) and rewrites only
// those whose last_modified is text. It is idempotent, and does nothing
// on a store without a cache.
func migratePages(ctx context.Context, s *store.Store) error {
	if err := s.EnsureCollections(ctx, DefaultDatabase, PagesCollection); err != nil {
		return err
	}
	revs, err := validations(ctx, s.Collection(DefaultDatabase, RevalidationsCollection))
	if err != nil {
		return err
	}
	responses := s.Collection(DefaultDatabase, ResponsesCollection)
	batch := &pageBatcher{coll: s.Collection(DefaultDatabase, PagesCollection)}
	proj := bson.D{{Key: "url", Value: 1}, {Key: "status", Value: 1}, {Key: "validated_at", Value: 1}, {Key: "last_modified", Value: 1}}
	texts := map[string]HTTPDate{} // _id → the date its text gives
	err = responses.Scan(ctx, bson.D{}, store.FindOptions{Projection: proj}, func(raw bson.Raw) error {
		var r struct {
			ID           string        `bson:"_id"`
			URL          string        `bson:"url"`
			Status       int           `bson:"status"`
			ValidatedAt  time.Time     `bson:"validated_at"`
			LastModified bson.RawValue `bson:"last_modified"`
		}
		if bson.Unmarshal(raw, &r) != nil {
			return nil // not a response this cache can serve: it is replaced on next use
		}
		if rev, ok := revs[r.ID]; ok && !rev.Before(r.ValidatedAt) {
			r.ValidatedAt = rev
		}
		if r.LastModified.Type == bson.TypeString {
			texts[r.ID] = httpDateOf([]string{r.LastModified.StringValue()}, r.ValidatedAt)
		}
		return batch.add(ctx, &Page{ID: r.ID, URL: r.URL, Status: r.Status, ValidatedAt: r.ValidatedAt})
	})
	if err != nil {
		return fmt.Errorf("scan cached responses: %w", err)
	}
	if err := batch.flush(ctx); err != nil {
		return err
	}
	return convertLastModified(ctx, responses, texts)
}

// validations maps each revalidation's _id to its validated_at.
func validations(ctx context.Context, revs *store.Collection) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	proj := store.FindOptions{Projection: bson.D{{Key: "validated_at", Value: 1}}}
	err := revs.Scan(ctx, bson.D{}, proj, func(raw bson.Raw) error {
		var r struct {
			ID          string    `bson:"_id"`
			ValidatedAt time.Time `bson:"validated_at"`
		}
		if bson.Unmarshal(raw, &r) == nil {
			out[r.ID] = r.ValidatedAt
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan revalidations: %w", err)
	}
	return out, nil
}

// writePages inserts pages, replacing those already there.
func writePages(ctx context.Context, coll *store.Collection, pages []any) error {
	if len(pages) == 0 {
		return nil
	}
	dups, err := coll.InsertMany(ctx, pages)
	if err != nil {
		return fmt.Errorf("write page summaries: %w", err)
	}
	for i := range dups {
		p := pages[i].(*Page)
		if err := coll.Upsert(ctx, p.ID, p); err != nil {
			return fmt.Errorf("write page summary %s: %w", p.ID, err)
		}
	}
	return nil
}

// convertLastModified stores each response's last_modified text as the
// date it gives (unset when none). Where the collection's writes go to the
// embedded store's files the document is read and replaced whole (the
// server's $set would decode and rewrite it too, at several times the
// cost); elsewhere (MongoDB) it is a $set.
func convertLastModified(ctx context.Context, coll *store.Collection, texts map[string]HTTPDate) error {
	for id, d := range texts {
		var err error
		if coll.Direct() {
			err = replaceLastModified(ctx, coll, id, d)
		} else {
			update := bson.D{{Key: "$set", Value: bson.D{{Key: "last_modified", Value: d}}}}
			if d.IsZero() {
				update = bson.D{{Key: "$unset", Value: bson.D{{Key: "last_modified", Value: ""}}}}
			}
			_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update, false)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("convert last_modified of %s to a date: %w", id, err)
		}
	}
	return nil
}

// replaceLastModified rewrites the response id with last_modified d (or
// without it), keeping the order of its fields.
func replaceLastModified(ctx context.Context, coll *store.Collection, id string, d HTTPDate) error {
	raw, err := coll.Get(ctx, id)
	if err != nil {
		return err
	}
	var doc bson.D
	if err := bson.Unmarshal(raw, &doc); err != nil {
		return err
	}
	out := doc[:0]
	for _, e := range doc {
		if e.Key == "last_modified" {
			if d.IsZero() {
				continue
			}
			e.Value = d
		}
		out = append(out, e)
	}
	return coll.Upsert(ctx, id, out)
}

// migrateHeads brings the cache in DefaultDatabase to schema version 3:
// every Page names its entry's body_sha256 (the revalidation's, for an
// entry stored without one) and its effective interval_seconds, as the
// transport writes them since (pageOf, pageOf304), so that fresh hits of
// data stored by earlier releases can be judged without their bodies
// (head.go). It reads every response once without its body where the
// server can leave it out, and rewrites the Pages of those that have a
// hash. It is idempotent, and does nothing on a store without a cache.
func migrateHeads(ctx context.Context, s *store.Store) error {
	if err := s.EnsureCollections(ctx, DefaultDatabase, PagesCollection); err != nil {
		return err
	}
	revs := map[string]Revalidation{}
	err := s.Collection(DefaultDatabase, RevalidationsCollection).Scan(ctx, bson.D{}, store.FindOptions{Projection: bson.D{{Key: "headers", Value: 0}}}, func(raw bson.Raw) error {
		var r Revalidation
		if bson.Unmarshal(raw, &r) == nil {
			revs[r.ID] = r
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan revalidations: %w", err)
	}
	batch := &pageBatcher{coll: s.Collection(DefaultDatabase, PagesCollection)}
	proj := store.FindOptions{Projection: bson.D{{Key: "body", Value: 0}}}
	err = s.Collection(DefaultDatabase, ResponsesCollection).Scan(ctx, bson.D{}, proj, func(raw bson.Raw) error {
		var e Entry
		if bson.Unmarshal(raw, &e) != nil {
			return nil // not a response this cache can serve: it is replaced on next use
		}
		p := pageOf(&e)
		if rev, ok := revs[e.ID]; ok && revApplies(&e, &rev) {
			p.ValidatedAt, p.IntervalSeconds = rev.ValidatedAt, rev.IntervalSeconds
			// A 304's headers (not read here) may have replaced the
			// entry's validators: its first revalidation reads them.
			p.ETag, p.LastModified = "", HTTPDate{}
			if p.BodySHA256 == "" && headable(&e) {
				p.BodySHA256 = validSHA256(rev.BodySHA256)
			}
		}
		if p.BodySHA256 == "" {
			return nil // its Page stays as it is: hits are judged on the entry
		}
		return batch.add(ctx, p)
	})
	if err != nil {
		return fmt.Errorf("scan cached responses: %w", err)
	}
	return batch.flush(ctx)
}

// pageBatcher writes the Pages a migration makes, pageBatch at a time.
type pageBatcher struct {
	coll  *store.Collection
	pages []any
}

// add queues p, writing the batch once it is full.
func (b *pageBatcher) add(ctx context.Context, p *Page) error {
	b.pages = append(b.pages, p)
	if len(b.pages) < pageBatch {
		return nil
	}
	return b.flush(ctx)
}

// flush writes what is queued.
func (b *pageBatcher) flush(ctx context.Context) error {
	err := writePages(ctx, b.coll, b.pages)
	b.pages = b.pages[:0]
	return err
}
