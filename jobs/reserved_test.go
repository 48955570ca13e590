package jobs

import (
	"slices"
	"testing"

	"crawlcache/cache"
	"crawlcache/changes"
	"crawlcache/configs"
	"crawlcache/frontier"
	"crawlcache/parses"
	"crawlcache/proxy"
	"crawlcache/render"
	"crawlcache/store"
)

// TestReservedCollectionsCoverEveryOwnCollection guards the list validate
// refuses as a mongodb output's collection: every collection crawlcache
// writes must be on it, or a job could write items into crawlcache's state
// (items in `runs` showed up as phantom runs).
func TestReservedCollectionsCoverEveryOwnCollection(t *testing.T) {
	reserved := configs.ReservedCollections()
	own := []string{
		RunsCollection, LocksCollection, CountersCollection, LastRunsCollection,
		frontier.EntriesCollection, frontier.LogCollection, frontier.HostLeasesCollection,
		frontier.HostTokensCollection, frontier.WorkersCollection,
		cache.ResponsesCollection, cache.RedirectsCollection, cache.RevalidationsCollection,
		cache.VariantsCollection, cache.SettingsCollection, cache.PagesCollection, proxy.CountersCollection,
		store.QuarantineCollection, "meta", // the store's schema version (store/schema.go)
		parses.DefaultCollection, changes.PagesCollection, changes.RecordsCollection,
		render.StoreResponses, render.StoreRedirects, render.StoreRevalidations, render.StoreVariants, render.StorePages,
	}
	for _, name := range own {
		if !slices.Contains(reserved, name) {
			t.Errorf("collection %q is written by crawlcache but missing from configs.ReservedCollections() = %v", name, reserved)
		}
	}
}
