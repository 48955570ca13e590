package frontier

import "go.mongodb.org/mongo-driver/v2/mongo"

// CollectionsForTest returns the entries and log collections.
func CollectionsForTest(f *Frontier) []*mongo.Collection {
	return []*mongo.Collection{f.entries, f.log}
}
