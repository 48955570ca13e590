package jobs

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/changes"
	"crawlcache/parses"
	"crawlcache/store/storetest"
)

// After some pages change, a revalidating run reports exactly those as
// changed, parses exactly those, and finds nothing new or gone; the first
// run finds every page new; the run record, its summary and the change
// records agree.
func TestRunReportsWhatChanged(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t)
	site := smallSite(40, 0)
	srv := site.Start()
	t.Cleanup(srv.Close)
	job := writeJob(t, t.TempDir(), "chg", srv.URL, "")
	r := &Runner{Store: s, Logger: slog.New(slog.DiscardHandler)}

	first, err := r.Run(ctx, job, StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := first.Run.Counters
	if c.New != c.Pages || c.Changed+c.Unchanged+c.Gone != 0 || c.Parsed != c.Pages {
		t.Fatalf("first run counters = %+v; want every page new and parsed", c)
	}
	changedPaths := site.Change(0.1)
	after, err := r.Run(ctx, job, StartOptions{Revalidate: true})
	if err != nil {
		t.Fatal(err)
	}
	c = after.Run.Counters
	n := int64(len(changedPaths))
	if c.Changed != n || c.Parsed != n || c.New != 0 || c.Gone != 0 || c.Unchanged != c.Pages-n {
		t.Errorf("after %d pages changed: counters = %+v; want %d changed and parsed, the rest unchanged, none new or gone", n, c, n)
	}
	var got []string
	err = changes.List(ctx, s.Collection(Database, changes.RecordsCollection), after.Run.ID, changes.KindChanged, func(rec changes.Record) error {
		u, err := url.Parse(rec.URL)
		if err != nil {
			return err
		}
		got = append(got, u.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, changedPaths) {
		t.Errorf("changed records = %v, want %v", got, changedPaths)
	}

	// The run's worker recorded the rules its parse records were made
	// under: what the sweep of old parse records keeps.
	var rules []string
	for _, w := range after.Run.Workers {
		rules = append(rules, w.ParseRules)
	}
	records := 0
	err = s.Collection(Database, parses.DefaultCollection).ScanIDPrefix(ctx, "", func(raw bson.Raw) error {
		records++
		if r, _ := raw.Lookup("rules").StringValueOK(); len(rules) != 1 || r != rules[0] {
			t.Errorf("parse record made under rules %q; the run's workers recorded %q", r, rules)
		}
		return nil
	})
	if err != nil || records == 0 {
		t.Errorf("scan the parse records: %d, %v", records, err)
	}
}
