package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
)

// TTL mechanisms reported in TTLInfo.Mechanism.
const (
	// MechanismIndex: the server deletes expired entries itself, by the TTL
	// index TTLIndexName on validated_at (MongoDB's TTL monitor runs about
	// once a minute).
	MechanismIndex = "ttl-index"
	// MechanismSweeper: the server has no TTL indexes (the embedded store);
	// the TTL is kept in the settings collection and Admin.Sweep deletes
	// expired entries, in `crawlcache schedule` and on
	// `cache purge --expired` (never in a run's path: a sweep scans).
	MechanismSweeper = "sweeper"
)

// TTLIndexName is the name of the TTL index on responses.validated_at (and
// on revalidations.validated_at and redirects.created_at), the name
// requests-cache uses.
const TTLIndexName = "ttl_idx"

// TTLField is the field the TTL counts from: the last time the origin sent
// or confirmed (304) the entry, so revalidated entries survive.
const TTLField = "validated_at"

// ttlSettingID is the _id of the TTL document in the settings collection.
const ttlSettingID = "ttl"

// TTLInfo describes the cache TTL: how long an entry lives after the origin
// last sent or confirmed it, and what deletes it.
type TTLInfo struct {
	// TTL is the time to live; zero when Set is false.
	TTL time.Duration
	// Set is false when no TTL is configured: entries are kept until purged.
	Set bool
	// Mechanism is MechanismIndex or MechanismSweeper: the one in force, or
	// when Set is false, the one SetTTL would use on this server.
	Mechanism string
	// Field is the document field the TTL counts from (TTLField).
	Field string
	// Kept is set by SetTTL when a different TTL was already set and
	// overwrite was false: the existing TTL (in TTL) stayed in place.
	Kept bool
	// Requested is the TTL SetTTL was asked for (whole seconds).
	Requested time.Duration
	// LastSweep is when the sweeper last ran to completion (zero if never,
	// or under MechanismIndex), and LastSweepDeleted how many responses it
	// deleted then.
	LastSweep        time.Time
	LastSweepDeleted int64
	// NextSweep is the earliest time an entry can be older than the TTL,
	// as the last sweep found: the oldest validated_at it kept plus the TTL
	// (at most half the TTL or a day after that sweep). Entries written
	// later are newer and revalidations only move validated_at forward, so
	// Sweep before NextSweep has nothing to delete and skips its scan. Zero
	// when unknown.
	NextSweep time.Time
}

// ttlSetting is the settings document (_id "ttl"). It is written on every
// server, so people and `cache ttl show` can read the TTL in one place;
// with MechanismIndex the index is the authority.
type ttlSetting struct {
	ID               string     `bson:"_id"`
	Seconds          int64      `bson:"ttl_seconds"`
	TTL              string     `bson:"ttl"` // human-readable, e.g. "168h0m0s"
	Field            string     `bson:"field"`
	Mechanism        string     `bson:"mechanism"`
	UpdatedAt        time.Time  `bson:"updated_at"`
	LastSweepAt      *time.Time `bson:"last_sweep_at,omitempty"`
	LastSweepDeleted int64      `bson:"last_sweep_deleted,omitempty"`
	NextSweepAt      *time.Time `bson:"next_sweep_at,omitempty"`
}

// Errors returned by Admin.
var (
	// ErrNotFound is returned by Show when no entry is stored for a URL.
	ErrNotFound = errors.New("not in the cache")
	// ErrInvalidTTL is wrapped by SetTTL for a TTL below one second or
	// beyond what a TTL index holds (68 years).
	ErrInvalidTTL = errors.New("invalid ttl")
	// ErrNoPurgeCriteria is returned by Purge when PurgeOptions selects
	// nothing (use Clear to delete everything).
	ErrNoPurgeCriteria = errors.New("no purge criteria")
)

// defaultMechanism is the mechanism SetTTL uses on this server.
func (a *Admin) defaultMechanism() string {
	if a.supportsTTL {
		return MechanismIndex
	}
	return MechanismSweeper
}

// TTL reports the TTL in force. With a TTL index the index is the
// authority; otherwise the settings document is.
func (a *Admin) TTL(ctx context.Context) (TTLInfo, error) {
	info := TTLInfo{Mechanism: a.defaultMechanism(), Field: TTLField}
	setting, found, err := a.readTTLSetting(ctx)
	if err != nil {
		return info, err
	}
	if a.supportsTTL {
		ttl, ok, err := a.responses.TTL(ctx, TTLIndexName)
		if err != nil {
			return info, err
		}
		if ok {
			info.Set, info.TTL, info.Mechanism = true, ttl, MechanismIndex
			return info, nil
		}
	}
	// Without TTL index support, a setting made on any server is enforced by
	// the sweeper. On a server with TTL indexes only a sweeper setting
	// counts (index creation answered NotImplemented); a ttl-index setting
	// whose index is gone is not in force.
	if found && setting.Seconds > 0 && (!a.supportsTTL || setting.Mechanism == MechanismSweeper) {
		info.Set, info.TTL, info.Mechanism = true, time.Duration(setting.Seconds)*time.Second, MechanismSweeper
		if setting.LastSweepAt != nil {
			info.LastSweep, info.LastSweepDeleted = *setting.LastSweepAt, setting.LastSweepDeleted
		}
		if setting.NextSweepAt != nil {
			info.NextSweep = *setting.NextSweepAt
		}
	}
	return info, nil
}

// SetTTL sets the TTL to d, truncated to whole seconds. A d of zero or less
// removes the TTL (as RemoveTTL). When a different TTL is already set and
// overwrite is false, it stays: the result has Kept set and the existing
// TTL. With overwrite, the old TTL is replaced (on MongoDB the index is
// dropped and created again). It returns an error wrapping ErrInvalidTTL
// for a TTL under one second or over 68 years.
func (a *Admin) SetTTL(ctx context.Context, d time.Duration, overwrite bool) (TTLInfo, error) {
	if d <= 0 {
		if err := a.RemoveTTL(ctx); err != nil {
			return TTLInfo{}, err
		}
		return a.TTL(ctx)
	}
	d = d.Truncate(time.Second)
	if d < time.Second || d/time.Second > math.MaxInt32 {
		return TTLInfo{}, fmt.Errorf("set ttl %s: %w: want between 1s and 68 years", d, ErrInvalidTTL)
	}
	cur, err := a.TTL(ctx)
	if err != nil {
		return cur, err
	}
	cur.Requested = d
	if cur.Set && cur.TTL == d {
		return cur, nil
	}
	if cur.Set && !overwrite {
		cur.Kept = true
		return cur, nil
	}
	mechanism := MechanismSweeper
	if a.supportsTTL {
		if cur.Set && cur.Mechanism == MechanismIndex {
			if err := a.dropTTLIndexes(ctx); err != nil {
				return cur, err
			}
		}
		switch err := a.createTTLIndexes(ctx, d); {
		case err == nil:
			mechanism = MechanismIndex
		case errors.Is(err, store.ErrNoTTLIndexes):
			// The capability probe said yes but this server refuses: the
			// sweeper enforces the TTL instead.
		default:
			return cur, err
		}
	}
	setting := ttlSetting{
		ID:        ttlSettingID,
		Seconds:   int64(d / time.Second),
		TTL:       d.String(),
		Field:     TTLField,
		Mechanism: mechanism,
		UpdatedAt: a.now().UTC(),
	}
	if err := a.settings.Upsert(ctx, ttlSettingID, setting); err != nil {
		return cur, fmt.Errorf("save ttl setting: %w", err)
	}
	return TTLInfo{TTL: d, Set: true, Mechanism: mechanism, Field: TTLField, Requested: d}, nil
}

// RemoveTTL removes the TTL: entries are kept until purged. Removing when
// none is set is not an error.
func (a *Admin) RemoveTTL(ctx context.Context) error {
	if a.supportsTTL {
		if err := a.dropTTLIndexes(ctx); err != nil {
			return err
		}
	}
	if err := a.settings.Delete(ctx, ttlSettingID); err != nil {
		return fmt.Errorf("remove ttl setting: %w", err)
	}
	return nil
}

func (a *Admin) readTTLSetting(ctx context.Context) (ttlSetting, bool, error) {
	var s ttlSetting
	raw, err := a.settings.Get(ctx, ttlSettingID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s, false, nil
	case err != nil:
		return s, false, fmt.Errorf("read ttl setting: %w", err)
	}
	if err := bson.Unmarshal(raw, &s); err != nil {
		return s, false, fmt.Errorf("read ttl setting: %w", err)
	}
	return s, true, nil
}

// recordSweep notes a finished sweep in the settings document. The filter
// on ttl_seconds leaves a setting that SetTTL changed meanwhile alone.
func (a *Admin) recordSweep(ctx context.Context, ttl time.Duration, at, next time.Time, deleted int64) error {
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "last_sweep_at", Value: at.UTC()},
		{Key: "last_sweep_deleted", Value: deleted},
		{Key: "next_sweep_at", Value: next.UTC()},
	}}}
	filter := bson.D{{Key: "_id", Value: ttlSettingID}, {Key: "ttl_seconds", Value: int64(ttl / time.Second)}}
	if _, err := a.settings.UpdateOne(ctx, filter, update, false); err != nil {
		return fmt.Errorf("record sweep: %w", err)
	}
	return nil
}

// ttlIndexed names a collection that gets a TTL index and the field the
// index counts from.
type ttlIndexed struct {
	coll  collection
	field string
}

// ttlIndexes are the TTL indexes made on MongoDB. Revalidations, Pages and
// redirects expire with their responses: a 304 also sets
// responses.validated_at on such servers, and a redirect hop is rewritten
// (new created_at) whenever it is fetched again. A URL's Variants document
// expires a TTL after a variant was last stored under it (updated_at);
// variants revalidated by 304s for longer than that are fetched once more
// and listed in a new one, rather than Variants documents piling up.
func (a *Admin) ttlIndexes() []ttlIndexed {
	return []ttlIndexed{
		{a.responses, TTLField},
		{a.revalidations, TTLField},
		{a.redirects, "created_at"},
		{a.variants, "updated_at"},
		{a.pages, TTLField},
	}
}

// createTTLIndexes makes the TTL indexes, each expiring after d; an error
// wrapping store.ErrNoTTLIndexes when the server has none.
func (a *Admin) createTTLIndexes(ctx context.Context, d time.Duration) error {
	for _, c := range a.ttlIndexes() {
		if err := c.coll.EnsureTTL(ctx, TTLIndexName, c.field, d); err != nil {
			return fmt.Errorf("create index %s on %s.%s: %w", TTLIndexName, c.coll.Name(), c.field, err)
		}
	}
	return nil
}

func (a *Admin) dropTTLIndexes(ctx context.Context) error {
	for _, c := range a.ttlIndexes() {
		if err := c.coll.DropIndex(ctx, TTLIndexName); err != nil {
			return err
		}
	}
	return nil
}
