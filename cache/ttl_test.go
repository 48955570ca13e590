package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
)

// TestTTLLifecycle walks the seed's set_ttl semantics on the embedded store
// (no TTL indexes: settings document + sweeper). Steps run in order on one
// database.
func TestTTLLifecycle(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	if a == nil {
		t.Fatal("no admin")
	}
	steps := []struct {
		name      string
		set       time.Duration
		overwrite bool
		remove    bool
		wantErr   error
		wantSet   bool
		wantTTL   time.Duration
		wantKept  bool
	}{
		{name: "set on an empty cache", set: 168 * time.Hour, wantSet: true, wantTTL: 168 * time.Hour},
		{name: "a different ttl without overwrite keeps the old one", set: 24 * time.Hour, wantSet: true, wantTTL: 168 * time.Hour, wantKept: true},
		{name: "the same ttl again is not a conflict", set: 168 * time.Hour, wantSet: true, wantTTL: 168 * time.Hour},
		{name: "overwrite replaces it", set: 24 * time.Hour, overwrite: true, wantSet: true, wantTTL: 24 * time.Hour},
		{name: "sub-second part is truncated", set: 24*time.Hour + 300*time.Millisecond, wantSet: true, wantTTL: 24 * time.Hour},
		{name: "under a second is refused", set: 500 * time.Millisecond, overwrite: true, wantErr: cache.ErrInvalidTTL},
		{name: "zero removes", set: 0, wantSet: false},
		{name: "set again after removal", set: time.Hour, wantSet: true, wantTTL: time.Hour},
		{name: "remove", remove: true, wantSet: false},
		{name: "remove when none is set", remove: true, wantSet: false},
	}
	for _, st := range steps {
		var info cache.TTLInfo
		var err error
		if st.remove {
			err = a.RemoveTTL(ctx)
		} else {
			info, err = a.SetTTL(ctx, st.set, st.overwrite)
		}
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: got error %v, want %v", st.name, err, st.wantErr)
		}
		if err != nil {
			continue
		}
		if !st.remove && (info.Set != st.wantSet || info.TTL != st.wantTTL || info.Kept != st.wantKept) {
			t.Errorf("%s: SetTTL returned set=%v ttl=%s kept=%v, want set=%v ttl=%s kept=%v",
				st.name, info.Set, info.TTL, info.Kept, st.wantSet, st.wantTTL, st.wantKept)
		}
		got, err := a.TTL(ctx)
		if err != nil {
			t.Fatalf("%s: TTL: %v", st.name, err)
		}
		if got.Set != st.wantSet || got.TTL != st.wantTTL || got.Mechanism != cache.MechanismSweeper || got.Field != "validated_at" {
			t.Errorf("%s: TTL() = set=%v ttl=%s mechanism=%s field=%s, want set=%v ttl=%s mechanism=sweeper field=validated_at",
				st.name, got.Set, got.TTL, got.Mechanism, got.Field, st.wantSet, st.wantTTL)
		}

		// The setting is readable in Compass/mongosh.
		var setting bson.M
		raw, err := db.Collection(cache.SettingsCollection).Get(ctx, "ttl")
		if err == nil {
			err = bson.Unmarshal(raw, &setting)
		}
		if st.wantSet {
			if err != nil {
				t.Fatalf("%s: settings document: %v", st.name, err)
			}
			if setting["ttl_seconds"] != int64(st.wantTTL/time.Second) || setting["mechanism"] != "sweeper" || setting["field"] != "validated_at" {
				t.Errorf("%s: settings document %v, want ttl_seconds=%d mechanism=sweeper field=validated_at", st.name, setting, int64(st.wantTTL/time.Second))
			}
		} else if err == nil {
			t.Errorf("%s: settings document %v still there, want it removed", st.name, setting)
		}
	}
}

func TestTTLInfoWithoutTTLNamesTheMechanism(t *testing.T) {
	a, _, _ := newAdminStore(t).admin(t)
	info, err := a.TTL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Set || info.Mechanism != cache.MechanismSweeper {
		t.Errorf("TTL on a fresh embedded store: got set=%v mechanism=%q, want unset, sweeper", info.Set, info.Mechanism)
	}
}

// TestTTLFallsBackToSweeperWhenIndexRefused runs the TTL-index code path
// (supportsTTL true) against the embedded server, which refuses TTL
// indexes with NotImplemented: SetTTL must fall back to the sweeper, and
// TTL, Sweep and RemoveTTL must work with that setting.
func TestTTLFallsBackToSweeperWhenIndexRefused(t *testing.T) {
	ctx := context.Background()
	as := newAdminStore(t)
	_, db, _ := as.admin(t)
	a := cache.NewAdmin(db.s, db.name, func() time.Time { return adminT0 })
	cache.AssumeTTLIndexes(a)
	putDoc(t, db, "old", "https://example.org/old", 200, ago(48*time.Hour), nil)

	info, err := a.SetTTL(ctx, 24*time.Hour, false)
	if err != nil {
		t.Fatalf("SetTTL: %v", err)
	}
	if !info.Set || info.Mechanism != cache.MechanismSweeper {
		t.Errorf("SetTTL: got set=%v mechanism=%q, want set, sweeper", info.Set, info.Mechanism)
	}
	if got, err := a.TTL(ctx); err != nil || !got.Set || got.TTL != 24*time.Hour || got.Mechanism != cache.MechanismSweeper {
		t.Errorf("TTL: got %+v, %v; want 24h via the sweeper", got, err)
	}
	if n, err := a.Sweep(ctx); err != nil || n != 1 {
		t.Errorf("Sweep: got %d, %v; want 1, nil", n, err)
	}
	if err := a.RemoveTTL(ctx); err != nil {
		t.Fatalf("RemoveTTL: %v", err)
	}
	if got, err := a.TTL(ctx); err != nil || got.Set || got.Mechanism != cache.MechanismIndex {
		t.Errorf("TTL after RemoveTTL: got %+v, %v; want unset, ttl-index as the mechanism to try", got, err)
	}
}
