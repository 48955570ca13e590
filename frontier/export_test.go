package frontier

import "crawlcache/store"

// CollectionForTest returns f's collection called name (one of the
// *Collection constants).
func CollectionForTest(f *Frontier, name string) *store.Collection {
	for _, c := range []Collection{f.entries, f.log, f.hosts, f.hostTokens, f.workers} {
		if c.Name() == name {
			return c.(*store.Collection)
		}
	}
	return nil
}
