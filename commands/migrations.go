package commands

import (
	"crawlcache/cache"
	"crawlcache/store"
)

// migrations are the schema steps of the packages whose data the store
// holds, passed wherever a command opens the store or serves it: a store
// upgraded by a step is refused by a process that does not know it.
func migrations() []store.Migration {
	return cache.Migrations()
}
