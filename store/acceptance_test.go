package store_test

import (
	"os"
	"testing"

	"crawlcache/store/storetest"
)

// The storage contract's acceptance suite, run against every
// implementation: the embedded store read and written directly, the wire
// implementation talking to an embedded server (as to `crawlcache db
// serve`), and a real MongoDB when CRAWLCACHE_TEST_MONGODB_URI is set.

func TestAcceptanceEmbedded(t *testing.T) { storetest.RunAcceptance(t, storetest.OpenEmbedded) }

func TestAcceptanceWire(t *testing.T) { storetest.RunAcceptance(t, storetest.OpenWire) }

func TestAcceptanceMongoDB(t *testing.T) {
	if os.Getenv(storetest.MongoDBEnv) == "" {
		t.Skipf("%s is not set: no MongoDB to test against", storetest.MongoDBEnv)
	}
	storetest.RunAcceptance(t, storetest.OpenMongoDB)
}
