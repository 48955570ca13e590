package frontier

import "go.mongodb.org/mongo-driver/v2/mongo"

// CollectionsForTest returns the entries and log collections.
func CollectionsForTest(f *Frontier) []*mongo.Collection {
	return []*mongo.Collection{f.entries, f.log}
}

// DatabaseForTest returns the database f works in.
func (f *Frontier) DatabaseForTest() *mongo.Database { return f.entries.Database() }
