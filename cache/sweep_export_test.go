package cache

import "testing"

// SetDeleteBatch makes Admin delete in batches of n until the test ends,
// so batching is exercised with a few documents.
func SetDeleteBatch(tb testing.TB, n int) {
	old := deleteBatch
	deleteBatch = n
	tb.Cleanup(func() { deleteBatch = old })
}

// AfterScan makes a's sweeps call f between their scan and their deletes.
func AfterScan(a *Admin, f func()) { a.afterScan = f }

// AssumeTTLIndexes makes a take the TTL-index path, as on a server that
// reports TTL indexes, to test what happens when the server then refuses
// one.
func AssumeTTLIndexes(a *Admin) { a.supportsTTL = true }
