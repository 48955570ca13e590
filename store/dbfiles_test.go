package store_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/store"
	"crawlcache/store/storetest"
)

// fixtureResponses is the number of responses in the release fixture's
// http_cache (store/storetest/testdata/README.md).
const fixtureResponses = 10

// corruptFixture returns a copy of the release fixture with a leaf page of
// http_cache.responses overwritten (page 100 of 107: found by `db check`,
// "Tree 5 page 100"), and the checksum of every file before the damage
// test runs.
func corruptFixture(t *testing.T) string {
	t.Helper()
	dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
	storetest.CorruptPage(t, filepath.Join(dir, "http_cache.sqlite"), 100)
	return dir
}

func snapshotFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, name := range listDir(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = string(b)
	}
	return m
}

func sameFiles(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshotFiles(t, dir)
	if len(after) != len(before) {
		t.Errorf("files of %s changed: %d files, want %d", dir, len(after), len(before))
	}
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s changed", name)
		}
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantBad string
	}{
		{"intact fixture", func(*testing.T, string) {}, ""},
		{"overwritten data page", func(t *testing.T, dir string) {
			storetest.CorruptPage(t, filepath.Join(dir, "http_cache.sqlite"), 100)
		}, "http_cache.sqlite"},
		{"truncated file", func(t *testing.T, dir string) {
			storetest.Truncate(t, filepath.Join(dir, "crawlcache.sqlite"), 64<<10)
		}, "crawlcache.sqlite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := storetest.FixtureDir(t, storetest.FixtureE6C68C8)
			tc.damage(t, dir)
			before := snapshotFiles(t, dir)
			checks, err := store.Check(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != 2 {
				t.Fatalf("Check found %d files, want 2", len(checks))
			}
			for _, c := range checks {
				wantOK := c.Name != tc.wantBad
				if c.OK != wantOK || (wantOK != (len(c.Problems) == 0)) {
					t.Errorf("%s: OK %v, problems %q; want OK %v", c.Name, c.OK, c.Problems, wantOK)
				}
				if c.Size <= 0 {
					t.Errorf("%s: size %d, want > 0", c.Name, c.Size)
				}
			}
			sameFiles(t, dir, before)
		})
	}
}

// TestCorruptErrorNamesFileAndWayOut: the error of a damaged store names
// the damaged file and the commands that help (issue: every command said
// only "database disk image is malformed (11)").
func TestCorruptErrorNamesFileAndWayOut(t *testing.T) {
	ctx := context.Background()
	dir := corruptFixture(t)
	s := storetest.OpenDir(t, dir)
	_, err := s.Database("http_cache").Collection("responses").CountDocuments(ctx, bson.D{})
	if !store.IsCorrupt(err) {
		t.Fatalf("count over a damaged page = %v, want SQLite's corruption error", err)
	}
	err = store.DiagnoseCorrupt(ctx, dir, err)
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("DiagnoseCorrupt = %T %v, want *CorruptError", err, err)
	}
	for _, want := range []string{filepath.Join(dir, "http_cache.sqlite"), "db check --data-dir " + dir, "db recover --data-dir " + dir + " --out"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "crawlcache.sqlite") {
		t.Errorf("error %q names the intact file too", err)
	}
}

func TestRecover(t *testing.T) {
	ctx := context.Background()
	dir := corruptFixture(t)
	before := snapshotFiles(t, dir)
	out := filepath.Join(t.TempDir(), "recovered")
	rec, err := store.Recover(ctx, dir, out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovery:\n%s", rec)
	sameFiles(t, dir, before)
	if !rec.Lost() {
		t.Errorf("recovery of a damaged page lost nothing, want a loss reported")
	}
	var copied, lost int64
	for _, c := range rec.Collections {
		if c.Database == "http_cache" && c.Collection == "responses" {
			copied, lost = c.Copied, c.LostRows()
		}
	}
	if copied == 0 || copied >= fixtureResponses || copied+lost != fixtureResponses {
		t.Errorf("responses copied %d, lost %d; want some copied, some lost, adding up to the fixture's %d", copied, lost, fixtureResponses)
	}
	// The new directory is whole: every collection opens, runs are intact.
	checks, err := store.Check(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("recovered %s is damaged: %q", c.Name, c.Problems)
		}
	}
	s := storetest.OpenDir(t, out)
	n, err := s.Database("http_cache").Collection("responses").CountDocuments(ctx, bson.D{})
	if err != nil || n != copied {
		t.Errorf("responses in the recovered directory = %d, %v; want %d", n, err, copied)
	}
	runs, err := s.Database("crawlcache").Collection("runs").CountDocuments(ctx, bson.D{})
	if err != nil || runs != 2 {
		t.Errorf("runs in the recovered directory = %d, %v; want the fixture's 2", runs, err)
	}
	for name, bad := range map[string]string{
		"the same, now filled, directory":    out,
		"a directory inside the damaged one": filepath.Join(dir, "recovered"),
		"the damaged directory itself":       dir,
	} {
		if _, err := store.Recover(ctx, dir, bad, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("Recover into %s succeeded; want a refusal", name)
		}
	}
	sameFiles(t, dir, before)
}

func TestCompact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	coll := s.Database("t").Collection("c")
	big := strings.Repeat("x", 20<<10)
	var docs []any
	for i := range 100 {
		docs = append(docs, bson.D{{Key: "_id", Value: string(rune('a'+i%26)) + strings.Repeat("k", i)}, {Key: "body", Value: big}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Compact(ctx, dir); err == nil {
		t.Errorf("Compact while the store is open succeeded, want a refusal")
	}
	s.Close(ctx)
	res, err := store.Compact(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res {
		if c.Name == "t.sqlite" && c.After*4 > c.Before {
			t.Errorf("t.sqlite: %d bytes before, %d after; want it to shrink to under a quarter after deleting everything", c.Before, c.After)
		}
	}
	s = storetest.OpenDir(t, dir)
	if _, err := s.Database("t").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Errorf("insert after compact: %v", err)
	}
}
