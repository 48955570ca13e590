package changes

import "bytes"

// Same reports whether body next counts as unchanged from body prev for a
// job whose ignored parts strip removes (nil: none ignored): the same body
// hash, or the same hash once the ignored parts are removed from both —
// the comparison Observe makes with the hashes it keeps. The cache's
// adaptive revisits use it (cache.Adaptive.Unchanged), so that a page the
// run reports unchanged also counts as unchanged for its revisit interval.
func Same(prev, next []byte, strip func([]byte) []byte) bool {
	if bytes.Equal(prev, next) {
		return true
	}
	return strip != nil && hashOf(strip(prev)) == hashOf(strip(next))
}
