package cache

import (
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestDecodePageAsUnmarshal: decodePage gives what bson.Unmarshal gives,
// value and error alike, for the Pages this release writes, those of
// earlier releases (fields missing, a date stored as text) and documents
// no release writes (other number types, nulls, fields of the wrong type,
// unknown fields, repeated fields, a broken document).
func TestDecodePageAsUnmarshal(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 40, 5, 123e6, time.UTC)
	full := Page{ID: "k1", URL: "http://example.test/a?b=1", Status: 200, ValidatedAt: at,
		BodySHA256: "ab12", IntervalSeconds: 86400, Size: 75123, ETag: `"v1"`, LastModified: HTTPDate{at.Truncate(time.Second)}}
	docs := map[string]bson.Raw{}
	for name, v := range map[string]any{
		"full":             full,
		"earlier release":  Page{ID: "k2", URL: "http://example.test/", Status: 404, ValidatedAt: at},
		"empty":            bson.D{},
		"int32 status":     bson.D{{Key: "_id", Value: "k"}, {Key: "status", Value: int32(304)}, {Key: "size", Value: int32(7)}},
		"double status":    bson.D{{Key: "_id", Value: "k"}, {Key: "status", Value: 200.0}},
		"fractional":       bson.D{{Key: "_id", Value: "k"}, {Key: "status", Value: 200.5}},
		"null fields":      bson.D{{Key: "_id", Value: nil}, {Key: "url", Value: nil}, {Key: "validated_at", Value: nil}, {Key: "last_modified", Value: nil}},
		"date as text":     bson.D{{Key: "_id", Value: "k"}, {Key: "last_modified", Value: "Fri, 04 Dec 2026 21:40:05 GMT"}},
		"date of a number": bson.D{{Key: "_id", Value: "k"}, {Key: "validated_at", Value: int64(1764884405123)}},
		"wrong types":      bson.D{{Key: "_id", Value: int32(1)}, {Key: "url", Value: true}},
		"status as text":   bson.D{{Key: "_id", Value: "k"}, {Key: "status", Value: "200"}},
		"unknown fields":   bson.D{{Key: "x", Value: bson.D{{Key: "y", Value: 1}}}, {Key: "_id", Value: "k"}, {Key: "z", Value: bson.A{1, "2"}}},
		"repeated field":   bson.D{{Key: "_id", Value: "k"}, {Key: "status", Value: 200}, {Key: "status", Value: 304}},
		"bad etag":         bson.D{{Key: "_id", Value: "k"}, {Key: "etag", Value: int64(3)}},
	} {
		raw, err := bson.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = raw
	}
	broken := append(bson.Raw(nil), docs["full"]...)
	docs["truncated"] = broken[:len(broken)-9]

	fast := 0
	for name, raw := range docs {
		var want, got Page
		wantErr := bson.Unmarshal(raw, &want)
		gotErr := decodePage(raw, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s: decodePage error %v, Unmarshal error %v", name, gotErr, wantErr)
			continue
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodePage\n%#v\nUnmarshal\n%#v", name, got, want)
		}
		var p Page
		if decodePageFast(raw, &p) {
			fast++
		}
	}
	// The documents the cache writes take the walk, not the fallback.
	for _, name := range []string{"full", "earlier release", "int32 status", "unknown fields", "repeated field"} {
		var p Page
		if !decodePageFast(docs[name], &p) {
			t.Errorf("%s: not decoded by the walk", name)
		}
	}
	if fast == len(docs) {
		t.Error("every document took the walk: the fallback is never tested")
	}
}

func BenchmarkDecodePage(b *testing.B) {
	at := time.Date(2026, 12, 4, 21, 40, 5, 0, time.UTC)
	raw, err := bson.Marshal(Page{ID: "5e1a0b7d9f0c4e2a", URL: "http://127.0.0.1:8089/products/3", Status: 200, ValidatedAt: at,
		BodySHA256: "c4e2a9b1f0d3e5c7a9b1f0d3e5c7a9b1f0d3e5c7a9b1f0d3e5c7a9b1f0d3e5c7", IntervalSeconds: 86400, Size: 75123,
		ETag: `"v0-67d9709015c7a0fe"`, LastModified: HTTPDate{at}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			var p Page
			if err := decodePage(raw, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			var p Page
			if err := bson.Unmarshal(raw, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
