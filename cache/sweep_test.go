package cache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
)

// sweepFixture is the state every sweep and purge test starts from, with
// a 24h TTL and now = adminT0:
//
//	old       validated 48h ago                      → expired
//	fresh     validated 1h ago                       → kept
//	edge      validated exactly 24h ago              → kept (not older than the TTL)
//	refreshed validated 48h ago, 304 1h ago          → kept (requests-cache deletes it)
//	staleRev  validated 72h ago, 304 30h ago         → expired
//	news      validated 2h ago, expires passed       → stale but not expired
//	revalidations: refreshed, staleRev, orphan (30h ago, no response)
//	redirects: toOld → old, chain → toOld, toFresh → fresh (1h ago),
//	           oldHop → fresh (created 48h ago)
func sweepFixture(t *testing.T, db testDatabase) {
	t.Helper()
	ctx := context.Background()
	doc := func(key, url string, validated time.Time, expires *time.Time) any {
		return cache.Entry{
			ID: key, URL: url, Method: "GET", Status: 200, Headers: bson.M{"Content-Type": "text/html"},
			Body: "<p>" + key + "</p>", Size: int64(len(key) + 7), CreatedAt: validated, ValidatedAt: validated, Expires: expires,
		}
	}
	rev := func(key string, validated time.Time, expires *time.Time) any {
		return cache.Revalidation{ID: key, ValidatedAt: validated, Expires: expires}
	}
	redirect := func(key, target string, created time.Time) any {
		return cache.Redirect{ID: key, URL: "https://example.org/r/" + key, Target: target, CreatedAt: created}
	}
	// One insertMany per collection keeps the many table cases fast.
	for coll, docs := range map[string][]any{
		cache.ResponsesCollection: {
			doc("old", "https://example.org/old", ago(48*time.Hour), nil),
			doc("fresh", "https://example.org/fresh", ago(time.Hour), nil),
			doc("edge", "https://example.org/edge", ago(24*time.Hour), nil),
			doc("refreshed", "https://example.org/refreshed", ago(48*time.Hour), ptr(ago(47*time.Hour))),
			doc("staleRev", "https://example.org/staleRev", ago(72*time.Hour), nil),
			doc("news", "https://news.example/today", ago(2*time.Hour), ptr(ago(time.Hour))),
		},
		cache.RevalidationsCollection: {
			rev("refreshed", ago(time.Hour), ptr(adminT0.Add(time.Hour))),
			rev("staleRev", ago(30*time.Hour), nil),
			rev("orphan", ago(30*time.Hour), nil),
		},
		cache.RedirectsCollection: {
			redirect("toOld", "old", ago(time.Hour)),
			redirect("chain", "toOld", ago(time.Hour)),
			redirect("toFresh", "fresh", ago(time.Hour)),
			redirect("oldHop", "fresh", ago(48*time.Hour)),
		},
	} {
		if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatalf("fixture %s: %v", coll, err)
		}
	}
}

type sweepState struct {
	responses, revalidations, redirects []string
}

func stateOf(t *testing.T, db testDatabase) sweepState {
	t.Helper()
	return sweepState{
		responses:     ids(t, db, cache.ResponsesCollection),
		revalidations: ids(t, db, cache.RevalidationsCollection),
		redirects:     ids(t, db, cache.RedirectsCollection),
	}
}

func (s sweepState) check(t *testing.T, want sweepState) {
	t.Helper()
	if !slices.Equal(s.responses, want.responses) {
		t.Errorf("responses: got %v, want %v", s.responses, want.responses)
	}
	if !slices.Equal(s.revalidations, want.revalidations) {
		t.Errorf("revalidations: got %v, want %v", s.revalidations, want.revalidations)
	}
	if !slices.Equal(s.redirects, want.redirects) {
		t.Errorf("redirects: got %v, want %v", s.redirects, want.redirects)
	}
}

// TestSweepKeepsEntriesRefreshedByRevalidation is the regression
// requests-cache has: its TTL counts from the first fetch, so an entry a
// 304 confirmed an hour ago is deleted anyway. Here the TTL counts from
// the effective validated_at.
func TestSweepKeepsEntriesRefreshedByRevalidation(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	sweepFixture(t, db)
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}

	n, err := a.Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if n != 2 {
		t.Errorf("Sweep deleted %d responses, want 2 (old, staleRev)", n)
	}
	stateOf(t, db).check(t, sweepState{
		responses:     []string{"edge", "fresh", "news", "refreshed"},
		revalidations: []string{"refreshed"},
		redirects:     []string{"toFresh"},
	})

	info, err := a.TTL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.LastSweep.Equal(adminT0) || info.LastSweepDeleted != 2 {
		t.Errorf("TTL after Sweep: last sweep %s deleted %d, want %s deleted 2", info.LastSweep, info.LastSweepDeleted, adminT0)
	}

	n, err = a.Sweep(ctx)
	if err != nil || n != 0 {
		t.Errorf("second Sweep: got %d, %v; want 0, nil", n, err)
	}
}

// TestSweepKeepsEntriesConfirmedDuringTheScan: a 304 that a run records
// while a sweep scans (the embedded server reads every response: seconds
// on a large cache) keeps its entry, response and revalidation, although
// the scan saw it expired.
func TestSweepKeepsEntriesConfirmedDuringTheScan(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	sweepFixture(t, db)
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	cache.AfterScan(a, func() {
		// old (validated 48h ago) and staleRev (last 304 30h ago) are
		// confirmed by 304s now.
		for _, key := range []string{"old", "staleRev"} {
			rev := cache.Revalidation{ID: key, ValidatedAt: adminT0, Expires: ptr(adminT0.Add(time.Hour))}
			if err := db.s.Collection(db.name, cache.RevalidationsCollection).Upsert(ctx, key, rev); err != nil {
				t.Error(err)
			}
		}
	})
	n, err := a.Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if n != 0 {
		t.Errorf("Sweep deleted %d responses, want 0: both expired entries were confirmed during its scan", n)
	}
	stateOf(t, db).check(t, sweepState{
		responses:     []string{"edge", "fresh", "news", "old", "refreshed", "staleRev"},
		revalidations: []string{"old", "refreshed", "staleRev"},
		redirects:     []string{"chain", "toFresh", "toOld"},
	})
}

func TestSweepFollowsTheClock(t *testing.T) {
	ctx := context.Background()
	a, db, clock := newAdminStore(t).admin(t)
	putDoc(t, db, "a", "https://example.org/a", 200, adminT0, nil)
	if _, err := a.SetTTL(ctx, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		now  time.Time
		want int64
	}{
		{"within the ttl", adminT0.Add(59 * time.Minute), 0},
		{"exactly the ttl", adminT0.Add(time.Hour), 0},
		{"past the ttl", adminT0.Add(time.Hour + time.Second), 1},
	} {
		clock.Set(step.now)
		n, err := a.Sweep(ctx)
		if err != nil || n != step.want {
			t.Errorf("%s: Sweep got %d, %v; want %d, nil", step.name, n, err, step.want)
		}
	}
}

func TestSweepWithoutTTLDeletesNothing(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	sweepFixture(t, db)
	before := stateOf(t, db)
	n, err := a.Sweep(ctx)
	if err != nil || n != 0 {
		t.Fatalf("Sweep without a TTL: got %d, %v; want 0, nil", n, err)
	}
	stateOf(t, db).check(t, before)
}

// TestSweepBatches deletes more entries than one delete command names
// (batches of 10 here, 1000 in production).
func TestSweepBatches(t *testing.T) {
	ctx := context.Background()
	a, db, _ := newAdminStore(t).admin(t)
	cache.SetDeleteBatch(t, 10)
	const n = 25
	docs := make([]any, 0, n+1)
	for i := range n {
		docs = append(docs, cache.Entry{ID: fmt.Sprintf("%016x", i), URL: fmt.Sprintf("https://example.org/%d", i), Method: "GET", Status: 200, Headers: bson.M{}, CreatedAt: ago(48 * time.Hour), ValidatedAt: ago(48 * time.Hour)})
	}
	docs = append(docs, cache.Entry{ID: "keep", URL: "https://example.org/keep", Method: "GET", Status: 200, Headers: bson.M{}, CreatedAt: adminT0, ValidatedAt: adminT0})
	if _, err := db.Collection(cache.ResponsesCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	got, err := a.Sweep(ctx)
	if err != nil || got != n {
		t.Fatalf("Sweep: got %d, %v; want %d, nil", got, err, n)
	}
	if left := ids(t, db, cache.ResponsesCollection); !slices.Equal(left, []string{"keep"}) {
		t.Errorf("after Sweep: %d responses left (%.40v), want only keep", len(left), left)
	}
}

func TestPurge(t *testing.T) {
	as := newAdminStore(t)
	all := []string{"edge", "fresh", "news", "old", "refreshed", "staleRev"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(drop, s) })
	}
	tests := []struct {
		name    string
		noTTL   bool
		opts    cache.PurgeOptions
		want    []string // responses left
		wantN   int64
		wantErr error
	}{
		{name: "no criteria is refused", opts: cache.PurgeOptions{}, want: all, wantErr: cache.ErrNoPurgeCriteria},
		{name: "expired sweeps", opts: cache.PurgeOptions{Expired: true}, want: without("old", "staleRev"), wantN: 2},
		{name: "expired without a ttl deletes nothing", noTTL: true, opts: cache.PurgeOptions{Expired: true}, want: all},
		{name: "stale", opts: cache.PurgeOptions{Stale: true}, want: without("news"), wantN: 1},
		{name: "older than counts from the effective validated_at", opts: cache.PurgeOptions{OlderThan: 36 * time.Hour}, want: without("old"), wantN: 1},
		{name: "older than 90 minutes", opts: cache.PurgeOptions{OlderThan: 90 * time.Minute}, want: []string{"fresh", "refreshed"}, wantN: 4},
		{name: "match", opts: cache.PurgeOptions{Match: "news.example"}, want: without("news"), wantN: 1},
		{name: "match and older than combine", opts: cache.PurgeOptions{Match: "example.org/*", OlderThan: 90 * time.Minute}, want: []string{"fresh", "news", "refreshed"}, wantN: 3},
		{name: "expired and match combine", opts: cache.PurgeOptions{Expired: true, Match: "*/old"}, want: without("old"), wantN: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a, db, _ := as.admin(t)
			sweepFixture(t, db)
			if !tt.noTTL {
				if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
					t.Fatal(err)
				}
			}
			n, err := a.Purge(ctx, tt.opts)
			if !errors.Is(err, tt.wantErr) || n != tt.wantN {
				t.Fatalf("Purge(%+v): got %d, %v; want %d, %v", tt.opts, n, err, tt.wantN, tt.wantErr)
			}
			if got := ids(t, db, cache.ResponsesCollection); !slices.Equal(got, tt.want) {
				t.Errorf("Purge(%+v) left %v, want %v", tt.opts, got, tt.want)
			}
			// Nothing is left pointing at a deleted response.
			left := ids(t, db, cache.ResponsesCollection)
			for _, r := range ids(t, db, cache.RevalidationsCollection) {
				if !slices.Contains(left, r) && r != "orphan" {
					t.Errorf("revalidation %s outlived its response", r)
				}
			}
			if !slices.Contains(left, "old") && slices.ContainsFunc(ids(t, db, cache.RedirectsCollection), func(s string) bool { return strings.HasPrefix(s, "toOld") || s == "chain" }) {
				t.Errorf("redirects to the deleted entry old remain: %v", ids(t, db, cache.RedirectsCollection))
			}
		})
	}
}

// TestSweepSkipsUntilTheOldestEntryCanExpire: a sweep records when the
// oldest entry it kept will expire, and later sweeps before that time do
// not scan. Entries written afterwards are newer, so nothing is missed;
// only documents inserted behind the cache's back with old dates wait,
// and `purge --expired` always scans.
func TestSweepSkipsUntilTheOldestEntryCanExpire(t *testing.T) {
	ctx := context.Background()
	a, db, clock := newAdminStore(t).admin(t)
	putDoc(t, db, "a", "https://example.org/a", 200, ago(2*time.Hour), nil)
	putDoc(t, db, "b", "https://example.org/b", 200, ago(30*time.Hour), nil)
	if _, err := a.SetTTL(ctx, 24*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	sweep := func(step string, at time.Time, want int64, wantNext time.Time) {
		t.Helper()
		clock.Set(at)
		if n, err := a.Sweep(ctx); err != nil || n != want {
			t.Errorf("%s: Sweep got %d, %v; want %d, nil", step, n, err, want)
		}
		if info, err := a.TTL(ctx); err != nil || !info.NextSweep.Equal(wantNext) {
			t.Errorf("%s: NextSweep %s, %v; want %s", step, info.NextSweep, err, wantNext)
		}
	}
	// The sweep looks 12h (half the TTL) past its cutoff: a, validated 2h
	// ago, is newer, so the next sweep is due when anything validated 12h
	// before this one can expire.
	sweep("first sweep", adminT0, 1, adminT0.Add(12*time.Hour))
	putDoc(t, db, "imported", "https://example.org/imported", 200, ago(48*time.Hour), nil)
	sweep("before the next sweep is due", adminT0.Add(time.Hour), 0, adminT0.Add(12*time.Hour))
	if left := ids(t, db, cache.ResponsesCollection); !slices.Equal(left, []string{"a", "imported"}) {
		t.Errorf("skipped sweep left %v, want a and imported", left)
	}
	if n, err := a.Purge(ctx, cache.PurgeOptions{Expired: true}); err != nil || n != 1 {
		t.Errorf("purge --expired: got %d, %v; want 1 (imported), nil", n, err)
	}
	// purge --expired is a sweep too: due again 12h after its cutoff + TTL.
	sweep("after the purge, before it is due", adminT0.Add(12*time.Hour+time.Second), 0, adminT0.Add(13*time.Hour))
	sweep("due, a not yet expired: the horizon now reaches a", adminT0.Add(13*time.Hour), 0, adminT0.Add(22*time.Hour))
	sweep("once a can expire", adminT0.Add(22*time.Hour+time.Second), 1, adminT0.Add(34*time.Hour+time.Second))

	// A new TTL forgets the schedule.
	if _, err := a.SetTTL(ctx, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	if info, err := a.TTL(ctx); err != nil || !info.NextSweep.IsZero() {
		t.Errorf("after SetTTL: NextSweep %s, %v; want zero", info.NextSweep, err)
	}
}
