package storetest

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"crawlcache/store"
)

// Release fixtures: data directories written by earlier releases, kept so
// that every change to a stored document or to the cache key is tested on
// real old data. testdata/README.md says how each was made and what it holds.
const (
	// FixtureE6C68C8 is a data directory written by commit e6c68c8 (the
	// release before cache keys were bound to credentials): a public job's
	// crawl of 8 pages of the demo shop on 127.0.0.1:18089 (20 pages, seed 1)
	// with 76 items in crawlcache.items, a second job's crawl of
	// /products/3?api_key=fixture-secret-key sent with
	// "Authorization: Bearer fixture-token-b", and a cache TTL of 720h.
	FixtureE6C68C8 = "datadir-e6c68c8"
	// FixtureAFE97F7 is a data directory written by commit afe97f7 (the
	// release before page summaries named their body's hash, schema
	// version 2): fixture-public's crawl of 8 pages of the demo shop on
	// 127.0.0.1:18089 (20 pages, seed 1) and its run with --revalidate (a
	// revalidation for each of them), fixture-private's crawl of
	// /products/3 with "Authorization: Bearer fixture-token-b",
	// fixture-never's crawl of /products/15 and /products/16 under
	// expire_after: never, and a cache TTL of 720h.
	FixtureAFE97F7 = "datadir-afe97f7"
)

// FixtureDir unpacks the named release fixture into a fresh temporary
// directory and returns the data directory (its job files a.yaml and b.yaml
// sit beside it, in the parent directory). The fixture in the repository is
// never modified.
func FixtureDir(tb testing.TB, name string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "testdata", name+".tar.gz"))
	if err != nil {
		tb.Fatalf("open release fixture: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("read release fixture %s: %v", name, err)
	}
	root := tb.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("read release fixture %s: %v", name, err)
		}
		if strings.Contains(h.Name, "..") {
			tb.Fatalf("release fixture %s: bad path %q", name, h.Name)
		}
		dst := filepath.Join(root, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		out, err := os.Create(dst)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			tb.Fatal(err)
		}
		if err := out.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return filepath.Join(root, "datadir")
}

// OpenFixture unpacks the named release fixture and opens an embedded store
// on it, closed when the test ends.
func OpenFixture(tb testing.TB, name string) *store.Store {
	tb.Helper()
	return OpenDir(tb, FixtureDir(tb, name))
}

// OpenFixtureWith is OpenFixture with migration steps: the store is
// upgraded by the store's own steps and then by migrations, as Open does
// for a user's data directory written by that release.
func OpenFixtureWith(tb testing.TB, name string, migrations ...store.Migration) *store.Store {
	tb.Helper()
	return OpenDirWith(tb, FixtureDir(tb, name), migrations...)
}
