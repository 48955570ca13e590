package cache

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Vary variants (RFC mode). A URL whose responses carry Vary keeps one
// Entry per combination of the named request headers' values,
// each under Key(req, body, p, Vary), and one small Variants document in
// the variants collection under the primary key Key(req, body, p, nil)
// naming the headers. A lookup reads the primary key (response,
// revalidation and Variants concurrently); when a Variants document is
// there it computes the variant's key from the request and reads that:
// two _id lookups, never a scan. Under the crawler policy Vary is
// ignored (match_headers chooses what keys on headers), so nothing here
// runs and a lookup stays one round trip.

// maxListedVariants bounds Variants.Keys, so that a response varying on
// a header with endless values (User-Agent) does not grow one document
// that every new variant rewrites. The list only lets invalidation and
// purges delete variants without a scan: an unlisted variant is still
// served when it was fetched after the Variants document was written, and
// after an invalidation it is never served again (Since); the TTL or the
// sweeper deletes it.
const maxListedVariants = 256

// varyHeader is a response header naming names in Vary, for Key.
func varyHeader(names []string) http.Header {
	return http.Header{"Vary": {strings.Join(names, ", ")}}
}

// variantNames are the header names a response varies on beyond the
// policy's match_headers (which key every request already), canonical,
// sorted and de-duplicated; nil when it does not vary on anything else.
// "*" is kept: such a response is never stored (rfcStorable).
func (p Policy) variantNames(h http.Header) []string {
	var names []string
	match := keyHeaderNames(p.MatchHeaders, nil)
	for _, n := range varyNames(h) {
		if !slices.Contains(match, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// resolveVariant switches c from its primary key to the key of its variant
// under v, and loads that. stale reports a response stored there that v
// does not list and that was not fetched after v was written: it belongs
// to an older Vary set or predates an invalidation (a variant whose
// listing was lost, or one past maxListedVariants), so it is not served,
// and gets replaced. Every variant v lists was stored since v was.
func (t *Transport) resolveVariant(c *call, v *Variants) (lk loaded, stale bool, err error) {
	c.variants = v
	c.key = t.keyOf(c, varyHeader(v.Vary))
	lk, err = t.coll.load(c.req.Context(), c.key, false)
	if err != nil || lk.entry == nil || slices.Contains(v.Keys, c.key) || lk.entry.CreatedAt.After(v.Since) {
		return lk, false, err
	}
	return loaded{}, true, nil
}

// storeKey is the key a response e to c is stored under (RFC mode): the
// variant's key when e varies on request headers beyond match_headers,
// else the primary key. names are those headers.
func (t *Transport) storeKey(c *call, e *decodedEntry) (key string, names []string) {
	if !t.varies() {
		return c.key, nil
	}
	names = t.policy.variantNames(e.header)
	if len(names) == 0 {
		return c.primary, nil
	}
	return t.keyOf(c, varyHeader(names)), names
}

// updateVariants keeps the Variants document of c's primary key in step
// with a response just stored under key, varying on names (none: the URL
// no longer varies). Failures are store errors: the response is stored,
// and at worst a later lookup misses.
func (t *Transport) updateVariants(c *call, key string, names []string, now time.Time) {
	ctx := c.req.Context()
	if !c.looked { // a forced refresh, or the lookup failed: find out
		var found Variants
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		ok, bad, err := t.coll.findByID(fctx, t.coll.variants, c.primary, &found)
		cancel()
		if err != nil {
			t.storeError(fmt.Errorf("find variants %s: %w", c.primary, err))
			return
		}
		c.variants, c.primaryEntry, c.looked = nil, true, true
		if ok && bad == nil && len(found.Vary) > 0 {
			c.variants = &found
		}
	}
	v := c.variants
	var err error
	switch {
	case len(names) == 0:
		if v != nil { // the URL stopped varying: drop the variants
			err = t.coll.dropVariants(ctx, c.primary, key)
		}
	case v == nil || !slices.Equal(v.Vary, names):
		if c.primaryEntry { // it used to answer without Vary
			if err = t.coll.invalidateResponse(ctx, c.primary); err != nil {
				break
			}
		}
		if v != nil { // a new Vary set: variants under the old one are unreachable
			if err = t.coll.deleteResponses(ctx, slices.DeleteFunc(slices.Clone(v.Keys), func(k string) bool { return k == key })); err != nil {
				break
			}
		}
		err = t.coll.saveVariants(ctx, &Variants{
			ID: c.primary, URL: c.norm, Method: methodOf(c.req),
			Vary: names, Keys: []string{key}, Since: now, UpdatedAt: now,
		}, v == nil)
	case len(v.Keys) < maxListedVariants && !slices.Contains(v.Keys, key):
		err = t.coll.addVariant(ctx, c.primary, key, now)
	}
	if err != nil {
		t.storeError(err)
	}
}

// saveVariants writes v. isNew says the lookup found none: then a
// Variants document written meanwhile by a concurrent request for another
// variant is kept and v's key added to it (so neither variant is lost),
// else v replaces what is stored.
func (c *collections) saveVariants(ctx context.Context, v *Variants, isNew bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	var err error
	if isNew {
		update := bson.D{
			{Key: "$setOnInsert", Value: bson.D{
				{Key: "url", Value: v.URL}, {Key: "method", Value: v.Method},
				{Key: "vary", Value: v.Vary}, {Key: "since", Value: v.Since},
			}},
			{Key: "$set", Value: bson.D{{Key: "updated_at", Value: v.UpdatedAt}}},
			{Key: "$addToSet", Value: bson.D{{Key: "keys", Value: bson.D{{Key: "$each", Value: v.Keys}}}}},
		}
		_, err = c.variants.UpdateOne(ctx, bson.D{{Key: "_id", Value: v.ID}}, update, true)
	} else {
		err = c.variants.Upsert(ctx, v.ID, v)
	}
	if err != nil {
		return fmt.Errorf("store variants %s: %w", v.ID, err)
	}
	return nil
}

// addVariant lists key among the variants of primary.
func (c *collections) addVariant(ctx context.Context, primary, key string, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "updated_at", Value: now}}},
		{Key: "$addToSet", Value: bson.D{{Key: "keys", Value: key}}},
	}
	if _, err := c.variants.UpdateOne(ctx, bson.D{{Key: "_id", Value: primary}}, update, false); err != nil {
		return fmt.Errorf("add variant %s to %s: %w", key, primary, err)
	}
	return nil
}

// dropVariants deletes the Variants document of primary and the
// responses and revalidations of the variants it lists, except keep.
// Nothing happens when primary has no Variants.
func (c *collections) dropVariants(ctx context.Context, primary, keep string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	var v Variants
	found, bad, err := c.findByID(ctx, c.variants, primary, &v)
	if err != nil {
		return fmt.Errorf("find variants %s: %w", primary, err)
	}
	if !found {
		return nil
	}
	if bad == nil {
		keys := slices.DeleteFunc(v.Keys, func(k string) bool { return k == keep })
		if err := c.deleteResponses(ctx, keys); err != nil {
			return err
		}
	}
	if err := c.variants.Delete(ctx, primary); err != nil {
		return fmt.Errorf("delete variants %s: %w", primary, err)
	}
	return nil
}

// deleteResponses deletes the responses, revalidations and Pages with the
// given keys, in one command per collection.
func (c *collections) deleteResponses(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}
	if len(keys) == 1 {
		filter = bson.D{{Key: "_id", Value: keys[0]}}
	}
	for _, coll := range []entries{c.pages, c.responses, c.revalidations} {
		if _, err := coll.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("delete variants from %s: %w", coll.Name(), err)
		}
	}
	return nil
}
