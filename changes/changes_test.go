package changes

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/cache"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// env is one store shared by the runs of a test.
type env struct {
	t     *testing.T
	s     *store.Store
	clock *clock
	strip func([]byte) []byte
	ret   time.Duration
}

func newEnv(t *testing.T) *env { return newEnvOn(t, storetest.Open(t)) }

// newEnvOn is newEnv on store s.
func newEnvOn(t *testing.T, s *store.Store) *env {
	return &env{t: t, s: s, clock: &clock{time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)}}
}

func (e *env) tracker(job, run string) *Tracker {
	e.t.Helper()
	tr, err := New(Options{
		Pages: e.s.Collection("crawlcache", PagesCollection), Records: e.s.Collection("crawlcache", RecordsCollection),
		Job: job, Run: run, Now: e.clock.now, Strip: e.strip, Retention: e.ret,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tr
}

// page is one observation: a status and a body ("" with status 0: failed).
type page struct {
	url    string
	status int
	body   string
}

// run observes pages in a run of job, finishes it and returns each URL's
// kind (from the run's records) and the counts.
func (e *env) run(job, run string, pages ...page) (map[string]string, Counts) {
	e.t.Helper()
	ctx := context.Background()
	tr := e.tracker(job, run)
	for _, p := range pages {
		o := Observation{URL: p.url, Status: p.status, Body: []byte(p.body)}
		if p.status == 0 {
			o.Err = errors.New("connection refused")
		}
		if _, err := tr.Observe(ctx, o); err != nil {
			e.t.Fatal(err)
		}
	}
	counts, err := tr.Finish(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	kinds := map[string]string{}
	if err := List(ctx, e.s.Collection("crawlcache", RecordsCollection), run, "", func(r Record) error {
		kinds[r.URL] = r.Kind
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	e.clock.t = e.clock.t.Add(24 * time.Hour)
	return kinds, counts
}

func TestClassify(t *testing.T) {
	e := newEnv(t)
	kinds, c := e.run("shop", "shop-1", page{"/a", 200, "a1"}, page{"/b", 200, "b1"}, page{"/c", 200, "c1"}, page{"/d", 200, "d1"}, page{"/e", 200, "e1"})
	if c != (Counts{New: 5}) {
		t.Fatalf("first run counts = %+v, kinds %v; want 5 new", c, kinds)
	}
	// Run 2: a unchanged, b changed, c answers 404, d is no longer reached,
	// e fails, f appears.
	kinds, c = e.run("shop", "shop-2", page{"/a", 200, "a1"}, page{"/b", 200, "b2"}, page{"/c", 404, "nope"}, page{"/e", 0, ""}, page{"/f", 200, "f1"})
	want := map[string]string{"/a": KindUnchanged, "/b": KindChanged, "/c": KindGone, "/d": KindGone, "/e": KindError, "/f": KindNew}
	for u, k := range want {
		if kinds[u] != k {
			t.Errorf("run 2: %s is %q, want %q", u, kinds[u], k)
		}
	}
	if c != (Counts{New: 1, Changed: 1, Unchanged: 1, Gone: 2, Error: 1}) {
		t.Errorf("run 2 counts = %+v", c)
	}
	// Run 3: d comes back (changed: it was gone), c still 404 (unchanged),
	// e reached again unchanged; b still b2.
	kinds, _ = e.run("shop", "shop-3", page{"/a", 200, "a1"}, page{"/b", 200, "b2"}, page{"/c", 404, "nope"}, page{"/d", 200, "d1"}, page{"/e", 200, "e1"}, page{"/f", 200, "f1"})
	want = map[string]string{"/a": KindUnchanged, "/b": KindUnchanged, "/c": KindUnchanged, "/d": KindChanged, "/e": KindUnchanged, "/f": KindUnchanged}
	for u, k := range want {
		if kinds[u] != k {
			t.Errorf("run 3: %s is %q, want %q", u, kinds[u], k)
		}
	}
	// Another job sees the same URLs as new: nothing is shared.
	kinds, c = e.run("other", "other-1", page{"/a", 200, "a1"})
	if c.New != 1 || c.Gone != 0 {
		t.Errorf("other job: counts %+v, kinds %v; want 1 new, nothing gone", c, kinds)
	}
}

// A page observed twice in one run (a resume after a crash) keeps the kind
// it had against the state before the run, and is counted once.
func TestObserveTwiceInOneRun(t *testing.T) {
	e := newEnv(t)
	e.run("j", "j-1", page{"/a", 200, "v1"}, page{"/b", 200, "v1"})
	ctx := context.Background()
	tr := e.tracker("j", "j-2")
	for range 2 {
		for _, p := range []page{{"/a", 200, "v2"}, {"/b", 200, "v1"}} {
			if _, err := tr.Observe(ctx, Observation{URL: p.url, Status: p.status, Body: []byte(p.body)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := tr.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Counts{Changed: 1, Unchanged: 1}) {
		t.Errorf("counts = %+v, want 1 changed (a), 1 unchanged (b)", c)
	}
	again, err := tr.Finish(ctx)
	if err != nil || again != c {
		t.Errorf("second Finish = %+v, %v; want the same counts", again, err)
	}
}

// Parts the job ignores do not make a page changed; other parts do.
func TestIgnoredParts(t *testing.T) {
	e := newEnv(t)
	re := regexp.MustCompile(`nonce="[0-9]+"`)
	e.strip = func(b []byte) []byte { return re.ReplaceAll(b, nil) }
	body := func(nonce int, text string) string { return fmt.Sprintf(`<p nonce="%d">%s</p>`, nonce, text) }
	e.run("j", "j-1", page{"/a", 200, body(1, "hello")}, page{"/b", 200, body(1, "hello")})
	kinds, _ := e.run("j", "j-2", page{"/a", 200, body(2, "hello")}, page{"/b", 200, body(2, "bye")})
	if kinds["/a"] != KindUnchanged || kinds["/b"] != KindChanged {
		t.Errorf("kinds = %v; want /a unchanged (only its nonce changed), /b changed", kinds)
	}
	kinds, c := e.run("j", "j-3", page{"/a", 200, body(2, "hello")}, page{"/b", 200, body(2, "bye")})
	if c != (Counts{Unchanged: 2}) {
		t.Errorf("the same bodies again: kinds = %v, want both unchanged", kinds)
	}
}

// A page's history keeps MaxVersions versions, none older than the
// retention; a job keeps the records of its last KeepRuns runs.
func TestHistoryIsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range KeepRuns + 5 {
		e.run("j", fmt.Sprintf("j-%03d", i), page{"/a", 200, fmt.Sprint("v", i)})
	}
	raw, err := e.s.Collection("crawlcache", PagesCollection).Get(ctx, PageID("j", "/a"))
	if err != nil {
		t.Fatal(err)
	}
	var p Page
	if err := unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Versions) != MaxVersions {
		t.Errorf("history holds %d versions, want %d", len(p.Versions), MaxVersions)
	}
	var runs []string
	err = e.s.Collection("crawlcache", RecordsCollection).ScanIDPrefix(ctx, "j-", func(raw bson.Raw) error {
		var r Record
		if err := unmarshal(raw, &r); err != nil {
			return err
		}
		runs = append(runs, r.Run)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(runs)
	if len(runs) != KeepRuns || runs[0] != fmt.Sprintf("j-%03d", 5) {
		t.Errorf("records kept for %d runs from %v, want the last %d", len(runs), runs[:1], KeepRuns)
	}

	e.ret = 36 * time.Hour
	e.run("j", "j-late", page{"/a", 200, "late"})
	raw, _ = e.s.Collection("crawlcache", PagesCollection).Get(ctx, PageID("j", "/a"))
	_ = unmarshal(raw, &p)
	for _, v := range p.Versions {
		if e.clock.t.Sub(v.At) > 36*time.Hour+24*time.Hour {
			t.Errorf("version of %s kept past the retention", v.At)
		}
	}
}

func unmarshal(raw []byte, v any) error { return bson.Unmarshal(raw, v) }

// TestStatesAreSweptByTheRetention: a completing run bounds its job's page
// states by the retention (the cache's TTL): the state of a page gone for
// longer is deleted, and so it is new if it comes back; versions older
// than it are dropped from pages that have not changed since; another
// job's states are not touched.
func TestStatesAreSweptByTheRetention(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pages := e.s.Collection("crawlcache", PagesCollection)
	state := func(job, url string) (*Page, bool) {
		t.Helper()
		raw, err := pages.Get(ctx, PageID(job, url))
		if errors.Is(err, store.ErrNotFound) {
			return nil, false
		}
		if err != nil {
			t.Fatal(err)
		}
		var p Page
		if err := unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		return &p, true
	}
	e.ret = 48 * time.Hour
	e.run("other", "other-1", page{"/z", 200, "z"})
	e.clock.t = e.clock.t.Add(-24 * time.Hour) // the same day as j-1
	e.run("j", "j-1", page{"/a", 200, "a1"}, page{"/b", 200, "b"}, page{"/c", 200, "c"})
	e.run("other", "other-2") // /z no longer reached
	e.clock.t = e.clock.t.Add(-24 * time.Hour)
	gone := e.clock.t
	e.run("j", "j-2", page{"/a", 200, "a2"}, page{"/b", 200, "b"}) // /c no longer reached
	e.run("j", "j-3", page{"/a", 200, "a2"}, page{"/b", 200, "b"})
	e.run("j", "j-4", page{"/a", 200, "a2"}, page{"/b", 200, "b"})
	if p, ok := state("j", "/c"); !ok || !p.Gone {
		t.Fatalf("state of /c, gone for exactly the retention: %+v, %v; want kept, gone", p, ok)
	}
	if p, _ := state("j", "/a"); len(p.Versions) != 1 || p.Versions[0].Kind != KindChanged {
		t.Errorf("/a's versions %+v, want only the change of j-2 (its first version is older than the retention)", p.Versions)
	}

	e.run("j", "j-5", page{"/a", 200, "a2"}, page{"/b", 200, "b"})
	if _, ok := state("j", "/c"); ok {
		t.Errorf("state of /c, gone since %s, kept at %s past a retention of %s", gone, e.clock.t.Add(-24*time.Hour), e.ret)
	}
	if p, _ := state("j", "/a"); len(p.Versions) != 0 {
		t.Errorf("/a's versions %+v, want none left (all older than the retention)", p.Versions)
	}
	if _, ok := state("other", "/z"); !ok {
		t.Errorf("a state of job other was deleted by a run of job j")
	}
	kinds, _ := e.run("j", "j-6", page{"/a", 200, "a2"}, page{"/b", 200, "b"}, page{"/c", 200, "c"})
	if kinds["/a"] != KindUnchanged || kinds["/b"] != KindUnchanged || kinds["/c"] != KindNew {
		t.Errorf("after the sweep: kinds %v; want /a and /b unchanged, /c new", kinds)
	}
}

// TestStatesSweptOnPreviousReleaseData: on a data directory written by an
// earlier release (its job lists have no states_swept_at, and the cache
// TTL is 720h), the first completing run of a job sweeps its states, and a
// run a TTL later deletes the states of the pages gone since; the other
// jobs' states stay.
func TestStatesSweptOnPreviousReleaseData(t *testing.T) {
	ctx := context.Background()
	e := newEnvOn(t, storetest.OpenFixtureWith(t, storetest.FixtureAFE97F7, cache.Migrations()...))
	pages := e.s.Collection("crawlcache", PagesCollection)
	count := func(job string) (states int) {
		t.Helper()
		err := pages.ScanIDPrefix(ctx, job+"/", func(raw bson.Raw) error {
			if _, ok := raw.Lookup("url").StringValueOK(); ok {
				states++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return states
	}
	public, never := count("fixture-public"), count("fixture-never")
	if public != 8 || never != 2 {
		t.Fatalf("fixture holds %d states of fixture-public and %d of fixture-never, want 8 and 2", public, never)
	}
	e.ret = 720 * time.Hour
	e.clock.t = time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC) // 31 days after the fixture's runs
	_, c := e.run("fixture-public", "fixture-public-later") // reaches none of its pages
	if c.Gone != 8 || count("fixture-public") != 8 {
		t.Fatalf("first run: %+v, %d states; want the 8 pages gone, their states kept", c, count("fixture-public"))
	}
	raw, err := pages.Get(ctx, "fixture-public/#runs")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Lookup("states_swept_at").TimeOK(); !ok {
		t.Errorf("job list %s: no states_swept_at after a sweep", raw)
	}
	e.clock.t = e.clock.t.Add(31 * 24 * time.Hour)
	e.run("fixture-public", "fixture-public-much-later")
	if n := count("fixture-public"); n != 0 {
		t.Errorf("%d states of fixture-public left a TTL after its pages went, want 0", n)
	}
	if n := count("fixture-never"); n != never {
		t.Errorf("%d states of fixture-never left, want its %d", n, never)
	}
}

// faultyScans is a store collection whose scans of one _id prefix fail.
type faultyScans struct {
	*store.Collection
	prefix string
}

func (f faultyScans) ScanIDPrefix(ctx context.Context, prefix string, fn func(bson.Raw) error) error {
	if prefix == f.prefix {
		return errors.New("disk I/O error")
	}
	return f.Collection.ScanIDPrefix(ctx, prefix, fn)
}

// TestFailedSweepKeepsTheRunsCounts: when the sweep of the job's states
// fails, Finish still closes the run and returns its counts, with a
// *SweepError; the next completing run sweeps.
func TestFailedSweepKeepsTheRunsCounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.ret = 48 * time.Hour
	e.run("j", "j-1", page{"/a", 200, "a"}, page{"/b", 200, "b"})
	e.clock.t = e.clock.t.Add(72 * time.Hour)
	tr, err := New(Options{
		Pages: faultyScans{e.s.Collection("crawlcache", PagesCollection), "j/"}, Records: e.s.Collection("crawlcache", RecordsCollection),
		Job: "j", Run: "j-2", Now: e.clock.now, Retention: e.ret,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Observe(ctx, Observation{URL: "/a", Status: 200, Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	c, err := tr.Finish(ctx)
	var sweep *SweepError
	if !errors.As(err, &sweep) || c != (Counts{Unchanged: 1, Gone: 1}) {
		t.Fatalf("Finish with a failing sweep = %+v, %v; want 1 unchanged, 1 gone and a *SweepError", c, err)
	}
	raw, err := e.s.Collection("crawlcache", PagesCollection).Get(ctx, "j/#runs")
	if err != nil {
		t.Fatal(err)
	}
	var jr jobRuns
	if err := unmarshal(raw, &jr); err != nil || len(jr.Runs) != 2 || !jr.StatesSweptAt.Before(e.clock.t.Add(-time.Hour)) {
		t.Errorf("job runs %+v (%v); want both runs closed and the sweep time of j-1", jr, err)
	}
	e.clock.t = e.clock.t.Add(72 * time.Hour)
	e.run("j", "j-3", page{"/a", 200, "a"})
	if _, err := e.s.Collection("crawlcache", PagesCollection).Get(ctx, PageID("j", "/b")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("state of /b, gone for 72h past a 48h retention, still there after the next run (%v)", err)
	}
}

// BenchmarkSweepStates: the sweep a completing run makes of its job's
// 20,000 page states, none of them due (the steady state): one scan of the
// job's _id prefix, each state decoded.
func BenchmarkSweepStates(b *testing.B) {
	ctx := context.Background()
	s := storetest.Open(b)
	pages := s.Collection("crawlcache", PagesCollection)
	const n = 20000
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	docs := make([]any, n)
	for i := range docs {
		url := fmt.Sprintf("http://example.org/p/%d", i)
		docs[i] = &Page{ID: PageID("big", url), Job: "big", URL: url, State: State{Status: 200, BodyHash: "h", CompareHash: "h"},
			Run: "big-1", FirstSeen: now, LastChanged: now, Versions: []Version{{Run: "big-1", At: now, Kind: KindNew, Status: 200, BodyHash: "h"}}}
	}
	if _, err := pages.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	tr, err := New(Options{Pages: pages, Records: s.Collection("crawlcache", RecordsCollection), Job: "big", Run: "big-2",
		Now: func() time.Time { return now }, Retention: 720 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := tr.sweepStates(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/state")
}
