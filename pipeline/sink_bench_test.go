package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"crawlcache/store/storetest"
)

// benchmarkSink writes batches of 256 items (the default BatchSize), each
// of a new page, and reports items per second.
func benchmarkSink(b *testing.B, sink Sink) {
	ctx := context.Background()
	if err := sink.Open(ctx, "bench", false); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sink.Close() })
	n := 0
	for b.Loop() {
		var batch []Item
		for range 16 {
			batch = append(batch, testItems("bench", fmt.Sprintf("https://example.org/p%d", n), 16)...)
			n++
		}
		if err := sink.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkMongoSinkWrite(b *testing.B) {
	s := storetest.Open(b)
	benchmarkSink(b, NewMongoSink(s.Collection("bench", "items")))
}

func BenchmarkJSONLSinkWrite(b *testing.B) {
	benchmarkSink(b, NewJSONLSink(filepath.Join(b.TempDir(), "items.jsonl")))
}

func BenchmarkCSVSinkWrite(b *testing.B) {
	benchmarkSink(b, NewCSVSink(filepath.Join(b.TempDir(), "items.csv"), []string{"title", "tags", "price"}))
}
