package configs

import (
	"slices"
	"strings"
)

// reservedCollections are the collections crawlcache itself writes: in its
// own database (runs, locks, the frontier's, the per-run counters) and in
// the cache's (http_cache). A mongodb output writing one of them would mix
// items into crawlcache's state (phantom runs in `runs ls`, a frontier that
// no longer loads), so Parse refuses them. A test in jobs checks that every
// collection the code writes is listed here.
var reservedCollections = []string{
	// db crawlcache
	"runs", "locks", "run_counters", "last_runs",
	"frontier", "frontier_log", "host_leases", "host_lease_tokens", "frontier_workers",
	"_probe", "meta", "quarantine", "parses", "page_states", "page_changes",
	// db http_cache
	"responses", "redirects", "revalidations", "variants", "settings", "counters", "pages",
	"rendered", "rendered_redirects", "rendered_revalidations", "rendered_variants", "rendered_pages",
}

// ReservedCollections returns the collection names a mongodb output may not
// use, in a stable order. The caller owns the slice.
func ReservedCollections() []string { return slices.Clone(reservedCollections) }

// isReservedCollection reports whether name is reserved. MongoDB names are
// case-sensitive, but the embedded store keeps collections in SQLite tables
// whose names are not, so a case variant is refused too.
func isReservedCollection(name string) bool {
	return slices.ContainsFunc(reservedCollections, func(r string) bool { return strings.EqualFold(r, name) })
}
