package warc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"crawlcache/cache"
)

// BenchmarkExport measures cache export of 200 cached pages of 20 KB
// (the scan, a read by _id per page, and the WARC records).
func BenchmarkExport(b *testing.B) {
	page := strings.Repeat("<p>twenty kilobytes of html</p>\n", 20<<10/32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("ETag", `"`+r.URL.Path+`"`)
		io.WriteString(w, page)
	}))
	defer srv.Close()
	s := newStoreTB(b)
	tr, err := cache.New(context.Background(), s.store, cache.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 200 {
		resp, err := (&http.Client{Transport: tr}).Get(fmt.Sprintf("%s/p/%d", srv.URL, i))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	tr.Close()
	b.ResetTimer()
	for b.Loop() {
		w, err := NewWriter(io.Discard, Info{Software: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.admin.Export(context.Background(), cache.ExportOptions{}, w.Write)
		if err != nil || st.Exported != 200 {
			b.Fatalf("exported %d: %v", st.Exported, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*200)/1000, "ms/page")
}
