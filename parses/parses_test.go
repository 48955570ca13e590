package parses

import (
	"context"
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crawlcache/pipeline"
	"crawlcache/store"
	"crawlcache/store/storetest"
)

// A record round-trips through the store with every kind of value an
// extractor gives (string, null, an array, an empty array) in field order,
// and is found only for the body it was made from.
func TestRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := New(storetest.Open(t).Collection("crawlcache", DefaultCollection))
	items := []pipeline.Item{
		{Fields: []pipeline.KV{{Key: "z", Value: "last first"}, {Key: "a", Value: nil}, {Key: "tags", Value: []string{"x", "y"}}, {Key: "none", Value: []string{}}}},
		{Fields: []pipeline.KV{{Key: "z", Value: ""}, {Key: "a", Value: "é"}, {Key: "tags", Value: []string{""}}, {Key: "none", Value: []string{}}}},
	}
	id := ID("key1", Rules([]string{"a[href]"}, "rules"))
	body := BodyHash([]byte("<html>v1</html>"))
	rec := &Record{ID: id, URL: "http://example.org/", CacheKey: "key1", BodyHash: body, Links: []string{"http://example.org/a"}, Items: ItemFields(items)}
	if ok, err := s.Save(ctx, rec); !ok || err != nil {
		t.Fatalf("Save = %v, %v", ok, err)
	}
	for _, tc := range []struct {
		name  string
		id    string
		body  string
		found bool
	}{
		{"same body", id, body, true},
		{"other body", id, BodyHash([]byte("<html>v2</html>")), false},
		{"other rules", ID("key1", Rules([]string{"a"}, "rules")), body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Lookup(ctx, tc.id, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if (got != nil) != tc.found {
				t.Fatalf("found = %v, want %v", got != nil, tc.found)
			}
			if got == nil {
				return
			}
			fields, ok := StoredFields(got)
			if !ok {
				t.Fatal("StoredFields refused a stored record")
			}
			for i, it := range items {
				if !reflect.DeepEqual(fields[i], it.Fields) {
					t.Errorf("item %d: got %#v, want %#v", i, fields[i], it.Fields)
				}
			}
			if !reflect.DeepEqual(got.Links, rec.Links) {
				t.Errorf("links = %v, want %v", got.Links, rec.Links)
			}
		})
	}
}

// A record edited by hand into values no extractor gives is not used.
func TestStoredFieldsRefusesForeignValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"number", int32(3)},
		{"document", bson.D{{Key: "x", Value: "y"}}},
		{"array of numbers", bson.A{"a", int32(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &Record{ID: "id", BodyHash: "h", Items: []bson.D{{{Key: "f", Value: tc.v}}}}
			if _, ok := StoredFields(rec); ok {
				t.Errorf("StoredFields accepted %T", tc.v)
			}
			// The same record as stored, read by Found.
			raw, err := bson.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			found, err := Found(store.Lookup{ID: "id", Raw: raw}, "h")
			if err != nil || found == nil {
				t.Fatalf("Found = %v, %v", found, err)
			}
			if _, ok := StoredFields(found); ok {
				t.Errorf("StoredFields accepted a stored %T", tc.v)
			}
		})
	}
}

// A page with more links than a record keeps is not stored.
func TestSaveRefusesHugeRecords(t *testing.T) {
	s := New(storetest.Open(t).Collection("crawlcache", DefaultCollection))
	ok, err := s.Save(context.Background(), &Record{ID: "x", Links: make([]string, MaxLinks+1)})
	if ok || err != nil {
		t.Errorf("Save of %d links = %v, %v; want not stored, no error", MaxLinks+1, ok, err)
	}
}

// benchRecord is a stored record the size of a product page's: 40
// links, 20 items of five fields with a list of paragraphs each.
func benchRecord(b *testing.B) bson.Raw {
	b.Helper()
	rec := &Record{ID: "id", URL: "http://example.org/p", CacheKey: "k", Rules: "r", BodyHash: "h"}
	for i := range 40 {
		rec.Links = append(rec.Links, "http://example.org/products/"+string(rune('a'+i%26)))
	}
	var items []pipeline.Item
	for range 20 {
		items = append(items, pipeline.Item{Fields: []pipeline.KV{
			{Key: "name", Value: "Cable Orbit Kettle"}, {Key: "link", Value: "/products/3"},
			{Key: "price", Value: "€65.57"}, {Key: "sku", Value: nil},
			{Key: "paras", Value: []string{"Lorem ipsum dolor sit amet, consectetur.", "Sed do eiusmod tempor incididunt.", "Ut enim ad minim veniam."}},
		}})
	}
	rec.Items = ItemFields(items)
	raw, err := bson.Marshal(rec)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkFoundStoredFields reads a stored record's items the way the
// crawler does (Found, StoredFields); BenchmarkDecodeStoredFields the way
// it did before Found walked the raw items (a full decode, then
// StoredFields), for comparison.
func BenchmarkFoundStoredFields(b *testing.B) {
	raw := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		rec, err := Found(store.Lookup{ID: "id", Raw: raw}, "h")
		if err != nil || rec == nil {
			b.Fatal("not found")
		}
		if _, ok := StoredFields(rec); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkDecodeStoredFields(b *testing.B) {
	raw := benchRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		var rec Record
		if err := bson.Unmarshal(raw, &rec); err != nil {
			b.Fatal(err)
		}
		if _, ok := StoredFields(&rec); !ok {
			b.Fatal("refused")
		}
	}
}
