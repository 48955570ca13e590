package storetest

import (
	"bytes"
	"os"
	"testing"
)

// sqlitePage is the page size of the embedded store's SQLite files.
const sqlitePage = 4096

// CorruptPage overwrites page (1-based) of the SQLite file at path with
// garbage, as a disk or a careless copy might, and returns the file's page
// count. The file keeps its size.
func CorruptPage(tb testing.TB, path string, page int) int {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	pages := int(fi.Size() / sqlitePage)
	if page < 1 || page > pages {
		tb.Fatalf("corrupt page %d of %s: it has %d pages", page, path, pages)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, sqlitePage), int64(page-1)*sqlitePage); err != nil {
		tb.Fatal(err)
	}
	return pages
}

// Truncate cuts the file at path to keep bytes, as a full disk or an
// interrupted copy might.
func Truncate(tb testing.TB, path string, keep int64) {
	tb.Helper()
	if err := os.Truncate(path, keep); err != nil {
		tb.Fatal(err)
	}
}
